"""What a worker does with one task: read the image, run the chain, write the outputs.

Workers write their own outputs (saved stage images, per-task table parts) through
:mod:`.run_folder.outputs` and send back only a small :class:`TaskRecord`, never image
arrays. Everything here is picklable and importable by worker processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PipelineError, StageError
from ..images.fields import read_field
from ..images.sources import ImageReadError, Source
from ..pipeline.model import Pipeline
from ..plan.estimate import held_bytes
from ..run_folder.layout import RunLayout, output_stem
from ..run_folder.outputs import write_task_outputs
from ..run_folder.records import DONE, TaskRecord, format_traceback
from ..stages.forests import remember
from ..tiles.stop import TilingStopped
from .tiled_task import run_tiled_task

__all__ = [
    "TaskJob",
    "failure_message",
    "group_output",
    "group_outputs",
    "load_pipeline",
    "run_task",
    "write_outputs",
]

_PIPELINES: dict[str, Pipeline] = {}


@dataclass(frozen=True)
class TaskJob:
    """Everything a worker needs for one task, as plain data."""

    key: str
    index: int
    path: str
    image: str
    label: str
    output_dir: str
    pipeline: dict[str, Any]
    pipeline_hash: str
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: Source | None = None
    field_stem: str = ""
    stem: str = ""
    #: a short hash of the input files' sizes and modification times: what a horizontal
    #: intermediate is keyed by, so that a changed input is never served a stale one
    stamp: str = ""
    #: the results of the task's group stages: stage -> [``<stage>/<group>.tif``, group key]
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: how an image larger than memory is tiled (``TileSettings`` as plain data); empty: never
    tiling: dict[str, Any] = field(default_factory=dict)
    #: the forests of the task's classifier stages, trained before the run, by training
    #: key (see :mod:`..plan.training`): in memory, never from a file
    trained: dict[str, Any] = field(default_factory=dict)
    #: tables computed before the task, by stage (the quality tables pass A of a group
    #: stage keeps, see :mod:`.groups`): read, not computed again
    tables: dict[str, str] = field(default_factory=dict)

    @property
    def input(self) -> Source:
        """The field this task reads."""
        return self.source if self.source is not None else Source(Path(self.path), self.image)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(Path(self.output_dir))

    def failure(
        self, error: str, *, seconds: float = float("nan"), traceback: str | None = None
    ) -> TaskRecord:
        """The record of this task having failed with ``error``."""
        return TaskRecord.failure(
            self.key, self.index, self.image, error, label=self.label, seconds=seconds, traceback=traceback
        )


def load_pipeline(job: TaskJob) -> Pipeline:
    """The task's pipeline (with its swept parameters), built once per worker; the
    forests of its classifier stages kept in memory for them."""
    remember(job.trained)
    cache_key = job.pipeline_hash + repr(sorted(job.params.items()))
    pipeline = _PIPELINES.get(cache_key)
    if pipeline is None:
        pipeline = Pipeline.from_dict(job.pipeline).with_params(job.params)
        if len(_PIPELINES) > 64:
            _PIPELINES.clear()
        _PIPELINES[cache_key] = pipeline
    return pipeline


def run_task(job: TaskJob) -> TaskRecord:
    """Run one task to the end and return its record; never raises for a task's failure."""
    start = time.perf_counter()
    try:
        pipeline = load_pipeline(job)
        tiled = run_tiled_task(job, pipeline)
        if tiled is not None:
            seconds = round(time.perf_counter() - start, 4)
            summary, held = tiled
            return TaskRecord(
                job.key, job.index, job.image, DONE, "", seconds, summary, job.label, held_bytes=held
            )
        loaded = read_field(job.input)
        outputs = pipeline.run(loaded.images, spacing=loaded.spacing, given=group_outputs(job))
        held = held_bytes(loaded.images, outputs)
        spacing = loaded.spacing
        del loaded
        summary = write_outputs(job, pipeline, outputs, spacing)
    except TilingStopped:
        raise  # the run was cancelled: not a failure of this task, which the resume finishes
    except Exception as error:
        seconds = round(time.perf_counter() - start, 4)
        return job.failure(failure_message(error), seconds=seconds, traceback=format_traceback(error))
    seconds = round(time.perf_counter() - start, 4)
    return TaskRecord(job.key, job.index, job.image, DONE, "", seconds, summary, job.label, held_bytes=held)


def group_outputs(job: TaskJob) -> dict[str, Any]:
    """The results of the task's group stages, read from their TIFFs, and the tables
    computed before it (:attr:`TaskJob.tables`), by stage."""
    import pandas as pd

    tables = {stage: pd.read_csv(path) for stage, path in job.tables.items()}
    return {**tables, **{stage: group_output(job, stage) for stage in job.groups}}


def group_output(job: TaskJob, stage: str) -> Any:
    """The result of group stage ``stage`` for the task's group (``<stage>/<group>.tif``)."""
    import tifffile

    return tifffile.imread(job.groups[stage][0])


def failure_message(error: Exception) -> str:
    """The ``error`` column of a task that raised ``error``."""
    if isinstance(error, (ImageReadError, StageError, PipelineError)):
        return str(error)
    if isinstance(error, OSError):
        return f"cannot write outputs: {error}"
    return f"{type(error).__name__}: {error}"


def write_outputs(
    job: TaskJob, pipeline: Pipeline, outputs: Any, spacing: tuple[float, ...] | None = None
) -> dict[str, Any]:
    """Write a task's saved images and table parts (see :mod:`.run_folder.outputs`)."""
    return write_task_outputs(
        job.layout,
        pipeline.saved_stages,
        pipeline.table_stages,
        outputs,
        key=job.key,
        image=job.image,
        stem=job.stem or output_stem(job.image, job.label),
        spacing=spacing,
        label=job.label,
        params=job.params,
        metadata=job.metadata,
    )
