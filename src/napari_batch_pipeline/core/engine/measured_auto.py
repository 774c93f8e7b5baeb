"""``auto``'s measured choice within a run: the first tasks on threads, timed; the rest
on the executor the timings favour (see :mod:`..executor_choice` for the prediction).

The runner hands each finished task of the first ones to :meth:`MeasuredAuto.finished`,
then asks :meth:`MeasuredAuto.choose` for the executor of the rest, which run.json and
an :class:`~.events.ExecutorChosen` event record. Where that is processes,
:meth:`MeasuredAuto.until_workers_ready` gives the tasks the threads go on with while
the worker processes start in the background.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..executor_choice import ExecutorChoice, ThreadsMeasure, choose_after_measure
from ..pipeline.model import Pipeline
from ..plan.options import BatchOptions, cpu_count
from ..run_folder.writer import RunFolder
from .jobs import TaskJob
from .process_pool import prestart, warm_workers

__all__ = ["MeasuredAuto"]


class MeasuredAuto:
    """The timing of a run's first tasks on threads, and the choice made from it.

    Parameters
    ----------
    options : BatchOptions
        The run's options (``auto`` resolved to threads, ``executor_measure`` set).
    pipeline : Pipeline
        The run's pipeline (the modules and code worker processes import).
    """

    def __init__(self, options: BatchOptions, pipeline: Pipeline):
        self.options = options
        self.pipeline = pipeline
        self.measure = ThreadsMeasure()
        self._finished = 0

    def finished(self) -> None:
        """One more of the first tasks finished. The timing starts once every worker has
        finished a first task (its imports and warm-up) and counts every task after."""
        self._finished += 1
        if self._finished == self.options.worker_count:
            self.measure.start()
        elif self._finished > self.options.worker_count:
            self.measure.finished()

    def choose(self, remaining: int, folder: RunFolder) -> ExecutorChoice:
        """The executor of the ``remaining`` tasks; run.json records it, with why and the
        numbers (``executor``, ``executor_reason``, ``executor_measured``)."""
        self.measure.stop()
        workers = self.workers(remaining)
        choice = choose_after_measure(
            self.measure,
            remaining,
            workers=workers,
            cores=cpu_count(),
            workers_warm=warm_workers(self.options.low_priority) >= workers,
        )
        folder.write_provenance(
            {
                "executor": choice.executor,
                "executor_reason": f"{self.options.executor_reason}. Measured: {choice.reason}",
                "executor_measured": choice.numbers,
            }
        )
        return choice

    def workers(self, remaining: int) -> int:
        """Workers for ``remaining`` tasks: no more than there are tasks."""
        return max(1, min(self.options.worker_count, remaining))

    def until_workers_ready(self, jobs: Iterator[TaskJob], remaining: int) -> Iterator[TaskJob]:
        """Start the worker processes for ``remaining`` tasks in the background; the jobs
        of ``jobs`` until they are ready (asked after each): the others stay in ``jobs``."""
        ready = prestart(
            self.workers(remaining),
            self.pipeline.modules,
            low_priority=self.options.low_priority,
            code=self.pipeline.user_code,
        )
        for job in jobs:
            yield job
            if all(future.done() for future in ready):
                return
