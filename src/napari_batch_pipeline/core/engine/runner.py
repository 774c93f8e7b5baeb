"""Running a plan into a run folder: the ledger, the executor, the events, the tables.

A :class:`Runner` takes a checked :class:`~..plan.BatchPlan` and the
:class:`~..run_folder.writer.RunFolder` it writes; :meth:`Runner.events` locks the
folder, keeps the tasks already done with an unchanged input, runs the others with the
plan's strategy and executor, and yields plain events, the last one
:class:`~.events.RunFinished`. :meth:`Runner.cancel` may be called from any thread.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConclusionsError, PipelineError, StageError
from ..executor_choice import measured_tasks
from ..pipeline.model import Pipeline
from ..plan.batch_plan import BatchPlan
from ..plan.estimate import Estimate
from ..plan.options import cpu_count
from ..plan.tasks import Task
from ..plan.training import Forests
from ..results import figure_imports, figure_process
from ..results.conclusions import conclude
from ..run_folder.provenance import STAGE_RETURNS
from ..run_folder.records import TaskRecord, file_stat, format_traceback, input_fingerprint, input_stamp
from ..run_folder.space import DiskFullError
from ..run_folder.tables import FOLDER
from ..run_folder.writer import FAILED_IN, RunFolder, provenance_versions, timestamp
from ..tiles.stop import stop_tiled_runs
from .events import Event, ExecutorChosen, RunFinished, RunStarted, StageProgress, TaskFinished
from .executors import Executor, make_executor
from .groups import GroupPasses
from .jobs import TaskJob
from .measure import estimate_plan
from .measured_auto import MeasuredAuto
from .report import Report
from .strategies import Measured, Strategy, Vertical, make_strategy

__all__ = ["Runner"]


@dataclass
class _Ledger:
    """The state of a run's tasks while it runs: finished records, and the counts."""

    records: dict[str, TaskRecord]
    #: per task: the fingerprint its record is kept under (files, then its groups' keys)
    inputs: dict[str, list[int] | None]
    skipped: int
    #: per task: the fingerprint of its files alone
    files: dict[str, list[int] | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0})


