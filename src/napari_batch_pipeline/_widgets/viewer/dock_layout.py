"""Docks that fit the screen: content in a scroll area, messages that wrap.

napari stacks docked widgets in one column of its main window, and the window cannot be
shorter than the sum of their minimum heights: four docks of forms, tables and plots
made it twice the height of a 1200-pixel screen. Each of this plugin's docks lays its
content out in :func:`scrolling_layout`, so that a dock is as short as napari makes it
and scrolls; :func:`wrapping` keeps a long message from widening its dock for good.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

__all__ = ["MIN_DOCK_HEIGHT", "scrolling_layout", "wrapping"]

#: pixels a dock keeps however short the window: a few lines of its content
MIN_DOCK_HEIGHT = 120


def scrolling_layout(owner: QWidget) -> QVBoxLayout:
    """A vertical layout for ``owner``'s content, inside a scroll area that fills ``owner``.

    The content keeps its minimum height (forms stay readable) and scrolls when the dock
    is shorter; when the dock is taller, stretchable parts (tables, plots) grow. Only
    vertical scrolling: the content follows the dock's width.
    """
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    area = _VerticalScroll(owner)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    content = QWidget(area)
    area.setWidget(content)
    outer.addWidget(area)
    return QVBoxLayout(content)


class _VerticalScroll(QScrollArea):
    """A scroll area as wide as its content needs and as short as :data:`MIN_DOCK_HEIGHT`:
    it scrolls up and down, never cuts its content at the side."""

    def _content(self, hint: QSize) -> QSize:
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(hint.width() + bar, hint.height())

    def minimumSizeHint(self) -> QSize:
        content = self.widget()
        width = self._content(content.minimumSizeHint()).width() if content is not None else 0
        return QSize(width, MIN_DOCK_HEIGHT)

    def sizeHint(self) -> QSize:
        content = self.widget()
        return self._content(content.sizeHint()) if content is not None else super().sizeHint()


def wrapping(*labels: Any) -> None:
    """Make magicgui ``labels`` wrap long text instead of widening their dock."""
    for label in labels:
        native = label.native
        native.setWordWrap(True)
        native.setMinimumWidth(0)
        native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
