"""The horizontal strategy: each stage over every task before the next stage starts.

Every intermediate is kept on disk, not in memory, under
``intermediate/<stage>/<stage key>/<image>.npy`` (tables as ``.csv``). The stage key
hashes the stage's configuration and everything upstream, so tasks of a sweep that share
early parameters share those outputs, and a re-run whose early stages did not change
reuses them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import StageError
from .events import StageProgress
from .files import atomic_path
from .pipeline import INPUT, Pipeline
from .sources import ImageReadError, path_stem, read_image
from .tasks import (
    TaskJob,
    _traceback,
    load_pipeline,
    part_path,
    save_image,
    summarize,
    table_frame,
)

if TYPE_CHECKING:
    from .batch import BatchRun
    from .executors import Executor
    from .plan import Task

__all__ = ["INTERMEDIATE", "UnitJob", "intermediate_path", "run", "run_unit"]

INTERMEDIATE = "intermediate"


@dataclass(frozen=True)
class UnitJob:
    """One stage on one image (with the parameters that reach that stage)."""

    stage: str
    task: TaskJob
    keys: list[str] = field(default_factory=list)


def intermediate_path(output_dir: str | Path, pipeline: Pipeline, stage: str, stem: str) -> Path:
    suffix = ".csv" if pipeline[stage].returns == "table" else ".npy"
    return Path(output_dir) / INTERMEDIATE / stage / pipeline.stage_key(stage) / f"{stem}{suffix}"


def run_unit(job: UnitJob) -> dict[str, Any]:
    """Run one stage for one image, reading its inputs from disk and writing its output."""
    task = job.task
    try:
        pipeline = load_pipeline(task.pipeline, task.pipeline_hash, task.params)
        stem = _stem(task)
        target = intermediate_path(task.output_dir, pipeline, job.stage, stem)
        if target.exists():
            return {"status": "done", "error": "", "reused": True}
        available: dict[str, Any] = {}
        for source in pipeline[job.stage].inputs.values():
            if source == INPUT:
                available[INPUT] = read_image(task.path)
            else:
                available[source] = _load(intermediate_path(task.output_dir, pipeline, source, stem))
        result = pipeline.run_stage(job.stage, available)
        with atomic_path(target) as temporary:
            if isinstance(result, pd.DataFrame):
                result.to_csv(temporary, index=False)
            else:
                with temporary.open("wb") as handle:
                    np.save(handle, result, allow_pickle=False)
        return {"status": "done", "error": "", "reused": False}
    except (ImageReadError, StageError) as error:
        return {"status": "failed", "error": str(error), "traceback": _traceback(error)}
    except Exception as error:
        return {
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": _traceback(error),
        }


def finish_task(task: TaskJob) -> dict[str, Any]:
    """Write a task's saved images and table parts from its intermediates; its record."""
    start = time.perf_counter()
    record: dict[str, Any] = {"key": task.key, "index": task.index, "image": task.image}
    try:
        pipeline = load_pipeline(task.pipeline, task.pipeline_hash, task.params)
        stem = _stem(task)
        out = Path(task.output_dir)
        for name in pipeline.saved_stages:
            save_image(
                out / name / f"{task.output_stem}.tif",
                _load(intermediate_path(out, pipeline, name, stem)),
            )
        summary: dict[str, Any] = {}
        for name in pipeline.table_stages:
            table = _load(intermediate_path(out, pipeline, name, stem))
            with atomic_path(part_path(out, name, task.key)) as temporary:
                table_frame(task, table).to_csv(temporary, index=False)
            summary.update(summarize(name, table))
        record.update(status="done", error="", summary=summary)
    except Exception as error:
        record.update(status="failed", error=f"cannot write outputs: {error}", traceback=_traceback(error))
    record["seconds"] = round(time.perf_counter() - start, 4)
    return record


def run(batch: BatchRun, tasks: Sequence[Task], executor: Executor) -> Iterator[Any]:
    """Run ``tasks`` stage by stage; yield StageProgress events and finished task records."""
    jobs = {task.key: batch.job(task) for task in tasks}
    seconds = dict.fromkeys(jobs, 0.0)
    failed: dict[str, dict[str, Any]] = {}
    for stage in batch.pipeline.stage_names:
        if executor.cancelled:
            return
        units: dict[str, UnitJob] = {}
        for key, job in jobs.items():
            if key in failed:
                continue
            pipeline = load_pipeline(job.pipeline, job.pipeline_hash, job.params)
            unit_id = str(intermediate_path(job.output_dir, pipeline, stage, _stem(job)))
            if unit_id in units:
                units[unit_id].keys.append(key)
            else:
                units[unit_id] = UnitJob(stage, job, [key])
        for done, (unit, result) in enumerate(executor.map(run_unit, list(units.values())), 1):
            if isinstance(result, BaseException):
                result = {
                    "status": "failed",
                    "error": f"worker stopped: {type(result).__name__}: {result}",
                }
            for key in unit.keys:
                if result["status"] == "failed":
                    failed[key] = result
                    job = jobs[key]
                    yield {
                        "key": key,
                        "index": job.index,
                        "image": job.image,
                        "status": "failed",
                        "error": result["error"],
                        "traceback": result.get("traceback"),
                        "seconds": seconds[key],
                    }
            yield StageProgress(stage, done, len(units))
        if executor.cancelled:
            return
    remaining = [job for key, job in jobs.items() if key not in failed]
    for _job, record in executor.map(finish_task, remaining):
        if isinstance(record, BaseException):
            record = {
                "key": _job.key,
                "index": _job.index,
                "image": _job.image,
                "status": "failed",
                "error": f"worker stopped: {record}",
                "seconds": float("nan"),
            }
        yield record


def _stem(task: TaskJob) -> str:
    """Intermediates are named by image only: the stage key already holds the parameters."""
    return path_stem(task.image)


def _load(path: Path) -> Any:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    return np.load(path, allow_pickle=False)
