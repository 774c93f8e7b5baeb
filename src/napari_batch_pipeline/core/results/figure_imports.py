"""matplotlib's import, started early in a thread so that a screen's plate maps do not wait for it.

A screen's run ends with plate maps (``plate_<plate>.png``), drawn here by matplotlib's
Agg backend without pyplot (``summary.png`` is drawn by :mod:`.figure_process`).
Importing matplotlib takes about a third of a second: :func:`start` imports it in a
thread while the run's tasks compute (they spend their time in code that releases the
GIL), and :func:`wait` lets the run's end wait for that import rather than start a
second one. Only importing happens in the thread, so a program that draws with
matplotlib itself (the napari viewer) is never drawn into.
"""

from __future__ import annotations

import importlib
import sys
import threading

__all__ = ["start", "wait"]

#: what drawing a run's figures imports (pyplot too: a box plot reads every rc setting,
#: and reading ``backend`` imports pyplot to resolve it, though nothing is drawn with it)
MODULES = ("matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.pyplot")

_thread: threading.Thread | None = None
_lock = threading.Lock()


def start() -> None:
    """Import :data:`MODULES` in a thread (once per process; nothing if already imported)."""
    global _thread
    if all(name in sys.modules for name in MODULES):
        return
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_import, name="figure imports")
            _thread.start()


def wait() -> None:
    """Wait for the imports :func:`start` began (none: return at once)."""
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()


def _import() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # drawing imports it again and reports the error
            return
