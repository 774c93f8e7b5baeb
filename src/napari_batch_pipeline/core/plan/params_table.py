"""The parameter table: per-dataset parameter values, one CSV file for a whole run.

Its columns are key columns (``folder``, ``image``, metadata fields) and parameter
columns (``<stage>.<param>``)::

    folder,labels.spot_sigma,cleaned.min_size
    small_dim,2,15
    large_bright,5,120

Each task takes the values of the first row whose key cells all equal its own, as text
(``007`` is not ``7``; an empty key cell matches anything, an empty parameter cell keeps
the pipeline's value); a task that no row matches keeps the pipeline's values. A row
that matches no task as text but would as numbers is refused, naming both. The table is
read and checked in full when a batch is built, before anything is written: an unknown column, stage or
parameter, a value of the wrong type (checked as the pipeline file is) or a parameter
that is also swept raises one :class:`PipelineError` naming the row and the column.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..errors import PipelineError
from ..pipeline.model import Pipeline
from ..results.annotations import number_twin, read_key_table
from ..run_folder.tables import FOLDER, IMAGE
from .parameters import _scalar
from .tasks import Task

__all__ = ["ParamsTable", "TableRow", "apply_params_table", "key_columns", "read_params_table"]

#: how the messages name this option
_OPTION = ("params",)


@dataclass(frozen=True)
class TableRow:
    """One row of a parameter table.

    Attributes
    ----------
    number : int
        The row's number, 1 for the first row under the header.
    line : int
        Its line in the file (the header is line 1).
    keys : dict of str to str
        The row's non-empty key cells.
    values : dict of str to value
        Its non-empty parameter cells, ``{'stage.param': value}``, checked against the
        pipeline and normalised as the pipeline file's values are (``2`` -> ``2.0`` for a
        float parameter).
    """

    number: int
    line: int
    keys: dict[str, str]
    values: dict[str, Any]

    def matches(self, key_values: Mapping[str, Any]) -> bool:
        """True if every key cell of the row equals the task's value of that column, as text."""
        return all(_equal(cell, key_values.get(column)) for column, cell in self.keys.items())


@dataclass(frozen=True)
class ParamsTable:
    """A parameter table, read and checked against a pipeline (see :func:`read_params_table`).

    Attributes
    ----------
    path : Path
    keys : tuple of str
        The key columns, in the file's order.
    columns : tuple of str
        The parameter columns ``<stage>.<param>``, in the file's order.
    rows : tuple of TableRow
    """

    path: Path
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[TableRow, ...]

    def match(self, key_values: Mapping[str, Any]) -> TableRow | None:
        """The first row whose key cells all equal ``key_values``' (``folder``, ``image``,
        metadata columns), or None."""
        return next((row for row in self.rows if row.matches(key_values)), None)

    def describe(self) -> dict[str, Any]:
        """What run.json records of the table."""
        return {"table": str(self.path), "keys": list(self.keys), "columns": list(self.columns)}


def read_params_table(
    path: str | Path,
    pipeline: Pipeline,
    *,
    keys: Collection[str],
    swept: Collection[str] = (),
) -> ParamsTable:
    """Read a parameter table and check it against ``pipeline``.

    Parameters
    ----------
    path : path
        The CSV file (UTF-8, a spreadsheet's byte-order mark allowed), with a header.
    pipeline : Pipeline
        The pipeline whose parameters the table sets.
    keys : collection of str
        The key columns the tasks have: ``folder``, ``image`` and their metadata columns.
    swept : collection of str
        The swept parameters (``'stage.param'``), which the table may not set.

    Returns
    -------
    ParamsTable

    Raises
    ------
    PipelineError
        If the file cannot be read, or names a column, stage or parameter the run does not
        have, a swept parameter, a value of the wrong type, naming the row and the column.
    """
    path = Path(path).expanduser().resolve()
    name = f"parameter table {path.name!r}"
    header, cells = read_key_table(path, name, _OPTION)
    key_columns, columns = _columns(name, header, pipeline, set(keys), set(swept))
    rows = []
    for number, line, cell in cells:
        where = f"{name}, row {number} (line {line})"
        rows.append(
            TableRow(
                number,
                line,
                {key: _key_text(key, cell[key]) for key in key_columns if cell[key]},
                _values(where, pipeline, {column: cell[column] for column in columns if cell[column]}),
            )
        )
    return ParamsTable(path, tuple(key_columns), tuple(columns), tuple(rows))


def apply_params_table(
    tasks: Sequence[Task], table: ParamsTable, pipeline: Pipeline
) -> tuple[list[Task], int]:
    """The tasks with the values of their row of ``table``; how many no row matched.

    Every task gets every column of the table (its row's value, or the pipeline's), so
    that the tables' parameter columns hold the values used.
    """
    _refuse_number_twins(tasks, table)
    defaults = {column: _pipeline_value(pipeline, column) for column in table.columns}
    result, unmatched = [], 0
    for task in tasks:
        row = table.match({FOLDER: task.folder, IMAGE: task.image, **task.metadata})
        unmatched += row is None
        values = {**defaults, **(row.values if row is not None else {})}
        result.append(dataclasses.replace(task, table_params=values))
    return result, unmatched


