"""Calling a slow function from the main thread while the viewer's event loop goes on."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from qtpy.QtCore import QEventLoop, QTimer

__all__ = ["call_responsively", "disabled"]

T = TypeVar("T")

#: milliseconds between looks at whether the call has ended
_POLL_MS = 5


def call_responsively(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a thread of its own; this (main) thread turns the
    event loop until it returns, then returns its result or raises its exception.

    For work that must end before the caller goes on, as a batch's plan before its run
    starts, without freezing the viewer meanwhile. ``function`` must not touch widgets.
    The event loop turns meanwhile: the caller keeps its own buttons from starting the
    same work twice.
    """
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=call, name=getattr(function, "__name__", "call"), daemon=True)
    thread.start()
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(_POLL_MS)
    timer.timeout.connect(lambda: None if thread.is_alive() else loop.quit())
    timer.start()
    if thread.is_alive():
        loop.exec()
    timer.stop()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@contextmanager
def disabled(*widgets: Any) -> Iterator[None]:
    """Disable magicgui ``widgets`` for the ``with`` block, then give each its state back."""
    states = [widget.enabled for widget in widgets]
    for widget in widgets:
        widget.enabled = False
    try:
        yield
    finally:
        for widget, enabled in zip(widgets, states, strict=True):
            widget.enabled = enabled
