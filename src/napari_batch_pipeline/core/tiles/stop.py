"""Stopping a tiled image between two tiles when its run is cancelled.

A tiled image can run for minutes in one task. The executors that run tasks in this
process (serial, threads) cannot interrupt a task, so their ``cancel()`` calls
:func:`stop_tiled_runs`, and a tiled image checks :func:`check_stop` after every tile:
it stops there, with its finished tiles kept for the resume. Worker processes are
stopped by their executor as any task is.
"""

from __future__ import annotations

import threading

__all__ = ["TilingStopped", "check_stop", "stop_tiled_runs"]

#: set by a cancel of the executors that run tasks in this process (serial, threads): a
#: tiled image stops at its next tile instead of running to its end (minutes, for a
#: slide); its finished tiles stay for the resume
_STOP = threading.Event()


class TilingStopped(RuntimeError):
    """A tiled image stopped between two tiles because its run was cancelled."""


def stop_tiled_runs(stop: bool = True) -> None:
    """Stop (or, with ``stop=False``, allow again) the tiled images running in this process."""
    if stop:
        _STOP.set()
    else:
        _STOP.clear()


def check_stop(where: str) -> None:
    """Raise :class:`TilingStopped` if the run was cancelled."""
    if _STOP.is_set():
        raise TilingStopped(f"the run was cancelled during {where}")
