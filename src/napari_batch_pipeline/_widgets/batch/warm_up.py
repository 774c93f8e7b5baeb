"""The first Run as quick as the next: what a run starts, started while the form is filled.

A first run in a new viewer waited seconds before its first row (worker processes
starting, each importing scikit-image and the engine, niced below a viewer that is busy
itself) and again before its layers (the modules that read a run folder back, imported on
first use). :func:`warm_up`, called when the batch widget is first shown, starts both in
the background: the warm pool of worker processes the run will use (niced, as the
widget's runs are) and, in a thread, the imports of reading results. A run that starts
before any worker is ready does not wait for them: :attr:`WarmUp.workers_starting` tells
``auto`` to take threads for that run (``BatchOptions.workers_starting``).
"""

from __future__ import annotations

import importlib
import threading
from concurrent import futures

from ...core.engine.process_pool import prestart

__all__ = ["RESULT_MODULES", "WarmUp", "warm_up"]

#: what loading a run's results imports on first use
RESULT_MODULES = (
    "dask.array",
    "napari_batch_pipeline.core.run_folder.reader",
    "napari_batch_pipeline.core.run_folder.lazy",
)


class WarmUp:
    """What :func:`warm_up` started: the imports' thread and the workers' first jobs."""

    def __init__(self, thread: threading.Thread, workers: list[futures.Future]):
        self.thread = thread
        self.workers = workers

    @property
    def workers_starting(self) -> bool:
        """True while worker processes were started and none of them is ready yet."""
        return bool(self.workers) and not any(job.done() for job in self.workers)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the imports of reading results (not for the workers)."""
        self.thread.join(timeout)


def warm_up(executor: str, workers: int) -> WarmUp:
    """Start the worker processes of ``executor`` (``'processes'``, or ``'auto'``, which
    chooses them beside the viewer: ``workers`` of them, niced) and import the modules of
    reading results in a thread."""
    jobs = prestart(workers, (), low_priority=True) if executor in ("processes", "auto") else []
    thread = threading.Thread(target=_import_all, name="warm-up", daemon=True)
    thread.start()
    return WarmUp(thread, jobs)


def _import_all() -> None:
    for name in RESULT_MODULES:
        importlib.import_module(name)
