"""The plate map: annotations of images (compound, dose, control...) from one CSV file.

Its columns are key columns (``folder``, ``image``, metadata fields such as ``plate``
and ``well``), as in a parameter table, and annotation columns, any others::

    plate,well,compound,dose,control
    P1,A01,DMSO,0,negative
    P1,A02,staurosporine,1,positive

Each image takes the annotations of the first row whose key cells all equal its own, as
text (``007`` is not ``7``, ``1.10`` is not ``1.1``; an empty key cell matches anything);
an image no row matches has empty annotations. A row that matches no image as text but
would as numbers is refused before anything runs, naming both (:func:`number_twin`).
The annotation columns join every table of the run.
A ``well`` column (a metadata field or an annotation), written ``A01``, ``A1`` or
``r01c01``, gives every table ``row`` (a letter) and ``column`` (a number).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import PipelineError
from ..run_folder.tables import COLUMN, ROW, WELL

__all__ = [
    "Annotations",
    "check_positions",
    "digit_ids",
    "matching",
    "number_twin",
    "plate_column",
    "plate_row",
    "read_annotations",
    "read_key_table",
    "row_letters",
    "row_number",
    "well_position",
    "with_wells",
]

#: how the messages name this option
_OPTION = ("annotations",)
_LETTERED = re.compile(r"^\s*([A-Za-z]{1,2})\s*0*(\d+)\s*$")
_NUMBERED = re.compile(r"^\s*[Rr]0*(\d+)\s*[Cc]0*(\d+)\s*$")
_ROW_LETTERS = re.compile(r"^\s*([A-Za-z]{1,2})\s*$")
_WHOLE = re.compile(r"^\s*0*(\d+)(?:\.0*)?\s*$")


@dataclass(frozen=True)
class Annotations:
    """A plate map, read and checked (see :func:`read_annotations`).

    Attributes
    ----------
    path : Path
        The CSV file, absolute.
    keys, columns : tuple of str
        Its key columns and its annotation columns, each in the file's order.
    rows : tuple of (dict, dict)
        Per row, its non-empty key cells and its annotation cells (text).
    """

    path: Path
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[dict[str, str], dict[str, str]], ...]

    def join(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the annotation columns added at its end (text; empty where no row
        matches). ``frame`` has the key columns (a table of the run)."""
        values = {column: np.full(len(frame), "", dtype=object) for column in self.columns}
        free = np.ones(len(frame), dtype=bool)
        for keys, cells in self.rows:
            hit = free & matching(frame, keys)
            for column in self.columns:
                values[column][hit] = cells[column]
            free &= ~hit
        return frame.assign(**values)

    def unmatched_rows(self, frame: pd.DataFrame) -> list[int]:
        """The numbers (1 for the first under the header) of the rows no row of ``frame``
        matches."""
        return [
            number for number, (keys, _) in enumerate(self.rows, start=1) if not matching(frame, keys).any()
        ]

    def describe(self) -> dict[str, object]:
        """What run.json records of the plate map."""
        return {"table": str(self.path), "keys": list(self.keys), "columns": list(self.columns)}


def read_annotations(path: str | Path, *, keys: Collection[str], taken: Collection[str] = ()) -> Annotations:
    """Read a plate map.

    Parameters
    ----------
    path : path
        The CSV file (UTF-8, a spreadsheet's byte-order mark allowed), with a header.
    keys : collection of str
        The key columns the run's images have: ``folder``, ``image``, metadata columns.
    taken : collection of str
        Column names an annotation may not take (the run's own columns: status, the
        parameter and measurement columns...).

    Returns
    -------
    Annotations

    Raises
    ------
    PipelineError
        If the file cannot be read, has no key or no annotation column, an empty or
        repeated header cell, an annotation column named as a column of the run, or a
        row with another number of cells than the header, naming the row or column.
    """
    path = Path(path).expanduser().resolve()
    name = f"plate map {path.name!r}"
    header, lines = read_key_table(path, name, _OPTION)
    if not any(header):
        raise PipelineError(f"{name} has no header line: expected column names first", options=_OPTION)
    for position, column in enumerate(header, start=1):
        if not column or header.count(column) > 1:
            problem = "the header cell is empty" if not column else "the column comes twice"
            raise PipelineError(f"{name}, column {position} ({column!r}): {problem}", options=_OPTION)
        if column not in keys and column in taken:
            raise PipelineError(
                f"{name}, column {position} ({column!r}): a column the run writes itself; "
                "rename the annotation",
                options=_OPTION,
            )
    key_columns = [c for c in header if c in keys]
    columns = [c for c in header if c not in keys]
    if not key_columns or not columns:
        missing = "key column (" + ", ".join(sorted(keys)) + ")" if not key_columns else "annotation column"
        raise PipelineError(f"{name} has no {missing}", options=_OPTION)
    rows = [
        ({k: cells[k] for k in key_columns if cells[k]}, {c: cells[c] for c in columns})
        for _, _, cells in lines
    ]
    _refuse_contradictions(name, rows, [line for _, line, _ in lines])
    return Annotations(path, tuple(key_columns), tuple(columns), tuple(rows))


