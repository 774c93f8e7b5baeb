"""Each task's objects: the rows of a per-object table that belong to one row of images.csv,
and what a task's saved outputs show (run, image, field, parameter set).

A task is one row of images.csv, identified in every table by its image, its scene and
time point (in runs that have them) and its parameter values. The per-object tables
(``<stage>.csv``) measure the labels of one stage; :func:`measured_by` says which.
Viewers attach a task's objects to its labels, one row per label (napari's ``features``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Number
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..images.fields import SCENE, TIME
from .layout import RunLayout
from .tables import IMAGE, cell, read_table

if TYPE_CHECKING:
    from ..pipeline.model import Pipeline
    from .reader import RunResults

__all__ = [
    "measured_by",
    "objects_by_row",
    "row_description",
    "select_objects",
    "task_columns",
    "task_objects",
]


def measured_by(pipeline: Pipeline, stage: str) -> str | None:
    """The first table stage that measures the output of ``stage`` (takes it as its labels);
    None when none does."""
    for name in pipeline.table_stages:
        config = pipeline[name]
        if any(
            source == stage and config.spec.data_args.get(arg) == "labels"
            for arg, source in config.inputs.items()
        ):
            return name
    return None


def task_columns(images: pd.DataFrame, param_columns: Sequence[str]) -> list[str]:
    """The columns that tell tasks apart: ``image``, ``scene`` and ``t`` where the run has
    them, and the parameter columns."""
    return [IMAGE, *(c for c in (SCENE, TIME) if c in images.columns), *param_columns]


def select_objects(table: pd.DataFrame, key: Mapping[str, Any]) -> pd.DataFrame:
    """The rows of a per-object ``table`` whose columns equal ``key`` (``{column: value}``).

    Values compare as the tables write them: numbers as numbers (``2`` equals ``2.0``),
    lists as ``'1-99.8'``, anything else as text. Columns the table lacks are skipped.

    Returns
    -------
    DataFrame
        The matching rows, index reset.
    """
    keep = np.ones(len(table), dtype=bool)
    for column, value in key.items():
        if column in table.columns:
            wanted = _comparable(cell(value))
            keep &= np.array([_comparable(v) == wanted for v in table[column]], dtype=bool)
    return table[keep].reset_index(drop=True)


def task_objects(run_folder: Path, stage: str, key: Mapping[str, Any], task_key: str) -> pd.DataFrame | None:
    """One task's rows of the per-object table ``<stage>.csv``, also while its run goes on.

    A finished run's table is read (``key`` picks the rows, as :func:`select_objects`);
    while the run is still writing, the task's own part of that table (written by its
    worker, named by ``task_key``: :attr:`Task.key <napari_batch_pipeline.core.plan.tasks.Task.key>`).
    None when neither exists yet (the task has not finished, or measured nothing).
    """
    layout = RunLayout.at(run_folder)
    if layout.table(stage).is_file():
        return select_objects(read_table(layout.table(stage)), key)
    part = layout.part(stage, task_key)
    return read_table(part) if part.is_file() else None


def objects_by_row(images: pd.DataFrame, table: pd.DataFrame, columns: Sequence[str]) -> list[np.ndarray]:
    """Where the objects of each row of ``images`` (images.csv) are in a per-object ``table``.

    Parameters
    ----------
    images : DataFrame
        images.csv.
    table : DataFrame
        A ``<stage>.csv``.
    columns : sequence of str
        The columns that tell tasks apart (:func:`task_columns`).

    Returns
    -------
    list of (K,) int ndarray
        For each row of ``images``, the positions of its rows in ``table`` (empty for a
        task without objects): ``table.iloc[positions]`` are its objects. Positions, not
        frames, so that a run of a thousand images costs one pass over the table.
    """
    shared = [c for c in columns if c in table.columns and c in images.columns]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for position, key in enumerate(_keys(table, shared)):
        groups.setdefault(key, []).append(position)
    return [np.asarray(groups.get(key, ()), dtype=np.intp) for key in _keys(images, shared)]


def row_description(results: RunResults, index: int) -> dict[str, Any]:
    """Where row ``index`` of a run's images.csv comes from, for a layer's metadata:
    ``run_folder``, ``image``, ``scene`` and ``t`` (where the run has them), ``parameters``
    (the parameter-set label, ``''`` without a sweep) and ``row`` (the row number)."""
    scene, t = results.row_field(index)
    field = {name: value for name, value in ((SCENE, scene), (TIME, t)) if value is not None}
    image = str(results.row(index)[IMAGE])
    label = results.row_label(index)
    return {"run_folder": str(results.path), "image": image, **field, "parameters": label, "row": index}


def _keys(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    values = [[_comparable(v) for v in frame[column]] for column in columns]
    return list(zip(*values, strict=True)) if values else [()] * len(frame)


def _comparable(value: Any) -> Any:
    """A table cell in a form equal across tables: numbers as float, missing as None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, Number) and not isinstance(value, bool | np.bool_):
        number = float(value)  # type: ignore[arg-type]
        return None if np.isnan(number) else number
    return str(value)
