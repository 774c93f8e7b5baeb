"""The two ways to walk a batch, behind one interface.

- **vertical**: each task goes through the whole chain, then the next; a few images in
  memory at a time, the first results at once.
- **horizontal**: each stage runs over every task before the next stage starts; the
  intermediates are kept on disk (:mod:`.horizontal`).

A strategy is handed the jobs still to run and an executor, and yields a
:class:`TaskRecord` per finished task (and :class:`StageProgress` between stages). The
vertical one can also *start* the batch: it runs tasks until the first one succeeds,
measured, so that the estimate and the first result come at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ..pipeline.model import Pipeline
from ..run_folder.records import TaskRecord
from ..tiles.stop import TilingStopped
from .events import StageProgress
from .executors import Executor
from .horizontal import UnitJob, UnitResult, finish_task, intermediate_path, run_unit
from .jobs import TaskJob, load_pipeline, run_task
from .worker_guard import WorkerDied

__all__ = ["STRATEGY_CLASSES", "Horizontal", "Measured", "Started", "Strategy", "Vertical", "make_strategy"]

#: seconds, bytes held and bytes written by one task
Measured = tuple[float, int, int]
Item = TaskRecord | StageProgress


@dataclass
class Started:
    """What :meth:`Strategy.start` did: tasks run here, the executor, the results under way."""

    executor: Executor | None = None
    probes: list[TaskRecord] = field(default_factory=list)
    measured: Measured | None = None
    remaining: list[TaskJob] = field(default_factory=list)
    results: Iterator[Item] | None = None


class Strategy(ABC):
    """How the tasks of a batch are walked; see the module docstring."""

    name = ""

    def start(self, jobs: Sequence[TaskJob], executor: Callable[[], Executor], *, serial: bool) -> Started:
        """Begin the batch; by default nothing runs until :meth:`run`."""
        return Started(remaining=list(jobs))

    @abstractmethod
    def run(self, pipeline: Pipeline, jobs: Sequence[TaskJob], executor: Executor) -> Iterator[Item]:
        """Run ``jobs`` on ``executor``; yield each finished task's record (and progress)."""


class Vertical(Strategy):
    """Each task through the whole chain, in a worker."""

    name = "vertical"

    def start(self, jobs: Sequence[TaskJob], executor: Callable[[], Executor], *, serial: bool) -> Started:
        """Run tasks until one succeeds, measured: serial here (up to 3), else in the pool.

        A parallel executor gets every task at once, the first included, so that no task
        runs in this process, where its crash would end the run; the first records to
        come back (up to one window, until one succeeds) give the measurement.
        """
        pending = list(jobs)
        started = Started()
        if serial:
            while pending and started.measured is None and len(started.probes) < 3:
                try:
                    record, started.measured = _probe(pending[0])
                except TilingStopped:  # cancelled mid-image: left for the resume
                    break
                pending.pop(0)
                started.probes.append(record)
        elif pending:
            by_key = {job.key: job for job in pending}
            started.executor = executor()
            started.results = _records(started.executor.map(run_task, pending))
            pending = []
            for item in started.results:
                assert isinstance(item, TaskRecord)
                record = item
                started.probes.append(record)
                if record.done:
                    started.measured = _measured(by_key[record.key], record)
                if started.measured is not None or len(started.probes) >= started.executor.window:
                    break
        started.remaining = pending
        return started

    def run(self, pipeline: Pipeline, jobs: Iterable[TaskJob], executor: Executor) -> Iterator[Item]:
        """Each job through the whole chain; ``jobs`` are taken as the executor needs them."""
        return _records(executor.map(run_task, jobs))


class Horizontal(Strategy):
    """Each stage over every task, then the next stage; intermediates on disk."""

    name = "horizontal"

    def run(self, pipeline: Pipeline, jobs: Sequence[TaskJob], executor: Executor) -> Iterator[Item]:
        failed: set[str] = set()
        by_key = {job.key: job for job in jobs}
        for stage in pipeline.stage_names:
            if executor.cancelled:
                return
            if stage in pipeline.group_stages:  # computed once per group, before (see .groups)
                continue
            units = _units(stage, [job for job in jobs if job.key not in failed])
            for done, (unit, result) in enumerate(executor.map(run_unit, units), 1):
                if not isinstance(result, UnitResult):
                    result = UnitResult(False, f"worker stopped: {type(result).__name__}: {result}")
                if not result.done:
                    for key in unit.keys:
                        failed.add(key)
                        yield by_key[key].failure(result.error, traceback=result.traceback, seconds=0.0)
                yield StageProgress(stage, done, len(units))
            if executor.cancelled:
                return
        remaining = [job for job in jobs if job.key not in failed]
        for job, record in executor.map(finish_task, remaining):
            yield record if isinstance(record, TaskRecord) else _worker_stopped(job, record)


def _records(results: Iterator[tuple[TaskJob, object]]) -> Iterator[Item]:
    for job, result in results:
        yield result if isinstance(result, TaskRecord) else _worker_stopped(job, result)


def _units(stage: str, jobs: Sequence[TaskJob]) -> list[UnitJob]:
    """One unit per distinct intermediate: tasks of a sweep share their upstream stages."""
    units: dict[str, UnitJob] = {}
    for job in jobs:
        unit_id = str(intermediate_path(job, load_pipeline(job), stage))
        if unit_id in units:
            units[unit_id].keys.append(job.key)
        else:
            units[unit_id] = UnitJob(stage, job, [job.key])
    return list(units.values())


def _probe(job: TaskJob) -> tuple[TaskRecord, Measured | None]:
    """Run one task here; its measurement (seconds, bytes held, bytes written) if it succeeded."""
    record = run_task(job)
    return record, (_measured(job, record) if record.done else None)


def _measured(job: TaskJob, record: TaskRecord) -> Measured:
    """Seconds, bytes held and bytes written by a task that succeeded."""
    paths = (job.layout.output(stage, job.stem) for stage in load_pipeline(job).saved_stages)
    saved = sum(path.stat().st_size for path in paths if path.exists())
    return record.seconds, record.held_bytes, saved


def _worker_stopped(job: TaskJob, error: object) -> TaskRecord:
    if isinstance(error, WorkerDied):
        return job.failure(f"worker stopped: {error}")
    return job.failure(f"worker stopped: {type(error).__name__}: {error}")


STRATEGY_CLASSES: dict[str, type[Strategy]] = {"vertical": Vertical, "horizontal": Horizontal}


def make_strategy(name: str) -> Strategy:
    """The strategy called ``name`` (checked by :class:`~.options.BatchOptions`)."""
    return STRATEGY_CLASSES[name]()
