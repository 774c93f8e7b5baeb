"""The batch engine: a folder in, a run folder out; vertical or horizontal; resumable.

``BatchRun`` checks everything when it is built (nothing is written), then
``events()`` runs it and yields plain events; ``cancel()`` may be called from another
thread. ``run_batch`` is the one-call form.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PipelineError, StageError
from .events import Event, RunFinished, RunStarted, StageProgress, TaskFinished
from .executors import Executor, make_executor
from .images.fields import plan_fields
from .images.sources import find_images
from .options import STRATEGIES, BatchOptions
from .params_table import ParamsTable, apply_params_table, key_columns, read_params_table
from .pipeline import INPUT, Pipeline
from .plan import Estimate, Task, check_output_names, estimate, make_tasks, parameter_sets
from .process_pool import prestart
from .report import Report
from .reserved import check_reserved_names
from .run_folder.records import TaskRecord
from .run_folder.space import DiskFullError
from .run_folder.tables import IMAGE
from .run_folder.writer import RunFolder, command_line, provenance_versions, timestamp
from .strategies import Measured, make_strategy
from .summary import check_group_by, write_summary
from .tasks import TaskJob

__all__ = ["STRATEGIES", "BatchRun", "Report", "run_batch"]


@dataclass
class _Ledger:
    """The state of a run's tasks while it runs: finished records, and the counts."""

    records: dict[str, TaskRecord]
    inputs: dict[str, list[int] | None]
    skipped: int
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0})


