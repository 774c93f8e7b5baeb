"""The columns of a run folder's tables, and how rows are made from a task's results.

``images.csv`` has one row per task: ``image``, the parameter columns
(``<stage>.<param>``), the metadata columns (``folder`` first, in runs over
subfolders), ``status``, ``error``, ``seconds``, then the task's summary
(``<stage>.count`` and ``<stage>.mean_<measurement>`` of each table stage, and
``<stage>.count_<class>`` of an object classifier's).
``<stage>.csv`` has one row per object: ``image``, parameter and metadata
columns, ``label``, then the measured properties. In a screen, both also have the plate
map's annotation columns, ``row`` and ``column`` from a ``well``, and images.csv
``flagged`` (the quality rules an image breaks). This module owns those column names.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..files import atomic_path
from ..images.fields import FILE_PREFIX, SCENE_NAME
from ..stages.classifiers import CLASS_COLUMN, PROBABILITY_PREFIX

if TYPE_CHECKING:
    from ..pipeline.model import Pipeline

__all__ = [
    "BOOKKEEPING",
    "COLUMN",
    "ERROR",
    "FLAGGED",
    "FOLDER",
    "IMAGE",
    "LABEL",
    "PLATE",
    "ROW",
    "SECONDS",
    "STATUS",
    "WELL",
    "cell",
    "concatenate",
    "count_column",
    "images_frame",
    "mean_column",
    "object_rows",
    "param_columns",
    "read_table",
    "summarize",
]

IMAGE = "image"
#: the image's folder relative to the input folder (``.`` at the top), in runs over subfolders
FOLDER = "folder"
STATUS = "status"
ERROR = "error"
SECONDS = "seconds"
LABEL = "label"
#: the quality rules an image breaks, as text; empty when it breaks none (see ``pipeline.quality``)
FLAGGED = "flagged"
#: the plate an image belongs to (a metadata field or an annotation); screens conclude per plate
PLATE = "plate"
#: a well's row (a letter) and column (a number), from a ``well`` column (``A01``, ``r01c01``)
WELL = "well"
ROW = "row"
COLUMN = "column"
#: columns of images.csv and <stage>.csv that are bookkeeping, not measurements
BOOKKEEPING = frozenset({IMAGE, STATUS, ERROR, SECONDS, LABEL, "index"})
#: columns that are text whatever their cells look like: where an image comes from, what happened
TEXT_COLUMNS = frozenset({IMAGE, FOLDER, STATUS, ERROR, SCENE_NAME, FLAGGED, PLATE, WELL, ROW})
#: the cells pandas reads as missing by default; a text column takes only an empty cell
_MISSING = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"),
    *("<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
)


def count_column(stage: str) -> str:
    """``<stage>.count``: the number of objects a task's table stage found."""
    return f"{stage}.count"


def mean_column(stage: str, measurement: str) -> str:
    """``<stage>.mean_<measurement>``: a task's mean of one measurement."""
    return f"{stage}.mean_{measurement}"


def summarize(stage: str, table: pd.DataFrame) -> dict[str, Any]:
    """Object count and the mean of each numeric measurement of one task's table.

    Returns
    -------
    dict
        ``{'<stage>.count': n, '<stage>.mean_<column>': mean, ...}``; means are NaN
        for an empty table.
    """
    summary: dict[str, Any] = {count_column(stage): len(table)}
    summary.update(_class_counts(stage, table))
    for column in table.columns:
        if column in (LABEL, CLASS_COLUMN) or not pd.api.types.is_numeric_dtype(table[column]):
            continue
        mean = float(table[column].mean()) if len(table) else float("nan")
        summary[mean_column(stage, column)] = mean
    return summary


