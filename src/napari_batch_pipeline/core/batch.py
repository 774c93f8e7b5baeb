"""The batch engine: a folder in, a run folder out; vertical or horizontal; resumable.

``BatchRun`` validates everything when it is built (nothing is written), then
``events()`` runs it and yields plain events; ``cancel()`` may be called from another
thread. ``run_batch`` is the one-call form.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import horizontal
from .errors import PipelineError, StageError
from .events import Event, RunFinished, RunStarted, StageProgress, TaskFinished
from .executors import EXECUTORS, make_executor
from .pipeline import Pipeline
from .plan import Estimate, Task, estimate, make_tasks, parameter_sets
from .run import RunFolder, command_line, provenance_versions
from .sources import find_images
from .tasks import TaskJob, run_task

__all__ = ["STRATEGIES", "BatchRun", "Report", "run_batch"]

STRATEGIES = ("vertical", "horizontal")


@dataclass
class Report:
    """The outcome of a batch run; tables are read from the run folder."""

    output_dir: Path
    total: int
    done: int
    failed: int
    skipped: int
    cancelled: bool
    seconds: float
    table_stages: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every task is done, 1 otherwise."""
        return 0 if self.done + self.skipped == self.total and not self.cancelled else 1

    @property
    def images(self) -> pd.DataFrame:
        return pd.read_csv(self.output_dir / "images.csv")

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {stage: pd.read_csv(self.output_dir / f"{stage}.csv") for stage in self.table_stages}

    @property
    def failures(self) -> pd.DataFrame:
        images = self.images
        return images[images["status"] == "failed"][["image", "error"]]


