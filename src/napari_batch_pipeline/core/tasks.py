"""What a worker does with one task: read the image, run the chain, write the outputs.

Workers write their own outputs (saved stage images, per-task table parts) and send back
only a small record, never image arrays. Everything here is picklable and importable by
worker processes.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import StageError
from .files import atomic_path
from .pipeline import Pipeline
from .sources import ImageReadError, read_image

__all__ = [
    "PARTS",
    "TaskJob",
    "held_bytes",
    "part_path",
    "run_task",
    "save_image",
    "summarize",
    "table_frame",
]

PARTS = ".parts"
_PIPELINES: dict[str, Pipeline] = {}


@dataclass(frozen=True)
class TaskJob:
    """Everything a worker needs for one task, as plain data."""

    key: str
    index: int
    path: str
    image: str
    output_stem: str
    output_dir: str
    pipeline: dict[str, Any]
    pipeline_hash: str
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def load_pipeline(data: dict[str, Any], digest: str, params: dict[str, Any]) -> Pipeline:
    """The task's pipeline (with its swept parameters), built once per worker."""
    cache_key = digest + repr(sorted(params.items()))
    pipeline = _PIPELINES.get(cache_key)
    if pipeline is None:
        pipeline = Pipeline.from_dict(data).with_params(params)
        if len(_PIPELINES) > 64:
            _PIPELINES.clear()
        _PIPELINES[cache_key] = pipeline
    return pipeline


def run_task(job: TaskJob) -> dict[str, Any]:
    """Run one task to the end and return its record; never raises for a task's failure."""
    start = time.perf_counter()
    record: dict[str, Any] = {"key": job.key, "index": job.index, "image": job.image}
    try:
        pipeline = load_pipeline(job.pipeline, job.pipeline_hash, job.params)
        image = read_image(job.path)
        outputs = pipeline.run(image)
        record["held_bytes"] = held_bytes(image, outputs)
        del image
        record["summary"] = write_outputs(job, pipeline, outputs)
        record.update(status="done", error="")
    except (ImageReadError, StageError) as error:
        record.update(status="failed", error=str(error), traceback=_traceback(error))
    except OSError as error:
        record.update(status="failed", error=f"cannot write outputs: {error}", traceback=_traceback(error))
    except Exception as error:
        record.update(status="failed", error=f"{type(error).__name__}: {error}", traceback=_traceback(error))
    record["seconds"] = round(time.perf_counter() - start, 4)
    return record


def write_outputs(job: TaskJob, pipeline: Pipeline, outputs: dict[str, Any]) -> dict[str, Any]:
    """Write saved images and table parts; return the task's summary values."""
    out = Path(job.output_dir)
    for name in pipeline.saved_stages:
        save_image(out / name / f"{job.output_stem}.tif", outputs[name])
    summary: dict[str, Any] = {}
    for name in pipeline.table_stages:
        frame = table_frame(job, outputs[name])
        with atomic_path(part_path(out, name, job.key)) as temporary:
            frame.to_csv(temporary, index=False)
        summary.update(summarize(name, outputs[name]))
    return summary


def held_bytes(image: np.ndarray, outputs: dict[str, Any]) -> int:
    """Memory one task holds at its end (the input and every stage output), plus the
    temporaries of its largest stage (about twice its output). A thread-safe stand-in
    for tracing allocations, which is not safe while other threads allocate."""
    sizes = [image.nbytes]
    for output in outputs.values():
        if isinstance(output, np.ndarray):
            sizes.append(output.nbytes)
        elif isinstance(output, pd.DataFrame):
            sizes.append(int(output.memory_usage(index=True, deep=True).sum()))
    return sum(sizes) + 2 * max(sizes)


def save_image(path: Path, data: np.ndarray) -> None:
    """Write an array as TIFF, whole or not at all (masks as uint8)."""
    import tifffile

    if data.dtype == bool:
        data = data.astype(np.uint8)
    with atomic_path(path) as temporary:
        tifffile.imwrite(temporary, data)


def table_frame(job: TaskJob, table: pd.DataFrame) -> pd.DataFrame:
    """Per-object rows: image, parameter and metadata columns, then the table's own."""
    front = {"image": job.image, **job.params, **job.metadata}
    frame = table.copy()
    for position, (column, value) in enumerate(front.items()):
        if column in frame.columns:
            frame = frame.drop(columns=column)
        frame.insert(position, column, [_cell(value)] * len(frame))
    return frame


def summarize(stage: str, table: pd.DataFrame) -> dict[str, Any]:
    """Object count and the mean of each numeric measurement, as ``<stage>.count`` ..."""
    summary: dict[str, Any] = {f"{stage}.count": len(table)}
    for column in table.columns:
        if column == "label" or not pd.api.types.is_numeric_dtype(table[column]):
            continue
        mean = float(table[column].mean()) if len(table) else float("nan")
        summary[f"{stage}.mean_{column}"] = mean
    return summary


def part_path(output_dir: Path, stage: str, key: str) -> Path:
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    return Path(output_dir) / PARTS / stage / f"{digest}.csv"


def _cell(value: Any) -> Any:
    return "-".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))
