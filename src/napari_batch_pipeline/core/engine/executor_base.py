"""The executor interface, and the serial executor that defines it.

An executor maps a picklable function over jobs with a bounded number in flight and
yields ``(job, result)`` pairs as they finish; a job whose worker died yields an
exception as its result. ``cancel()`` stops promptly: nothing new starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..tiles.stop import TilingStopped, stop_tiled_runs

__all__ = ["Executor"]


class Executor:
    """Serial: one job after another in this process."""

    name = "serial"

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._cancelled = threading.Event()
        stop_tiled_runs(False)

    @property
    def window(self) -> int:
        """How many jobs may be in flight at once."""
        return 2 * self.workers if self.workers > 1 else 1

    def map(self, function: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        for job in jobs:
            if self._cancelled.is_set():
                return
            try:
                result = function(job)
            except TilingStopped:  # cancelled mid-image: left for the resume
                return
            yield job, result

    def cancel(self) -> None:
        self._cancelled.set()
        stop_tiled_runs()  # a tiled image in this process stops at its next tile

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def close(self) -> None:
        """Release workers (a no-op for serial)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
