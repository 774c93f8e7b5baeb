"""The horizontal strategy's units: one stage on one image, from and to disk.

Every intermediate is kept on disk, not in memory, at
``intermediate/<stage>/<stage key>/<field>__<input stamp>.npy`` (tables as ``.csv``; the
run folder's layout names it). The input stamp hashes the sizes and modification times of
the task's files, so an input replaced since is computed again, never served the old
one. The stage key (:meth:`Pipeline.stage_key`, the same key the tuning cache uses)
hashes the stage's configuration and everything upstream, so tasks of a sweep that share
early parameters share those outputs, and a re-run whose early stages did not change
reuses them. The order of units is :mod:`.strategies`' business.

Pass A of the group stages (see :mod:`.groups`) is made of such units too: each member's
input to its group stage, and the tables of the stages whose quality rules judge it
first, with the measurements they give (:func:`prepare_member`).
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
from ..pipeline.quality import rules_before
from ..run_folder.layout import TABLE_SUFFIX
from ..run_folder.records import DONE, TaskRecord, format_traceback
from ..run_folder.tables import summarize
from .jobs import TaskJob, failure_message, group_output, load_pipeline, write_outputs

__all__ = [
    "MemberJob",
    "MemberResult",
    "UnitJob",
    "UnitResult",
    "finish_task",
    "intermediate_path",
    "judged_stages",
    "member_path",
    "prepare_member",
    "run_unit",
]


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


# -- pass A of the group stages (see :mod:`.groups`): a member's input, from the image to disk


@dataclass(frozen=True)
class MemberJob:
    """Pass A for one image of a group: the group stage's input, computed to disk."""

    stage: str
    task: TaskJob


@dataclass(frozen=True)
class MemberResult:
    """What pass A reports for one image: done or failed, and its measurements that the
    group's quality rules judge (``<stage>.count``, ``<stage>.mean_<measurement>``)."""

    done: bool
    error: str = ""
    traceback: str | None = None
    measured: dict[str, float] = field(default_factory=dict)


def member_path(task: TaskJob, pipeline: Pipeline, stage: str) -> Path:
    """Where the input of group stage ``stage`` for ``task``'s image is kept: the
    horizontal intermediate of the stage it takes, or for a loaded image, one keyed alike."""
    source = pipeline[stage].inputs[pipeline[stage].spec.main_arg]
    if source in pipeline.input_names:
        field = f"{task.field_stem}__{task.stamp}" if task.stamp else task.field_stem
        return task.layout.intermediate(source, pipeline.source_key(source), field, table=False)
    return intermediate_path(task, pipeline, source)


def judged_stages(pipeline: Pipeline, stage: str) -> list[str]:
    """The table stages whose rules judge the members of group stage ``stage``."""
    return sorted({rule.stage for rule in rules_before(pipeline.quality, pipeline.stages, stage)})


def prepare_member(job: MemberJob) -> MemberResult:
    """Pass A: compute the group stage's input for one image (the stages it needs only),
    and the tables of the stages its quality rules judge, with their measurements."""
    try:
        pipeline = load_pipeline(job.task)
        target = member_path(job.task, pipeline, job.stage)
        tables = {
            name: intermediate_path(job.task, pipeline, name) for name in judged_stages(pipeline, job.stage)
        }
        if not target.exists() or not all(path.exists() for path in tables.values()):
            _write_member(job.task, pipeline, job.stage, target, tables)
        measured: dict[str, float] = {}
        for name, path in tables.items():
            measured.update(summarize(name, pd.read_csv(path)))  # as the horizontal strategy reads it
    except Exception as error:
        return MemberResult(False, failure_message(error), format_traceback(error))
    return MemberResult(True, measured=measured)


def _write_member(
    task: TaskJob, pipeline: Pipeline, stage: str, target: Path, tables: dict[str, Path]
) -> None:
    loaded = read_field(task.input)
    needed = pipeline.upstream(stage).union(*({name, *pipeline.upstream(name)} for name in tables))
    available = pipeline.images_of(loaded.images)
    for name in pipeline.stage_names:
        if name in needed:
            available[name] = pipeline.run_stage(name, available, spacing=loaded.spacing)
    for name, path in tables.items():
        with atomic_path(path) as temporary:
            available[name].to_csv(temporary, index=False)
    config = pipeline[stage]
    result = np.asarray(available[config.inputs[config.spec.main_arg]])
    with atomic_path(target) as temporary, temporary.open("wb") as handle:
        np.save(handle, result, allow_pickle=False)
