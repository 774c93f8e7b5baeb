"""One tuning session per viewer: what the builder, the sweep panel and the batch widget share.

Widgets never look for each other; each asks ``session_for(viewer)`` and views the
:class:`~napari_batch_pipeline.core.tuning.session.TuningSession` it gets, following its
signals with :func:`follow` and describing image layers to it as :func:`layer_image`. The
session lives as long as its viewer (it holds no reference to the viewer, nor to its
views).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject

from ...core.tuning.image import LayerImage
from ...core.tuning.session import TuningSession

__all__ = ["follow", "group_values", "layer_image", "session_for"]

_SESSIONS: weakref.WeakKeyDictionary[Any, TuningSession] = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> TuningSession:
    """The tuning session of ``viewer``, made on first use.

    Parameters
    ----------
    viewer : napari.Viewer
        Or the public-only proxy napari hands to plugin widgets: both give the same session.
    """
    viewer = getattr(viewer, "__wrapped__", viewer)
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = TuningSession()
    return session


def layer_image(layer: Any) -> LayerImage:
    """An image layer as the core sees it: its data under a key that changes with the data."""
    return LayerImage(
        f"{id(layer)}:{id(layer.data)}",
        layer.name,
        layer.data,
        scale=tuple(map(float, layer.scale)),
        translate=tuple(map(float, layer.translate)),
        rgb=bool(layer.rgb),
        group=group_values(layer),
    )


def group_values(layer: Any) -> dict[str, str]:
    """What a layer tells of the columns a group stage groups by: ``folder``, the folder
    of the file it was opened from, and the text and number entries of its metadata
    (``plate``, ``well``... where whoever added it put them there)."""
    values = {
        str(key): str(value)
        for key, value in layer.metadata.items()
        if isinstance(value, (str, int, float)) and not isinstance(value, bool)
    }
    path = getattr(layer.source, "path", None)
    if path:
        values.setdefault("folder", str(Path(path).parent))
    return values


def follow(view: QObject, session: TuningSession, handlers: Mapping[str, str]) -> None:
    """Connect signals of ``session`` to methods of ``view``, until ``view`` is destroyed.

    Parameters
    ----------
    view : QObject
        The widget; the session holds it weakly, and forgets it when Qt destroys it.
    session : TuningSession
    handlers : dict of str to str
        Signal names of the session mapped to method names of ``view``.
    """
    for signal, method in handlers.items():
        getattr(session, signal).connect(getattr(view, method))
    view.destroyed.connect(partial(_forget, session, weakref.ref(view), dict(handlers)))


def _forget(session: TuningSession, view: weakref.ref, handlers: dict[str, str], *_args: Any) -> None:
    target = view()
    if target is not None:
        for signal, method in handlers.items():
            getattr(session, signal).disconnect(getattr(target, method), missing_ok=True)
