"""The estimate of a plan, its first image measured where the batch would run it.

A plan's own :meth:`~..plan.BatchPlan.estimate` runs the chain on the first image in
this process. With the processes and dask executors no task runs in this process, so
that a stage that crashes (a segfault) or hangs ends a worker, not the command or the
napari viewer: :func:`estimate_plan` measures the first image the same way, in a
supervised worker process of its own, under the plan's task timeout. With the serial and
threads executors tasks run here anyway, and so does the measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import PipelineError
from ..images.sources import Source
from ..pipeline.model import Pipeline
from ..plan.batch_plan import BatchPlan
from ..plan.estimate import Estimate, measure_sources
from ..tiles.settings import TileSettings
from .process_pool import ProcessExecutor

__all__ = ["ISOLATED_EXECUTORS", "estimate_plan"]

#: the executors that run no task in the calling process
ISOLATED_EXECUTORS = ("processes", "dask")


def estimate_plan(plan: BatchPlan, measured: tuple[float, int, int] | None = None) -> Estimate:
    """The plan's estimate; its first image measured in a worker process with the processes
    and dask executors, here with the others (or taken from ``measured``).

    Raises
    ------
    PipelineError
        If none of the first images can be read, or the measurement ended its worker
        (a crash, or the task timeout): the message says how.
    """
    if measured is None and plan.options.executor in ISOLATED_EXECUTORS:
        measured = _measure_in_worker(plan)
    return plan.estimate(measured)


def _measure_in_worker(plan: BatchPlan) -> tuple[float, int, int]:
    tiling = plan.options.tiling() if plan.options.strategy == "vertical" else None
    job = (plan.pipeline.to_dict(), list(plan.sources[:5]), tiling)
    timeout = plan.options.task_timeout
    executor = ProcessExecutor(
        1, task_timeout=timeout, low_priority=plan.options.low_priority, code=plan.pipeline.user_code
    )
    try:
        for _, result in executor.map(_measure, [job]):
            if isinstance(result, PipelineError):
                raise PipelineError(str(result)) from None
            if isinstance(result, BaseException):
                raise PipelineError(
                    f"the first image could not be measured: {result}",
                    options=("task_timeout",) if timeout else (),
                ) from None
            seconds, peak, saved = result
            return float(seconds), int(peak), int(saved)
    finally:
        executor.close()
    raise PipelineError("the first image could not be measured: the measurement was cancelled")


def _measure(job: tuple[dict[str, Any], Sequence[Source], TileSettings | None]) -> tuple[float, int, int]:
    """In a worker: the pipeline on the first readable image (or its first tile), measured."""
    pipeline, sources, tiling = job
    return measure_sources(Pipeline.from_dict(pipeline), sources, tiling)
