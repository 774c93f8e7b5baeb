"""The first Run as quick as the next: what a run starts, started while the form is filled.

A first run in a new viewer waited seconds before its first row (worker processes
starting, each importing scikit-image and the engine) and again before its layers (the
modules that read a run folder back, imported on first use). :func:`warm_up`, called
when the batch widget is first shown, starts both in the background: the warm pool of
worker processes the run will use (niced, as the widget's runs are) and, in a thread,
the imports of reading results. A run started before they are done simply waits less.
"""

from __future__ import annotations

import importlib
import threading

from ..core.engine.process_pool import prestart

__all__ = ["RESULT_MODULES", "warm_up"]

#: what loading a run's results imports on first use
RESULT_MODULES = (
    "dask.array",
    "napari_batch_pipeline.core.run_folder.reader",
    "napari_batch_pipeline.core.run_folder.lazy",
)


def warm_up(executor: str, workers: int) -> threading.Thread:
    """Start the worker processes of ``executor`` (``'processes'``, or ``'auto'``, which
    chooses them beside the viewer: ``workers`` of them, niced) and import the modules of
    reading results in a thread; return the thread."""
    if executor in ("processes", "auto"):
        prestart(workers, (), low_priority=True)
    thread = threading.Thread(target=_import_all, name="warm-up", daemon=True)
    thread.start()
    return thread


def _import_all() -> None:
    for name in RESULT_MODULES:
        importlib.import_module(name)