class BatchRun:
    """A batch of one pipeline over a folder (and a parameter grid).

    Parameters are those of :func:`run_batch`. Everything is checked here, before
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
        pattern: str | None = None,
        recursive: bool = False,
        metadata: str | None = None,
        executor: str = "serial",
        workers: int | None = None,
        scheduler: str | None = None,
        strategy: str = "vertical",
        sweep: Mapping[str, Sequence[Any]] | None = None,
        memory_budget: int | None = None,
        limit: int | None = None,
        fresh: bool = False,
        command: str | None = None,
    ):
        self.pipeline = pipeline if isinstance(pipeline, Pipeline) else Pipeline.from_yaml(pipeline)
        if strategy not in STRATEGIES:
            raise PipelineError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
        if executor not in EXECUTORS:
            raise PipelineError(f"executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
        if limit is not None and limit < 1:
            raise PipelineError(f"limit: expected 1 or more, got {limit}")
        if workers is not None and workers < 1:
            raise PipelineError(f"workers: expected 1 or more, got {workers}")
        if scheduler and executor != "dask":
            raise PipelineError("--scheduler is for the dask executor; add --executor dask")
        self.input_dir = Path(input_dir).expanduser().resolve()
        self.folder = RunFolder(output_dir)
        if self.folder.path == self.input_dir:
            raise PipelineError("the output folder must differ from the input folder")
        self.sources = find_images(
            self.input_dir,
            pattern,
            recursive=recursive,
            metadata=metadata,
            exclude=[self.folder.path],
        )
        if limit is not None:
            self.sources = self.sources[:limit]
        self.sweep = {key: list(values) for key, values in (sweep or {}).items()}
        self.param_sets = parameter_sets(self.pipeline, self.sweep)
        self.tasks = make_tasks(self.sources, self.param_sets)
        self.options = {
            "pattern": pattern,
            "recursive": recursive,
            "metadata": metadata,
            "limit": limit,
        }
        self.executor_name = executor
        self.workers = 1 if executor == "serial" else workers
        self.scheduler = scheduler
        self.strategy = strategy
        self.memory_budget = memory_budget
        self.fresh = fresh
        self.command = command or command_line()
        self._cancel = threading.Event()
        self._executor: Any = None
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

    def estimate(self) -> Estimate:
        """Memory and time of the batch, measured on the first image; writes nothing."""
        return estimate(
            self.pipeline,
            self.sources,
            len(self.param_sets),
            workers=self.workers or _cpus(),
            executor=self.executor_name,
            budget=self.memory_budget,
        )

    # -- running ------------------------------------------------------------------------

    def job(self, task: Task) -> TaskJob:
        return TaskJob(
            key=task.key,
            index=task.index,
            path=str(task.source.path),
            image=task.source.relative,
            output_stem=task.output_stem,
            output_dir=str(self.folder.path),
            pipeline=self.pipeline.to_dict(),
            pipeline_hash=self.pipeline.hash,
            params=task.params,
            metadata=task.source.metadata,
        )

    def events(self) -> Iterator[Event]:
        """Run the batch, yielding events; the last one is RunFinished."""
        started = time.perf_counter()
        if self.memory_budget is not None:
            self._check_budget()
        records: dict[str, dict[str, Any]] = dict(self.folder.prepare(self.pipeline, fresh=self.fresh))
        # a finished task counts only while its input file is unchanged (size, modification time)
        inputs = {task.key: _fingerprint(task.source.path) for task in self.tasks}
        records = {key: r for key, r in records.items() if key in inputs and r.get("input") == inputs[key]}
        skipped = len(records)
        pending = [task for task in self.tasks if task.key not in records]
        counts = {"done": 0, "failed": 0}
        self.folder.write_provenance(self._provenance(skipped))

        def finished(record: dict[str, Any]) -> TaskFinished:
            record["input"] = inputs[record["key"]]
            record.pop("held_bytes", None)
            self.folder.append(record)
            record.pop("traceback", None)
            records[record["key"]] = record
            counts[record["status"]] += 1
            return TaskFinished(record, counts["done"] + skipped, counts["failed"], len(self.tasks))

        # The first task runs here, measured: it gives the estimate and the first result.
        # A pool starts on the next tasks first, so its workers are busy meanwhile.
        probes: list[dict[str, Any]] = []
        measured: tuple[float, int, int] | None = None
        results: Iterator[tuple[Any, Any]] | None = None
        try:
            if self.strategy == "vertical" and pending and not self.cancelled:
                if self.executor_name == "serial":
                    while pending and measured is None and len(probes) < 3 and not self.cancelled:
                        record, measured = _probe(self.job(pending.pop(0)))
                        probes.append(record)
                else:
                    first = pending.pop(0)
                    self._executor = make_executor(self.executor_name, self.workers, self.scheduler)
                    results = self._executor.map(run_task, (self.job(task) for task in pending))
                    record, measured = _probe(self.job(first))
                    probes.append(record)
            plan = None
            if (pending or probes) and (measured is not None or self.strategy == "horizontal"):
                # without an image the chain runs on there is no estimate; the tasks fail alone
                with contextlib.suppress(PipelineError, StageError):
                    plan = estimate(
                        self.pipeline,
                        [t.source for t in self.tasks],
                        1,
                        workers=self.workers or _cpus(),
                        executor=self.executor_name,
                        budget=self.memory_budget,
                        measured=measured,
                    )
            workers = (self.workers or _cpus()) if self.executor_name != "serial" else 1
            yield RunStarted(
                len(self.tasks),
                skipped,
                str(self.folder.path),
                self.strategy,
                self.executor_name,
                workers,
                plan,
            )
            for record in probes:
                yield finished(record)
            if pending and not self.cancelled:
                if self._executor is None:
                    self._executor = make_executor(self.executor_name, self.workers, self.scheduler)
                if self.cancelled:
                    self._executor.cancel()
                if self.strategy == "vertical":
                    if results is None:
                        results = self._executor.map(run_task, (self.job(task) for task in pending))
                    for job, result in results:
                        yield finished(_record(job, result))
                else:
                    steps = horizontal.run(self, pending, self._executor)
                    for item in steps:
                        if isinstance(item, StageProgress):
                            yield item
                        else:
                            yield finished(item)
        finally:
            if self._executor is not None:
                self._executor.close()
            self.folder.remove_partials()
        self.folder.write_tables(self.pipeline, self.tasks, records)
        done = sum(1 for r in records.values() if r["status"] == "done")
        self.report = Report(
            output_dir=self.folder.path,
            total=len(self.tasks),
            done=done - skipped,
            failed=counts["failed"],
            skipped=skipped,
            cancelled=self.cancelled,
            seconds=time.perf_counter() - started,
            table_stages=self.pipeline.table_stages,
        )
        self.folder.write_provenance(
            {
                "finished": _timestamp(),
                "status": "cancelled" if self.cancelled else "finished",
                "counts": {
                    "tasks": len(self.tasks),
                    "done": done,
                    "failed": counts["failed"],
                    "skipped": skipped,
                    "pending": len(self.tasks) - done - counts["failed"],
                },
                "seconds": round(self.report.seconds, 3),
            }
        )
        yield RunFinished(self.report)

    def _check_budget(self) -> None:
        """Refuse, before anything is written, a batch that would not fit the memory budget."""
        try:
            plan = self.estimate()
        except (PipelineError, StageError):
            return  # no image the chain runs on to measure: the tasks fail on their own
        if not plan.fits:
            raise PipelineError(plan.advice())

    def _provenance(self, skipped: int) -> dict[str, Any]:
        return {
            "versions": provenance_versions(),
            "command": self.command,
            "pipeline": {"name": self.pipeline.name, "hash": self.pipeline.hash},
            "input_dir": str(self.input_dir),
            **self.options,
            "memory_budget": self.memory_budget,
            "inputs": [
                {"image": s.relative, "bytes": _stat(s.path)[0], "modified": _stat(s.path)[1]}
                for s in self.sources
            ],
            "executor": self.executor_name,
            "workers": self.workers,
            "scheduler": self.scheduler,
            "strategy": self.strategy,
            "sweep": self.sweep,
            "started": _timestamp(),
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
        (bytes), ``limit``, ``fresh``.

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


def _probe(job: TaskJob) -> tuple[dict[str, Any], tuple[float, int, int] | None]:
    """Run one task here; its measurement (seconds, bytes held, bytes written) if it succeeded."""
    record = run_task(job)
    peak = record.pop("held_bytes", 0)
    if record["status"] != "done":
        return record, None
    saved = 0
    for stage in Pipeline.from_dict(job.pipeline).saved_stages:
        path = Path(job.output_dir) / stage / f"{job.output_stem}.tif"
        saved += path.stat().st_size if path.exists() else 0
    return record, (record["seconds"], peak, saved)


def _record(job: TaskJob, result: Any) -> dict[str, Any]:
    if isinstance(result, BaseException):
        return {
            "key": job.key,
            "index": job.index,
            "image": job.image,
            "status": "failed",
            "error": f"worker stopped: {type(result).__name__}: {result}",
            "seconds": float("nan"),
        }
    return dict(result)


def _stat(path: Path) -> tuple[int | None, str | None]:
    try:
        info = path.stat()
    except OSError:
        return None, None
    return info.st_size, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(info.st_mtime))


def _fingerprint(path: Path) -> list[int] | None:
    """Size and modification time (ns) of an input: a changed file is computed again."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _cpus() -> int:
    import os

    return os.cpu_count() or 1