def _class_counts(stage: str, table: pd.DataFrame) -> dict[str, int]:
    """``<stage>.count_<class>`` for every class of an object classifier's table (one with
    a ``class`` column; its ``probability_<class>`` columns name every class of the
    training, so that a class no object of this image has counts 0)."""
    if CLASS_COLUMN not in table.columns:
        return {}
    classes = [c[len(PROBABILITY_PREFIX) :] for c in table.columns if str(c).startswith(PROBABILITY_PREFIX)]
    found = table[CLASS_COLUMN].astype(str).value_counts()
    for value in found.index:
        if value not in classes:
            classes.append(value)
    return {f"{stage}.count_{name}": int(found.get(name, 0)) for name in classes}


def read_table(path: Path, keys: Collection[str] = ()) -> pd.DataFrame:
    """A table of the run folder as it was written: names and keys stay text.

    The image, its folder, its scene name and channel files, the status and error, and
    the ``keys`` (the metadata groups, a summary's grouping columns) are read as text,
    only an empty cell missing: folders ``1.1`` and ``1.10`` stay apart, ``007`` is not
    ``7``, and a long barcode keeps every digit. Other columns are read as pandas infers.
    """
    header = pd.read_csv(path, nrows=0).columns
    text = {c for c in header if c in TEXT_COLUMNS or c in keys or str(c).startswith(FILE_PREFIX)}
    return pd.read_csv(
        path,
        dtype={c: str for c in text},
        keep_default_na=False,
        na_values={c: [""] if c in text else list(_MISSING) for c in header},
    )


def param_columns(columns: Sequence[str], pipeline: Pipeline) -> list[str]:
    """The columns named ``<stage>.<param>`` for a parameter of ``pipeline``, in their order."""
    params = {f"{s.name}.{p}" for s in pipeline.stages for p in s.params}
    return [c for c in columns if c in params]


def cell(value: Any) -> Any:
    """A parameter value as a table cell: lists become ``'1-99.8'``."""
    return "-".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def object_rows(
    image: str, params: Mapping[str, Any], metadata: Mapping[str, Any], table: pd.DataFrame
) -> pd.DataFrame:
    """Rows of ``<stage>.csv`` for one task: image, parameter and metadata columns, then the table's."""
    front = {IMAGE: image, **params, **metadata}
    frame = table.copy()
    for position, (column, value) in enumerate(front.items()):
        if column in frame.columns:
            frame = frame.drop(columns=column)
        frame.insert(position, column, [cell(value)] * len(frame))
    return frame


def images_frame(rows: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any], Any]]) -> pd.DataFrame:
    """``images.csv`` from ``(image, params, metadata, record)`` per task, in task order.

    ``record`` is the task's :class:`~.records.TaskRecord`, or None while it is pending.
    """
    frame_rows = []
    for image, params, metadata, record in rows:
        row = {IMAGE: image, **{k: cell(v) for k, v in params.items()}, **metadata}
        row[STATUS] = record.status if record is not None else "pending"
        row[ERROR] = record.error if record is not None else ""
        row[SECONDS] = record.seconds if record is not None else math.nan
        if record is not None:
            row.update(record.summary)
        frame_rows.append(row)
    return pd.DataFrame(frame_rows)


def concatenate(parts: Sequence[Path], target: Path) -> None:
    """Join CSV parts into one file without holding them in memory (same header: text join)."""
    parts = [p for p in parts if p.exists()]
    headers = set()
    for part in parts:
        with part.open(encoding="utf-8") as handle:
            headers.add(handle.readline())
    with atomic_path(target) as temporary:
        if len(headers) > 1:
            # every cell as its text: joined, nothing is re-typed (``007`` stays ``007``)
            frames = (pd.read_csv(p, dtype=str, keep_default_na=False) for p in parts)
            pd.concat(frames, ignore_index=True).fillna("").to_csv(temporary, index=False)
            return
        with temporary.open("w", encoding="utf-8") as out:
            if not parts:
                out.write(f"{IMAGE},{LABEL}\n")
            for number, part in enumerate(parts):
                with part.open(encoding="utf-8") as handle:
                    header = handle.readline()
                    if number == 0:
                        out.write(header)
                    shutil.copyfileobj(handle, out)