class Runner:
    """Runs one plan into one run folder.

    Parameters
    ----------
    plan : BatchPlan
        What to run.
    folder : RunFolder
        Where to write it (the folder the plan was made for).
    command : str
        The command line run.json records.
    """

    def __init__(self, plan: BatchPlan, folder: RunFolder, command: str):
        self.plan = plan
        self.folder = folder
        self.command = command
        self._cancel = threading.Event()
        self._executor: Executor | None = None
        self._pending: int | None = None
        self._forests = Forests(plan.pipeline)  # trained as the jobs are made, before any runs
        self.report: Report | None = None

    @property
    def pipeline(self) -> Pipeline:
        return self.plan.pipeline

    @property
    def tasks(self) -> list[Task]:
        return self.plan.tasks

    # -- control ------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop promptly: nothing new starts, workers stop; safe from any thread."""
        self._cancel.set()
        # a tiled image running here stops at its next tile, executor or not (the serial
        # executor's first task runs before it exists, to measure the estimate)
        stop_tiled_runs()
        if self._executor is not None:
            self._executor.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @functools.cached_property
    def _tiling(self) -> dict[str, Any]:
        """How the tasks tile a large image: the options, and threads for the cores that
        fewer tasks than workers leave idle (one slide on a machine of several cores; the
        serial executor keeps to one)."""
        options = self.plan.options
        settings = options.tiling()
        in_flight = max(1, min(options.worker_count, len(self.tasks)))
        threads = 1 if options.executor == "serial" else max(1, cpu_count() // in_flight)
        return settings.to_json() | {"budget": settings.budget, "threads": threads}

    def job(self, task: Task) -> TaskJob:
        """What a worker needs for ``task``."""
        return TaskJob(
            key=task.key,
            index=task.index,
            path=str(task.source.path),
            image=task.image,
            label=task.label,
            output_dir=str(self.folder.path),
            pipeline=self.pipeline.to_dict(),
            pipeline_hash=self.pipeline.hash,
            params=task.values,
            metadata=task.metadata,
            source=task.source,
            field_stem=task.field_stem,
            stem=task.output_stem,
            stamp=input_stamp(input_fingerprint(task.source.files)),
            tiling=self._tiling,
            trained=self._forests.of(task.values),
        )

    # -- running ------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Run the plan, yielding events; the last one is RunFinished. The output folder
        is locked meanwhile and given back on every way out; a full disk stops the run
        (:class:`DiskFullError`) with the tables of the tasks done so far."""
        try:
            yield from self._events()
        except DiskFullError:
            self.folder.salvage(self.pipeline, self.tasks)
            raise
        finally:
            self.folder.unlock()

    def _events(self) -> Iterator[Event]:
        started = time.perf_counter()
        stop_tiled_runs(False)  # a cancel of an earlier run in this process is over
        options = self.plan.options
        if _idle_while_workers_compute(options.executor) and not figure_process.running():
            figure_imports.start()  # cheaper than starting a process beside the workers'
        else:
            figure_process.start()  # summary.png, by a process that imports matplotlib meanwhile
        if options.annotations or options.negative_control:  # plate maps, drawn here
            figure_imports.start()
        # the first image measured as a task would run; where images may be tiled, those
        # that would not fit the budget are tiled instead (and measuring one whole could not)
        if options.memory_budget is not None and not options.tiles_within_budget(self.pipeline):
            self.plan.check_budget(lambda: estimate_plan(self.plan))
        passes = GroupPasses(self.plan.groups, self.job, self.folder.layout) if self.plan.groups else None
        ledger = self._open(passes)
        pending = [self.job(task) for task in self.tasks if task.key not in ledger.records]
        self._pending = len(pending)  # no more workers than tasks to run
        strategy = make_strategy(options.strategy)
        interrupted = False
        try:
            if passes is not None:
                yield from self._grouped(passes, strategy, ledger, pending)
            else:
                yield from self._ungrouped(strategy, ledger, pending)
        except KeyboardInterrupt:
            # Ctrl-C where Python raises it (a serial run from a script or a notebook):
            # cancelled like the command line's Ctrl-C, the tables written, then re-raised
            self.cancel()
            interrupted = True
        finally:
            if self._executor is not None:
                self._executor.close()
            self.folder.remove_partials()
        self.report = self._close(ledger, time.perf_counter() - started, passes)
        if interrupted:
            raise KeyboardInterrupt
        yield RunFinished(self.report)

    def _ungrouped(self, strategy: Strategy, ledger: _Ledger, pending: list[TaskJob]) -> Iterator[Event]:
        """A run without group stages: the strategy starts (measuring a first task for
        the estimate), then runs the rest. ``auto``'s measured choice (see
        :mod:`.measured_auto`): the first tasks on threads, timed, the rest where the
        timings say they run faster (a batch with no rest to choose for stays)."""
        options = self.plan.options
        timed = measured_tasks(options.worker_count)
        measuring = options.executor_measure and strategy.name == "vertical" and len(pending) > timed
        first, rest = (pending[:timed], pending[timed:]) if measuring else (pending, [])
        auto = MeasuredAuto(options, self.pipeline)
        start = strategy.start(
            [] if self.cancelled else first, self._make_executor, serial=options.executor == "serial"
        )
        yield self._started(ledger, self._estimate(start.measured, bool(pending)))
        items = start.results
        if items is None and start.remaining and not self.cancelled:
            items = strategy.run(self.pipeline, start.remaining, self._make_executor())
        for item in itertools.chain(start.probes, items or ()):
            if isinstance(item, StageProgress):
                yield item
                continue
            if measuring:
                auto.finished()
            yield self._finished(ledger, item)
        if rest and not self.cancelled:
            choice = auto.choose(len(rest), self.folder)
            yield ExecutorChosen(choice.executor, choice.reason)
            yield from self._rest(strategy, ledger, rest, auto if choice.executor == "processes" else None)

    def _rest(
        self, strategy: Strategy, ledger: _Ledger, rest: list[TaskJob], auto: MeasuredAuto | None
    ) -> Iterator[Event]:
        """The tasks after ``auto``'s measure: on the threads that ran the first ones, or,
        given ``auto``, on threads until worker processes are ready, then on those."""
        threads = self._executor
        assert threads is not None and isinstance(strategy, Vertical)  # the first tasks ran so
        jobs = iter(rest)
        if auto is not None:
            for item in strategy.run(self.pipeline, auto.until_workers_ready(jobs, len(rest)), threads):
                yield item if isinstance(item, StageProgress) else self._finished(ledger, item)
            if self.cancelled:
                return
            options = replace(self.plan.options, executor="processes")
            self._executor = make_executor(options, self.pipeline.user_code, auto.workers(len(rest)))
            threads.close()
            if self.cancelled:
                self._executor.cancel()
        for item in strategy.run(self.pipeline, jobs, self._executor or threads):
            yield item if isinstance(item, StageProgress) else self._finished(ledger, item)

    def _grouped(
        self, passes: GroupPasses, strategy: Strategy, ledger: _Ledger, pending: list[TaskJob]
    ) -> Iterator[Event]:
        """A run with group stages: passes A and B (see :mod:`.groups`), then the strategy
        over the tasks that can go on; no first task is measured for an estimate."""
        yield self._started(ledger, None)
        if not pending or self.cancelled:
            return
        executor = self._make_executor()
        for item in passes.run(pending, executor):
            yield item if isinstance(item, StageProgress) else self._finished(ledger, item)
        for job in passes.ready:  # recorded with the keys of the results they are given
            files = ledger.files[job.key]
            ledger.inputs[job.key] = None if files is None else files + passes.fingerprint(job.key)
        if passes.ready and not self.cancelled:
            for item in strategy.run(self.pipeline, passes.ready, executor):
                yield item if isinstance(item, StageProgress) else self._finished(ledger, item)
        if self.plan.options.strategy == "vertical" and not self.cancelled:
            # the vertical strategy keeps no intermediates: the members' inputs to their group
            # results go once those are learnt (a later run that learns again makes them again)
            passes.discard_members()

    def _started(self, ledger: _Ledger, estimated: Estimate | None) -> RunStarted:
        options = self.plan.options
        return RunStarted(
            len(self.tasks),
            ledger.skipped,
            str(self.folder.path),
            options.strategy,
            options.executor,
            options.worker_count,
            estimated,
            tuple(ledger.records[t.key] for t in self.tasks if t.key in ledger.records),
            options.executor_reason,
        )

    def _make_executor(self) -> Executor:
        self._executor = make_executor(self.plan.options, self.pipeline.user_code, self._pending)
        if self.cancelled:
            self._executor.cancel()
        return self._executor

    def _open(self, passes: GroupPasses | None) -> _Ledger:
        """Prepare the run folder; the tasks already done with an unchanged input (and, in
        a group, unchanged groups) are kept, their per-object rows given this run's
        metadata columns where those changed."""
        before = self.folder.recorded_settings()
        done = self.folder.prepare(
            self.pipeline, fresh=self.plan.options.fresh, tasks=self.tasks, reusable=self._reusable()
        )
        files = {task.key: input_fingerprint(task.source.files) for task in self.tasks}
        inputs = dict(files)
        if passes is not None:
            inputs = {k: v if v is None else v + passes.fingerprint(k) for k, v in inputs.items()}
        records = {key: r for key, r in done.items() if key in inputs and r.input == inputs[key]}
        options = self.plan.options
        if records and (before.get("metadata"), bool(before.get("recursive"))) != (
            options.metadata,
            options.recursive,
        ):
            stale = {FOLDER, *_groups(before.get("metadata"))}
            self.folder.refresh_rows(self.pipeline, [t for t in self.tasks if t.key in records], stale)
        self.folder.write_provenance(self._provenance(len(records)))
        return _Ledger(records, inputs, len(records), files=files)

    def _reusable(self) -> list[tuple[str, str]]:
        """The intermediates this run reuses, as (stage, stage key): its group stages'
        inputs, and with the horizontal strategy (the vertical one keeps none) those of
        every stage."""
        pipeline = self.pipeline
        names = [pipeline[g].inputs[pipeline[g].spec.main_arg] for g in pipeline.group_stages]
        if self.plan.options.strategy == "horizontal":
            names += pipeline.stage_names
        return [(name, pipeline.source_key(name)) for name in dict.fromkeys(names)]

    def _estimate(self, measured: Measured | None, anything: bool) -> Estimate | None:
        """The estimate from the measured first task; None when nothing could be measured."""
        options = self.plan.options
        if not anything or (measured is None and options.strategy != "horizontal"):
            return None
        # without an image the chain runs on there is no estimate; the tasks fail alone
        with contextlib.suppress(PipelineError, StageError):
            return self.plan.estimate(measured)  # as Estimate's, from the measured first task
        return None

    def _finished(self, ledger: _Ledger, record: TaskRecord) -> TaskFinished:
        """Keep a finished task's record (ledger first) and report it."""
        record = record.replace(input=ledger.inputs[record.key], held_bytes=0)
        self.folder.append(record)
        record = record.replace(traceback=None)
        ledger.records[record.key] = record
        ledger.counts[record.status] += 1
        return TaskFinished(
            record, ledger.counts["done"] + ledger.skipped, ledger.counts["failed"], len(self.tasks)
        )

    def _close(self, ledger: _Ledger, seconds: float, passes: GroupPasses | None = None) -> Report:
        """Write the tables, the conclusions and the end of run.json; the report.

        Raises
        ------
        ConclusionsError
            If the tables or the conclusions cannot be written: run.json then says
            failed, with the error (its traceback in errors.log).
        """
        done = sum(1 for r in ledger.records.values() if r.done)
        failed = ledger.counts["failed"]
        counts = {"tasks": len(self.tasks), "done": done, "failed": failed, "skipped": ledger.skipped}
        counts["pending"] = len(self.tasks) - done - failed
        try:
            self.folder.write_tables(self.pipeline, self.tasks, ledger.records)
            conclude(self.folder.path, self.plan.options.group_by, self.plan.options.screen())
        except DiskFullError:
            raise
        except Exception as error:
            self.folder.write_provenance({"counts": counts, "seconds": round(seconds, 3)})
            text = self.folder.fail(error, format_traceback(error))
            raise ConclusionsError(
                f"the run's tasks are recorded ({done} done, {failed} failed), but its tables and "
                f"conclusions (summary, figures, screen tables) could not be written: {text} "
                f"(the traceback is in {self.folder.layout.errors_log.name}); run.json says failed. "
                "Fix the cause, then summarize the folder, or run the same command again: it "
                "resumes without computing an image again"
            ) from error
        report = Report(
            output_dir=self.folder.path,
            total=len(self.tasks),
            done=done - ledger.skipped,
            failed=failed,
            skipped=ledger.skipped,
            cancelled=self.cancelled,
            seconds=seconds,
            table_stages=self.pipeline.table_stages,
        )
        self.folder.write_provenance(
            {
                "finished": timestamp(),
                "status": "cancelled" if self.cancelled else "finished",
                "counts": counts,
                "seconds": round(seconds, 3),
                # results learnt without some members: a later run retries those members
                "groups_left_out": passes.left_out() if passes is not None else [],
            }
        )
        return report

    def _provenance(self, skipped: int) -> dict[str, Any]:
        plan, options = self.plan, self.plan.options
        return {
            "versions": provenance_versions(),
            "command": self.command,
            "pipeline": {"name": self.pipeline.name, "hash": self.pipeline.hash},
            STAGE_RETURNS: {stage.name: stage.returns for stage in self.pipeline.stages},
            "input_dir": str(plan.input_dir),
            **options.inputs(),
            "memory_budget": options.memory_budget,
            "inputs": [
                {"image": s.relative, "bytes": file_stat(s.path)[0], "modified": file_stat(s.path)[1]}
                for s in plan.files
            ],
            "executor": options.executor,
            "executor_reason": options.executor_reason or None,  # set when auto chose it
            "workers": options.workers if options.executor != "serial" else 1,
            "scheduler": options.scheduler,
            "strategy": options.strategy,
            "sweep": plan.sweep,
            "params": plan.params_provenance(),
            "group_by": list(options.group_by) if options.group_by else None,
            "task_timeout": options.task_timeout,
            "tiling": options.tiling().to_json(),
            "started": timestamp(),
            "finished": None,
            "status": "running",
            "error": None,
            FAILED_IN: None,
            "resumed_tasks": skipped,
            # images of an earlier run into the folder no longer in this one: their outputs removed
            "forgotten": self.folder.forgotten,
        }


def _groups(pattern: Any) -> list[str]:
    """The named groups of a metadata pattern (none for no pattern or a broken one)."""
    try:
        return list(re.compile(pattern).groupindex) if isinstance(pattern, str) else []
    except re.error:
        return []


def _idle_while_workers_compute(executor: str) -> bool:
    """Whether this process has nothing to do while the run's tasks compute: they run in
    worker processes, and the run in the main thread (the command line, a script), not in
    a thread beside a GUI (the viewer), whose event loop an import in a thread would hold
    up (summary.png is drawn by the figure process there)."""
    return executor in ("processes", "dask") and threading.current_thread() is threading.main_thread()
