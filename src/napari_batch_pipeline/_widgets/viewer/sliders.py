"""Slider labels shown whole: ``image`` and ``gaussian.sigma``, not ``i...`` and ``gaus...``.

napari gives every slider's label the width of the longest one, but at most a fifth of
the slider row: in a canvas narrowed by the plugin's dock (450 pixels on a 1280 x 800
screen) a sweep's ``gaussian.sigma`` lost its end and, narrower still, ``image`` all but
its first letter. After napari has sized them, :func:`keep_slider_labels_whole` widens
the labels to their text, up to :data:`MAX_SHARE` of the row, whenever the labels, the
sliders shown or the row's width change.
"""

from __future__ import annotations

import contextlib
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer

__all__ = ["MAX_SHARE", "keep_slider_labels_whole"]

#: the most of a slider row its label may take
MAX_SHARE = 0.4
#: set on napari's dims widget once it is kept
_KEPT = "napari_batch_pipeline_labels_kept"


def keep_slider_labels_whole(viewer: Any) -> None:
    """Keep the slider labels of ``viewer``'s window whole from now on (once per viewer;
    nothing where the window has no napari sliders to reach)."""
    viewer = getattr(viewer, "__wrapped__", viewer)
    dims = getattr(getattr(getattr(viewer, "window", None), "_qt_viewer", None), "dims", None)
    if dims is None or not hasattr(dims, "slider_widgets") or dims.property(_KEPT):
        return
    dims.setProperty(_KEPT, True)
    later = QTimer(dims)  # after napari's own sizing, which runs on the same events
    later.setSingleShot(True)
    later.setInterval(0)
    later.timeout.connect(lambda: _widen(dims))
    watcher = _Resized(dims, later.start)
    dims.installEventFilter(watcher)

    def soon(*_args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the window closed: its timer is gone
            later.start()

    for event in ("axis_labels", "ndim", "ndisplay", "order"):
        getattr(viewer.dims.events, event).connect(soon)
    later.start()


def _widen(dims: Any) -> None:
    sliders = list(dims.slider_widgets)
    shown = [slider.axis_label for slider in sliders if slider.isVisibleTo(dims)]
    if not shown:
        return
    metrics = dims.fontMetrics()
    # the text, and room for the line edit's frame and a space (four characters, as napari's)
    need = max(metrics.horizontalAdvance(label.text()) for label in shown) + 4 * metrics.averageCharWidth()
    width = min(need, int(sliders[0].width() * MAX_SHARE))
    for slider in sliders:
        if slider.axis_label.width() < width:
            slider.axis_label.setFixedWidth(width)


class _Resized(QObject):
    """Calls ``then`` whenever the watched widget is resized (the canvas narrowed by a dock)."""

    def __init__(self, parent: QObject, then: Any):
        super().__init__(parent)
        self._then = then

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self._then()
        return False