def _refuse_contradictions(
    name: str, rows: list[tuple[dict[str, str], dict[str, str]]], lines: list[int]
) -> None:
    """Refuse two rows with the same keys (one well listed twice) and other annotations:
    only the first would ever be used. Rows alike in every cell are harmless."""
    seen: dict[tuple[tuple[str, str], ...], int] = {}
    for index, (keys, cells) in enumerate(rows):
        first = seen.setdefault(tuple(sorted(keys.items())), index)
        if first == index or rows[first][1] == cells:
            continue
        where = ", ".join(f"{k}={v}" for k, v in keys.items()) or "every image"
        column = next(c for c in cells if cells[c] != rows[first][1][c])
        raise PipelineError(
            f"{name}, rows {first + 1} (line {lines[first]}) and {index + 1} (line {lines[index]}) both "
            f"list {where}, with {column} {rows[first][1][column]!r} and {cells[column]!r}; keep "
            "one row per well",
            options=_OPTION,
        )


def read_key_table(
    path: Path, name: str, options: tuple[str, ...]
) -> tuple[list[str], list[tuple[int, int, dict[str, str]]]]:
    """The header and non-empty rows of a CSV table keyed by the images' columns (a plate
    map, a parameter table): UTF-8, a spreadsheet's byte-order mark allowed.

    Returns
    -------
    header : list of str
        The header cells, stripped.
    rows : list of (int, int, dict)
        Per non-empty row, its number (1 for the first under the header), its line in
        the file (the header is line 1) and its cells by column, stripped.

    Raises
    ------
    PipelineError
        If the file cannot be read or a row has another number of cells than the
        header; the message starts with ``name`` and lists ``options``.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = [cell.strip() for cell in next(reader, [])]
            lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise PipelineError(f"{name} cannot be read ({path}): {detail}", options=options) from None
    rows = []
    for number, (line, row) in enumerate(lines, start=1):
        if len(row) != len(header):
            raise PipelineError(
                f"{name}, row {number} (line {line}): {len(row)} cell(s) where the header has "
                f"{len(header)} columns",
                options=options,
            )
        rows.append((number, line, {column: text.strip() for column, text in zip(header, row, strict=True)}))
    return header, rows


def matching(frame: pd.DataFrame, cells: Mapping[str, str]) -> np.ndarray:
    """Which rows of ``frame`` have every column of ``cells`` equal to its cell, as text
    (``'007'`` is not ``'7'``). A column ``frame`` lacks matches nothing.

    Returns
    -------
    (len(frame),) ndarray of bool
    """
    hit = np.ones(len(frame), dtype=bool)
    for column, cell in cells.items():
        if column not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        hit &= _same_text(frame[column], cell)
    return hit


def number_twin(frame: pd.DataFrame, cells: Mapping[str, str]) -> tuple[str, str, str] | None:
    """For key cells that match no row of ``frame`` as text: a column, its cell and a value
    of ``frame`` that the cell equals only as a number (``'7'`` and ``'007'``), where
    reading those cells as numbers would make a row match; None otherwise.

    Keys match as text; a near miss like this is a key written otherwise than the images
    write it, refused rather than guessed.
    """
    if matching(frame, cells).any() or any(column not in frame.columns for column in cells):
        return None
    loose = np.ones(len(frame), dtype=bool)
    for column, cell in cells.items():
        loose &= _same_text(frame[column], cell) | _same_number(frame[column], cell)
    if not loose.any():
        return None
    first = int(np.flatnonzero(loose)[0])
    for column, cell in cells.items():
        value = frame[column].iloc[first]
        if str(value) != cell:
            return column, cell, str(value)
    return None


def _same_text(values: pd.Series, cell: str) -> np.ndarray:
    return (values.astype(str) == cell).to_numpy() & values.notna().to_numpy()


def _same_number(values: pd.Series, cell: str) -> np.ndarray:
    try:
        number = float(cell)
    except ValueError:
        return np.zeros(len(values), dtype=bool)
    return (pd.to_numeric(values, errors="coerce") == number).to_numpy()


def row_letters(number: int) -> str:
    """The letters of a plate row: 1 -> ``A``, 26 -> ``Z``, 27 -> ``AA``."""
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def row_number(letters: str) -> int:
    """The number of a plate row: ``A`` -> 1, ``AA`` -> 27."""
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def plate_row(value: object) -> int | None:
    """The number (from 1) of a plate row written as letters (``A``, ``AF``) or as a number
    (``1``, ``01``: 1 is row A, as Opera's ``r01c01`` counts); None for anything else."""
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
    letters = _ROW_LETTERS.match(text)
    if letters:
        return row_number(letters.group(1))
    number = _WHOLE.match(text)
    return int(number.group(1)) or None if number else None


def plate_column(value: object) -> int | None:
    """The number (from 1) of a plate column written as a number (``1``, ``01``, ``1.0``);
    None for anything else."""
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
    number = _WHOLE.match(text)
    return int(number.group(1)) or None if number else None


def check_positions(frame: pd.DataFrame, options: tuple[str, ...] = _OPTION) -> None:
    """Refuse a ``row`` or ``column`` that places no well: rows are letters (``A``) or
    numbers from 1 (1 is ``A``), columns numbers from 1; empty cells are no well.

    Raises
    ------
    PipelineError
        Naming the column, the value and what was expected.
    """
    for column, reader, expected in (
        (ROW, plate_row, "a row written as letters (A, B, ... AF) or as a number from 1 (1 is A)"),
        (COLUMN, plate_column, "a column written as a number from 1"),
    ):
        if column not in frame.columns:
            continue
        for value in frame[column]:
            if _empty(value) or reader(value) is not None:
                continue
            raise PipelineError(f"{column} {str(value)!r}: expected {expected}", options=options)


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() == ""


def well_position(well: object) -> tuple[str, int] | None:
    """The row (letters) and column (from 1) of a well written ``A01``, ``A1`` or
    ``r01c01``; None for anything else (an empty cell)."""
    if not isinstance(well, str):
        return None
    lettered = _LETTERED.match(well)
    if lettered:
        row, column = lettered.group(1).upper(), int(lettered.group(2))
    else:
        numbered = _NUMBERED.match(well)
        if not numbered:
            return None
        row, column = row_letters(int(numbered.group(1))), int(numbered.group(2))
    return (row, column) if column > 0 and row_number(row) > 0 else None


def with_wells(frame: pd.DataFrame, options: tuple[str, ...] = _OPTION) -> pd.DataFrame:
    """``frame`` with ``row`` and ``column`` from its ``well`` column, at its end; as it is
    without a ``well`` column or with its own ``row`` or ``column``.

    Parameters
    ----------
    options : tuple of str
        The options a refusal names: where the wells came from (the plate map, or the
        metadata pattern).

    Raises
    ------
    PipelineError
        If a non-empty well is written otherwise than ``A01``, ``A1`` or ``r01c01``.
    """
    if WELL not in frame.columns or ROW in frame.columns or COLUMN in frame.columns:
        return frame
    wells = frame[WELL]
    positions = [well_position(str(w)) if pd.notna(w) and str(w) != "" else None for w in wells]
    bad = [
        str(w) for w, p in zip(wells, positions, strict=True) if p is None and pd.notna(w) and str(w) != ""
    ]
    if bad:
        source = "the metadata field 'well'" if options != _OPTION else "the plate map's 'well' column"
        raise PipelineError(
            f"well {bad[0]!r}: expected a well written A01, A1 or r01c01 (from {source}; a "
            "column named 'well' is read as the plate's wells: name it otherwise if it holds "
            "something else)",
            options=options,
        )
    rows = [p[0] if p else "" for p in positions]
    columns = pd.array([p[1] if p else None for p in positions], dtype="Int64")
    return frame.assign(**{ROW: rows, COLUMN: columns})


def digit_ids(images: pd.DataFrame, annotations: Annotations | None) -> list[str]:
    """The plate map's columns whose cells (in ``images``, read as text) are digits that a
    number would change: a leading zero (``007``, barcode ``0012345``) or more than 15
    digits. Parquet keeps them as text, as the CSV does."""
    found = []
    for column in annotations.columns if annotations is not None else ():
        cells = [str(c) for c in images.get(column, pd.Series(dtype=str)) if str(c) != ""]
        digits = [c.removeprefix("-") for c in cells]
        changed = any((len(d) > 1 and d.startswith("0")) or len(d) > 15 for d in digits)
        if digits and all(d.isdigit() for d in digits) and changed:
            found.append(column)
    return found