class BatchRun:
    """A batch of one pipeline over a folder (and a parameter grid).

    Parameters are those of :func:`run_batch`, and ``start_workers``: with the processes
    executor, start the worker processes now, while the batch is planned (False: when it
    runs; for a batch that is only estimated). Everything is checked here, before
    anything is written; :meth:`events` then runs the batch.

    Raises
    ------
    PipelineError
        For a bad option, an invalid pipeline or an unusable folder.
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
        self.pipeline = pipeline if isinstance(pipeline, Pipeline) else Pipeline.from_yaml(pipeline)
        self.options = BatchOptions(**options)
        if start_workers and self.options.executor == "processes":  # they start while it plans
            prestart(self.options.worker_count, self.pipeline.modules, low_priority=self.options.low_priority)
        self.input_dir = Path(input_dir).expanduser().resolve()
        self.folder = RunFolder(output_dir)
        self.folder.check_free()  # another run writing it: refused before anything else
        if self.folder.path == self.input_dir:
            raise PipelineError("the output folder must differ from the input folder")
        self.files = find_images(
            self.input_dir,
            self.options.pattern,
            recursive=self.options.recursive,
            metadata=self.options.metadata,
            exclude=[self.folder.path],
        )[: self.options.limit]
        check_reserved_names(self.pipeline.stage_names, {k for f in self.files for k in f.metadata})
        self.sweep = dict(self.options.sweep)
        self.param_sets = parameter_sets(self.pipeline, self.sweep)
        self.sources = plan_fields(self.files, self.pipeline.channels, INPUT)
        self.tasks = make_tasks(self.sources, self.param_sets, folders=self.options.recursive)
        #: the parameter table, and how many tasks no row of it matched
        self.params_table: ParamsTable | None = None
        self.unmatched = 0
        if self.options.params is not None:
            self.params_table = read_params_table(
                self.options.params, self.pipeline, keys=self._key_columns(), swept=self.sweep
            )
            self.tasks, self.unmatched = apply_params_table(self.tasks, self.params_table, self.pipeline)
        check_output_names(self.tasks)
        self._check_group_by()
        self.strategy = self.options.strategy
        self.executor_name = self.options.executor
        self.workers = self.options.worker_count
        self.command = command or command_line()
        self._cancel = threading.Event()
        self._executor: Executor | None = None
        self.report: Report | None = None

    # -- control ------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop promptly: nothing new starts, workers stop; safe from any thread."""
        self._cancel.set()
        if self._executor is not None:
            self._executor.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def estimate(self, measured: Measured | None = None) -> Estimate:
        """Memory and time of the batch, measured on the first image; writes nothing."""
        return estimate(
            self.pipeline,
            self.sources,
            len(self.param_sets),
            workers=self.workers,
            executor=self.executor_name,
            budget=self.options.memory_budget,
            measured=measured,
        )

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
            stamp=_stamp(_fingerprint(task.source.files)),
        )

    # -- running ------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Run the batch, yielding events; the last one is RunFinished. The output folder
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
        if self.options.memory_budget is not None:
            self._check_budget()
        ledger = self._open()
        pending = [self.job(task) for task in self.tasks if task.key not in ledger.records]
        strategy = make_strategy(self.strategy)
        interrupted = False
        try:
            start = strategy.start(
                [] if self.cancelled else pending, self._make_executor, serial=self.executor_name == "serial"
            )
            yield RunStarted(
                len(self.tasks),
                ledger.skipped,
                str(self.folder.path),
                self.strategy,
                self.executor_name,
                self.workers,
                self._plan(start.measured, bool(pending)),
            )
            for record in start.probes:
                yield self._finished(ledger, record)
            items = start.results
            if items is None and start.remaining and not self.cancelled:
                items = strategy.run(self.pipeline, start.remaining, self._make_executor())
            for item in items or ():
                yield item if isinstance(item, StageProgress) else self._finished(ledger, item)
        except KeyboardInterrupt:
            # Ctrl-C where Python raises it (a serial run from a script or a notebook):
            # cancelled like the command line's Ctrl-C, the tables written, then re-raised
            self.cancel()
            interrupted = True
        finally:
            if self._executor is not None:
                self._executor.close()
            self.folder.remove_partials()
        self.report = self._close(ledger, time.perf_counter() - started)
        if interrupted:
            raise KeyboardInterrupt
        yield RunFinished(self.report)

    def _make_executor(self) -> Executor:
        self._executor = make_executor(self.options)
        if self.cancelled:
            self._executor.cancel()
        return self._executor

    def _open(self) -> _Ledger:
        """Prepare the run folder; the tasks already done with an unchanged input are kept."""
        done = self.folder.prepare(self.pipeline, fresh=self.options.fresh, tasks=self.tasks)
        inputs = {task.key: _fingerprint(task.source.files) for task in self.tasks}
        records = {key: r for key, r in done.items() if key in inputs and r.input == inputs[key]}
        self.folder.write_provenance(self._provenance(len(records)))
        return _Ledger(records, inputs, len(records))

    def _plan(self, measured: Measured | None, anything: bool) -> Estimate | None:
        """The estimate from the measured first task; None when nothing could be measured."""
        if not anything or (measured is None and self.strategy != "horizontal"):
            return None
        # without an image the chain runs on there is no estimate; the tasks fail alone
        with contextlib.suppress(PipelineError, StageError):
            return estimate(
                self.pipeline,
                [t.source for t in self.tasks],
                1,
                workers=self.workers,
                executor=self.executor_name,
                budget=self.options.memory_budget,
                measured=measured,
            )
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

    def _close(self, ledger: _Ledger, seconds: float) -> Report:
        """Write the tables and the end of run.json; the report."""
        self.folder.write_tables(self.pipeline, self.tasks, ledger.records)
        write_summary(self.folder.path, self.options.group_by)
        done = sum(1 for r in ledger.records.values() if r.done)
        report = Report(
            output_dir=self.folder.path,
            total=len(self.tasks),
            done=done - ledger.skipped,
            failed=ledger.counts["failed"],
            skipped=ledger.skipped,
            cancelled=self.cancelled,
            seconds=seconds,
            table_stages=self.pipeline.table_stages,
        )
        self.folder.write_provenance(
            {
                "finished": timestamp(),
                "status": "cancelled" if self.cancelled else "finished",
                "counts": {
                    "tasks": len(self.tasks),
                    "done": done,
                    "failed": ledger.counts["failed"],
                    "skipped": ledger.skipped,
                    "pending": len(self.tasks) - done - ledger.counts["failed"],
                },
                "seconds": round(seconds, 3),
            }
        )
        return report

    def _check_budget(self) -> None:
        """Refuse, before anything is written, a batch that would not fit the memory budget."""
        try:
            plan = self.estimate()
        except (PipelineError, StageError):
            return  # no image the chain runs on to measure: the tasks fail on their own
        if not plan.fits:
            raise PipelineError(plan.advice(), options=plan.advice_options)

    def _key_columns(self) -> set[str]:
        """The columns a parameter table may key its rows by: folder, image, metadata."""
        return key_columns(self.tasks, self.options.metadata, self.options.recursive)

    def _check_group_by(self) -> None:
        """Refuse, before anything runs, a grouping by a column the tables will not have."""
        columns = {IMAGE, *(c for task in self.tasks for c in (*task.values, *task.metadata))}
        check_group_by(self.options.group_by, columns)

    def _params_provenance(self) -> dict[str, Any] | None:
        if self.params_table is None:
            return None
        rows = len(self.params_table.rows)
        return {
            **self.params_table.describe(),
            "rows": rows,
            "matched_tasks": len(self.tasks) - self.unmatched,
            "unmatched_tasks": self.unmatched,
        }

    def _provenance(self, skipped: int) -> dict[str, Any]:
        return {
            "versions": provenance_versions(),
            "command": self.command,
            "pipeline": {"name": self.pipeline.name, "hash": self.pipeline.hash},
            "input_dir": str(self.input_dir),
            **self.options.inputs(),
            "memory_budget": self.options.memory_budget,
            "inputs": [
                {"image": s.relative, "bytes": _stat(s.path)[0], "modified": _stat(s.path)[1]}
                for s in self.files
            ],
            "executor": self.executor_name,
            "workers": self.options.workers if self.executor_name != "serial" else 1,
            "scheduler": self.options.scheduler,
            "strategy": self.strategy,
            "sweep": self.sweep,
            "params": self._params_provenance(),
            "group_by": list(self.options.group_by) if self.options.group_by else None,
            "task_timeout": self.options.task_timeout,
            "started": timestamp(),
            "finished": None,
            "status": "running",
            "resumed_tasks": skipped,
        }


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
        ``pattern``, ``recursive``, ``metadata``, ``executor`` (serial, threads,
        processes, dask), ``workers``, ``scheduler``, ``strategy`` (vertical,
        horizontal), ``sweep`` (``{'stage.param': [values]}``), ``memory_budget``
        (bytes), ``limit``, ``fresh``, ``params`` (a parameter table, CSV), ``group_by``
        (the summary's grouping columns) (see :class:`~.options.BatchOptions`).

    Returns
    -------
    Report
        Counts, ``images`` and ``tables`` as pandas frames, ``exit_code``.
    """
    batch = BatchRun(pipeline, input_dir, output_dir, **options)
    for event in batch.events():
        if on_event is not None:
            on_event(event)
    assert batch.report is not None
    return batch.report


def _stat(path: Path) -> tuple[int | None, str | None]:
    try:
        info = path.stat()
    except OSError:
        return None, None
    return info.st_size, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(info.st_mtime))


def _stamp(fingerprint: list[int] | None) -> str:
    """A short hash of an input's fingerprint (``'unread'`` when a file could not be read)."""
    if fingerprint is None:
        return "unread"
    return hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:12]


def _fingerprint(paths: list[Path]) -> list[int] | None:
    """Size and modification time (ns) of an input's files: a changed file is computed again."""
    stamp: list[int] = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            return None
        stamp += [info.st_size, info.st_mtime_ns]
    return stamp
