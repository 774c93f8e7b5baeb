"""The horizontal strategy's units: one stage on one image, from and to disk.

Every intermediate is kept on disk, not in memory, at
``intermediate/<stage>/<stage key>/<field>__<input stamp>.npy`` (tables as ``.csv``; the
run folder's layout names it). The input stamp hashes the sizes and modification times of
the task's files, so an input replaced since is computed again, never served the old
one. The stage key (:meth:`Pipeline.stage_key`, the same key the tuning cache uses)
hashes the stage's configuration and everything upstream, so tasks of a sweep that share
early parameters share those outputs, and a re-run whose early stages did not change
reuses them. The order of units is :mod:`.strategies`' business.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import StageError
from ..files import atomic_path
from ..images.fields import read_field, spacing_of
from ..images.sources import ImageReadError
from ..pipeline.model import Pipeline
from ..run_folder.layout import TABLE_SUFFIX
from ..run_folder.records import DONE, TaskRecord, format_traceback
from .jobs import TaskJob, group_output, load_pipeline, write_outputs

__all__ = ["UnitJob", "UnitResult", "finish_task", "intermediate_path", "run_unit"]


@dataclass(frozen=True)
class UnitJob:
    """One stage on one image (with the parameters that reach that stage)."""

    stage: str
    task: TaskJob
    keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UnitResult:
    """What a unit reports: done (computed or reused) or failed with a message."""

    done: bool
    error: str = ""
    traceback: str | None = None


def intermediate_path(task: TaskJob, pipeline: Pipeline, stage: str) -> Path:
    """Where the output of ``stage`` for ``task`` is kept between stages. Downstream of a
    group stage, the key also holds the group's key: another member's change is a change."""
    table = pipeline[stage].returns == "table"
    field = f"{task.field_stem}__{task.stamp}" if task.stamp else task.field_stem
    key = pipeline.stage_key(stage)
    reaching = {stage, *pipeline.upstream(stage)}
    groups = [task.groups[g][1] for g in sorted(task.groups) if g in reaching]
    if groups:
        key = hashlib.sha256(repr([key, groups]).encode()).hexdigest()[:16]
    return task.layout.intermediate(stage, key, field, table=table)


def run_unit(job: UnitJob) -> UnitResult:
    """Run one stage for one image, reading its inputs from disk and writing its output."""
    task = job.task
    try:
        pipeline = load_pipeline(task)
        target = intermediate_path(task, pipeline, job.stage)
        if target.exists():
            return UnitResult(True)
        available: dict[str, Any] = {}
        for source in pipeline[job.stage].inputs.values():
            if source in pipeline.input_names:
                if source not in available:
                    available.update(pipeline.images_of(read_field(task.input).images))
            else:
                available[source] = _output(task, pipeline, source)
        first = next(iter(available.values()))
        spacing = spacing_of(task.input.pixel_size, np.ndim(first))
        result = pipeline.run_stage(job.stage, available, spacing=spacing)
        with atomic_path(target) as temporary:
            if isinstance(result, pd.DataFrame):
                result.to_csv(temporary, index=False)
            else:
                with temporary.open("wb") as handle:
                    np.save(handle, result, allow_pickle=False)
        return UnitResult(True)
    except (ImageReadError, StageError) as error:
        return UnitResult(False, str(error), format_traceback(error))
    except Exception as error:
        return UnitResult(False, f"{type(error).__name__}: {error}", format_traceback(error))


def finish_task(task: TaskJob) -> TaskRecord:
    """Write a task's saved images and table parts from its intermediates; its record."""
    start = time.perf_counter()
    try:
        pipeline = load_pipeline(task)
        intermediates = _Intermediates(task, pipeline)
        first = next((name for name in pipeline.saved_stages), None)
        spacing = None
        if first is not None:
            spacing = spacing_of(task.input.pixel_size, np.ndim(intermediates[first]))
        summary = write_outputs(task, pipeline, intermediates, spacing)
    except Exception as error:
        return task.failure(
            f"cannot write outputs: {error}",
            seconds=round(time.perf_counter() - start, 4),
            traceback=format_traceback(error),
        )
    seconds = round(time.perf_counter() - start, 4)
    return TaskRecord(task.key, task.index, task.image, DONE, "", seconds, summary, task.label)


class _Intermediates(Mapping[str, Any]):
    """A task's stage outputs, each loaded from disk when asked for."""

    def __init__(self, task: TaskJob, pipeline: Pipeline):
        self.task, self.pipeline = task, pipeline

    def __getitem__(self, stage: str) -> Any:
        return _output(self.task, self.pipeline, stage)

    def __iter__(self) -> Iterator[str]:
        return iter(self.pipeline.stage_names)

    def __len__(self) -> int:
        return len(self.pipeline)


def _output(task: TaskJob, pipeline: Pipeline, stage: str) -> Any:
    """A stage's output for the task: its intermediate, or its group's result."""
    if stage in task.groups:
        return group_output(task, stage)
    return _load(intermediate_path(task, pipeline, stage))


def _load(path: Path) -> Any:
    if path.suffix == TABLE_SUFFIX:
        return pd.read_csv(path)
    return np.load(path, allow_pickle=False)
