"""One home for the plugin: its pages tabbed together in one dock area of the viewer.

napari docks every widget opened from the Plugins menu under the ones already open, each
a share of one column: with the builder, the sweep, the batch widget and the results
open, each dock was 120 to 430 pixels tall, and Add stage, Run and Apply were out of
view. The plugin's pages (the builder, the sweep panel, the batch widget and the results
view) instead join one another as tabs of one dock area, as CellProfiler keeps one
window: each page has the whole column's height, and a click on a tab brings it up.

A page calls :func:`mark_page` once built and :func:`join_home` when its dock is first
shown; a dock dragged out (floating) or away later stays where the user put it.
"""

from __future__ import annotations

import contextlib

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QTabWidget, QWidget

__all__ = [
    "PAGE_TITLES",
    "alive",
    "dock_of",
    "join_home",
    "join_home_later",
    "mark_page",
    "pages_of",
    "show_page",
]

#: the tab title of each page, by its kind, in the order the pages are used
PAGE_TITLES = {
    "builder": "Pipeline builder",
    "sweep": "Parameter sweep",
    "batch": "Batch processing",
    "results": "Batch results",
}
#: the Qt property that names a widget's page kind
_PAGE = "napari_batch_pipeline_page"
#: set once a page has joined the home (or found none to join): later shows leave it be
_JOINED = "napari_batch_pipeline_joined"


def mark_page(page: QWidget, kind: str) -> None:
    """Mark ``page`` as the plugin's page ``kind`` (a key of :data:`PAGE_TITLES`)."""
    if kind not in PAGE_TITLES:
        raise ValueError(f"unknown page kind {kind!r}; expected one of {', '.join(PAGE_TITLES)}")
    page.setProperty(_PAGE, kind)


def dock_of(widget: QWidget) -> QDockWidget | None:
    """The dock ``widget`` is in (None when it is not docked)."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def pages_of(window: QMainWindow) -> list[QDockWidget]:
    """The docks of ``window`` that hold one of the plugin's pages, open and docked."""
    return [
        dock
        for dock in window.findChildren(QDockWidget)
        if dock.widget() is not None
        and dock.widget().property(_PAGE)
        and not dock.isHidden()
        and not dock.isFloating()
    ]


def join_home(page: QWidget) -> bool:
    """Tab ``page``'s dock with the plugin's other open pages (the first one opened) and
    bring it up; its tab takes the page's short title, tabs on top. Once per page: True if it joined."""
    dock = dock_of(page)
    if dock is None or page.property(_JOINED):
        return False
    window = dock.parentWidget()
    if not isinstance(window, QMainWindow):
        return False
    page.setProperty(_JOINED, True)
    dock.setWindowTitle(PAGE_TITLES.get(str(page.property(_PAGE)), dock.windowTitle()))
    others = [other for other in pages_of(window) if other is not dock]
    if not others or dock.isFloating():
        return False
    if others[0] not in window.tabifiedDockWidgets(dock):
        window.tabifyDockWidget(others[0], dock)
        # the pages' tabs on top, where a page's title would be
        window.setTabPosition(window.dockWidgetArea(dock), QTabWidget.TabPosition.North)
    show_page(page)
    return True


def join_home_later(page: QWidget) -> None:
    """:func:`join_home` once the current event is handled: napari sizes a new dock after
    adding it, which would undo a tab made while it is being added."""
    if not page.property(_JOINED):
        QTimer.singleShot(0, lambda: _join_if_alive(page))


def _join_if_alive(page: QWidget) -> None:
    with contextlib.suppress(RuntimeError):  # the page was deleted meanwhile
        join_home(page)


def show_page(page: QWidget) -> None:
    """Bring ``page``'s tab to the front (nothing when it is not docked)."""
    dock = dock_of(page)
    if dock is not None:
        dock.show()
        dock.raise_()


def alive(widget: QWidget) -> bool:
    """False once Qt has deleted the widget (its dock was closed)."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True