def _refuse_number_twins(tasks: Sequence[Task], table: ParamsTable) -> None:
    """Refuse a row that matches no task as text but would as numbers (``7`` and ``007``).

    Raises
    ------
    PipelineError
        Naming the row, the column, its cell and the task's value.
    """
    frame = pd.DataFrame([{FOLDER: t.folder, IMAGE: t.image, **t.metadata} for t in tasks], dtype=object)
    for row in table.rows:
        twin = number_twin(frame, row.keys)
        if twin is not None:
            column, cell, value = twin
            raise PipelineError(
                f"parameter table {table.path.name!r}, row {row.number} (line {row.line}): "
                f"{column} {cell!r} matches no image: keys match as text, and {cell!r} equals "
                f"the {column} {value!r} only as a number; write it as the images do ({value!r})",
                options=_OPTION,
            )


def key_columns(tasks: Sequence[Task], metadata: str | None = None, recursive: bool = False) -> set[str]:
    """The columns a parameter table may key its rows by: ``folder``, ``image``, the named
    groups of the ``metadata`` pattern and the tasks' other metadata columns.

    Raises
    ------
    PipelineError
        If, in a run over subfolders (``recursive``), the pattern names a group ``folder``.
    """
    groups = set(re.compile(metadata).groupindex) if metadata else set()
    if recursive and FOLDER in groups:
        raise PipelineError(
            f"metadata pattern: the group name {FOLDER!r} is the column of each image's folder "
            "in a run over subfolders; name the group otherwise",
            options=("metadata", "recursive"),
        )
    return {FOLDER, IMAGE, *groups, *(column for task in tasks for column in task.metadata)}


def _columns(
    name: str, header: list[str], pipeline: Pipeline, keys: set[str], swept: set[str]
) -> tuple[list[str], list[str]]:
    """Split the header into key columns and parameter columns, refusing any other."""
    if not any(header):
        raise PipelineError(f"{name} has no header line: expected column names first", options=_OPTION)
    known = ", ".join(sorted(keys, key=lambda k: (k not in (FOLDER, IMAGE), k)))
    key_columns, columns = [], []
    for position, column in enumerate(header, start=1):
        where = f"{name}, column {position} ({column!r})"
        if not column:
            raise PipelineError(f"{where}: the header cell is empty", options=_OPTION)
        if header.count(column) > 1:
            raise PipelineError(f"{where}: the column comes twice", options=_OPTION)
        if column in keys:
            key_columns.append(column)
            continue
        stage, dot, param = column.partition(".")
        if not dot:
            raise PipelineError(
                f"{where}: not a key column ({known}) nor a parameter column (stage.param)", options=_OPTION
            )
        if stage not in pipeline.stage_names:
            raise PipelineError(
                f"{where}: no stage {stage!r} in the pipeline; "
                f"its stages are {', '.join(pipeline.stage_names)}",
                options=_OPTION,
            )
        if param not in pipeline[stage].params:
            raise PipelineError(
                f"{where}: stage {stage!r} ({pipeline[stage].function}) has no parameter {param!r}; its "
                f"parameters are {', '.join(pipeline[stage].params) or 'none'}",
                options=_OPTION,
            )
        if column in swept:
            raise PipelineError(
                f"{where}: {column} is also swept; set a parameter either by the sweep or by the "
                "parameter table",
                options=(*_OPTION, "sweep"),
            )
        columns.append(column)
    if not columns:
        raise PipelineError(f"{name} has no parameter column (stage.param)", options=_OPTION)
    if not key_columns:
        raise PipelineError(
            f"{name} has no key column ({known}): every task would take its first row", options=_OPTION
        )
    return key_columns, columns


def _values(where: str, pipeline: Pipeline, texts: dict[str, str]) -> dict[str, Any]:
    """A row's parameter cells as values, checked and normalised by the pipeline."""
    values = {}
    for column, text in texts.items():
        try:
            values[column] = _scalar(text)
        except yaml.YAMLError:
            message = f"{where}, column {column!r}: cannot read {text!r}"
            raise PipelineError(message, options=_OPTION) from None
    try:
        changed = pipeline.with_params(values)
    except PipelineError as error:
        column = _column_of(error, list(values))
        raise PipelineError(f"{where}, column {column!r}: {_bare(error)}", options=_OPTION) from None
    return {column: _pipeline_value(changed, column) for column in values}


def _column_of(error: PipelineError, columns: list[str]) -> str:
    """The column a pipeline error about ``stage`` / ``params.<name>`` speaks of."""
    if error.stage and error.key and error.key.startswith("params."):
        return f"{error.stage}.{error.key.removeprefix('params.')}"
    return ", ".join(c for c in columns if c.partition(".")[0] == error.stage) or ", ".join(columns)


def _bare(error: PipelineError) -> str:
    """The message of ``error`` without its ``stage 'x', params.y:`` prefix."""
    text = str(error)
    if error.stage is not None:
        prefix = f"stage {error.stage!r}" + (f", {error.key}" if error.key is not None else "") + ": "
        text = text.removeprefix(prefix)
    return text


def _pipeline_value(pipeline: Pipeline, column: str) -> Any:
    stage, _, param = column.partition(".")
    return pipeline[stage].params[param]


def _key_text(column: str, text: str) -> str:
    """A key cell as the tasks spell it: folders and images with ``/``, no ``./``."""
    if column not in (FOLDER, IMAGE):
        return text
    text = text.replace("\\", "/").strip("/")
    while text.startswith("./"):
        text = text[2:]
    return text or "."


def _equal(cell: str, value: Any) -> bool:
    """A key cell equals a task's value as text (``'007'`` is not ``'7'``)."""
    if value is None or (isinstance(value, float) and value != value):
        return False
    return cell == str(value)
