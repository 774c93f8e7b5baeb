"""The batch front: a folder in, a run folder out; vertical or horizontal; resumable.

``BatchRun`` plans the batch when it is built (:func:`.plan.plan_batch`: everything
checked, nothing written), then ``events()`` runs the plan (:class:`.engine.runner.Runner`)
and yields plain events; ``cancel()`` may be called from another thread. ``run_batch``
is the one-call form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .engine.events import Event
from .engine.jobs import TaskJob
from .engine.measure import estimate_plan
from .engine.process_pool import prestart
from .engine.report import Report
from .engine.runner import Runner
from .engine.strategies import Measured
from .images.sources import Source
from .pipeline.model import Pipeline
from .plan.batch_plan import BatchPlan, plan_batch
from .plan.estimate import Estimate
from .plan.options import STRATEGIES, BatchOptions
from .plan.params_table import ParamsTable
from .plan.tasks import Task
from .run_folder.writer import RunFolder, command_line

__all__ = ["STRATEGIES", "BatchRun", "Report", "run_batch"]


class BatchRun:
    """A batch of one pipeline over a folder (and a parameter grid): its plan and its run.

    Parameters are those of :func:`run_batch`, and ``start_workers``: with the processes
    executor, start the worker processes now, while the batch is planned (False: when it
    runs; for a batch that is only estimated). Everything is checked here, before
    anything is written; :meth:`events` then runs the batch.

    Attributes
    ----------
    plan : BatchPlan
        The tasks and what made them (``tasks``, ``files``, ``sources``, ``param_sets``,
        ``params_table``, ``unmatched`` and ``sweep`` read through to it).
    folder : RunFolder
        The run folder written.
    report : Report or None
        Set when the run has finished.

    Raises
    ------
    PipelineError
        For a bad option, an invalid pipeline, an unusable folder, or a run folder
        another run is writing.
    """

    def __init__(
        self,
        pipeline: Pipeline | str | Path,
        input_dir: str | Path,
        output_dir: str | Path,
        *,
        command: str | None = None,
        start_workers: bool = True,
        **options: Any,
    ):
        pipeline = pipeline if isinstance(pipeline, Pipeline) else Pipeline.from_yaml(pipeline)
        checked = BatchOptions(**options).resolved(pipeline)
        if start_workers and checked.executor == "processes":  # they start while it plans
            prestart(
                checked.worker_count,
                pipeline.modules,
                low_priority=checked.low_priority,
                code=pipeline.user_code,
            )
        self.folder = RunFolder(output_dir)
        self.folder.check_free()  # another run writing it: refused before anything else
        self.plan: BatchPlan = plan_batch(pipeline, input_dir, self.folder.path, checked)
        self.command = command or command_line()
        self._runner = Runner(self.plan, self.folder, self.command)

    # -- the plan -----------------------------------------------------------------------

    @property
    def pipeline(self) -> Pipeline:
        return self.plan.pipeline

    @property
    def options(self) -> BatchOptions:
        return self.plan.options

    @property
    def input_dir(self) -> Path:
        return self.plan.input_dir

    @property
    def tasks(self) -> list[Task]:
        return self.plan.tasks

    @property
    def files(self) -> list[Source]:
        return self.plan.files

    @property
    def sources(self) -> list[Source]:
        return self.plan.sources

    @property
    def param_sets(self) -> list[dict[str, Any]]:
        return self.plan.param_sets

    @property
    def sweep(self) -> dict[str, Any]:
        return self.plan.sweep

    @property
    def params_table(self) -> ParamsTable | None:
        return self.plan.params_table

    @property
    def unmatched(self) -> int:
        return self.plan.unmatched

    @property
    def strategy(self) -> str:
        return self.options.strategy

    @property
    def executor_name(self) -> str:
        return self.options.executor

    @property
    def workers(self) -> int:
        return self.options.worker_count

    def estimate(self, measured: Measured | None = None) -> Estimate:
        """Memory and time of the batch, measured on the first image (in a worker process
        with the processes and dask executors); writes nothing."""
        return estimate_plan(self.plan, measured)

    # -- the run ------------------------------------------------------------------------

    @property
    def report(self) -> Report | None:
        return self._runner.report

    def cancel(self) -> None:
        """Stop promptly: nothing new starts, workers stop; safe from any thread."""
        self._runner.cancel()

    @property
    def cancelled(self) -> bool:
        return self._runner.cancelled

    def job(self, task: Task) -> TaskJob:
        """What a worker needs for ``task``."""
        return self._runner.job(task)

    def events(self) -> Iterator[Event]:
        """Run the batch, yielding events; the last one is RunFinished (see
        :meth:`.engine.runner.Runner.events`)."""
        return self._runner.events()


def run_batch(
    pipeline: Pipeline | str | Path,
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    on_event: Callable[[Event], None] | None = None,
    **options: Any,
) -> Report:
    """Run ``pipeline`` on every image of ``input_dir``; write the run folder ``output_dir``.

    Parameters
    ----------
    pipeline : Pipeline or path
        The pipeline, or its YAML file.
    input_dir, output_dir : path
        Where the images are, and the run folder to write (resumed if it holds a run
        of the same pipeline).
    on_event : callable, optional
        Called with every engine event (progress).
    **options
        ``pattern``, ``recursive``, ``metadata``, ``executor`` (auto, the default:
        threads or processes as the pipeline needs; serial, threads, processes,
        dask), ``workers``, ``scheduler``, ``strategy`` (vertical,
        horizontal), ``sweep`` (``{'stage.param': [values]}``), ``memory_budget``
        (bytes), ``limit``, ``fresh``, ``params`` (a parameter table, CSV), ``group_by``
        (the summary's grouping columns) (see :class:`~.options.BatchOptions`).

    Returns
    -------
    Report
        Counts, ``images`` and ``tables`` as pandas frames, ``exit_code``.

    Raises
    ------
    ConclusionsError
        If the tasks ran but the tables or conclusions could not be written at the end
        (``run.json`` says failed); running again, or ``summarize``, completes the run.
    """
    batch = BatchRun(pipeline, input_dir, output_dir, **options)
    for event in batch.events():
        if on_event is not None:
            on_event(event)
    assert batch.report is not None
    return batch.report
