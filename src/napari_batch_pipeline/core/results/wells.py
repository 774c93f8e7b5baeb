"""Wells as the replicates of a screen: the fields of a well aggregated into one row.

A well imaged in several fields is one sample: its fields are not replicates of its
compound. Whenever the run knows wells (a ``well`` column: a metadata field or a plate-map
column), the conclusions score wells (DESIGN, "Screens"):

- ``wells.csv``: one row per plate and well (and parameter set, in a sweep), in order of
  first appearance: the key and plate-map columns (those that hold one value over the
  well's fields), ``fields`` (the well's images), ``fields_flagged`` (those a quality
  rule flagged), then each per-image measurement aggregated over the well's done,
  unflagged fields: their median (``median``, the default) or mean (``mean``), missing
  values skipped, as pycytominer's ``aggregate`` does. A well with no such field keeps its
  row, its measurements empty.
- The replicates of ``normalized.csv`` and ``assay.csv`` are the wells with a usable
  field; without wells, the usable images. Each table says which in ``level``.

A well is told apart by its ``plate`` (else its ``folder``, in a run over subfolders
without plates), its ``well`` and the parameter columns (``<stage>.<param>``), so that a
sweep's parameter sets are never mixed. Images without a well are left out of the wells.

This module owns those names; :mod:`.screen` concludes from the replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from ..errors import PipelineError
from ..images.fields import FILE_PREFIX
from ..run_folder.tables import ERROR, FLAGGED, FOLDER, IMAGE, PLATE, SECONDS, STATUS, WELL
from .summary import usable

__all__ = [
    "FIELDS",
    "FIELDS_FLAGGED",
    "IMAGE_LEVEL",
    "LEVEL",
    "WELL_AGGREGATES",
    "WELL_LEVEL",
    "Replicates",
    "check_well_aggregate",
    "knows_wells",
    "replicates",
    "well_table",
]

FIELDS = "fields"
FIELDS_FLAGGED = "fields_flagged"
#: which replicates a conclusion table scores: ``well`` or ``image``
LEVEL = "level"
WELL_LEVEL = "well"
IMAGE_LEVEL = "image"
#: how the fields of a well are aggregated (the first is the default)
WELL_AGGREGATES = ("median", "mean")
#: columns of images.csv that belong to one field, never to its well
_FIELD_ONLY = frozenset({IMAGE, STATUS, ERROR, SECONDS, FLAGGED})


def check_well_aggregate(name: str) -> str:
    """``name`` if it is a well aggregate.

    Raises
    ------
    PipelineError
        Naming the choices, for any other.
    """
    if name not in WELL_AGGREGATES:
        raise PipelineError(
            f"well aggregate {name!r}: expected one of {', '.join(WELL_AGGREGATES)}",
            options=("well_aggregate",),
        )
    return name


def knows_wells(images: pd.DataFrame) -> bool:
    """Whether ``images`` has a ``well`` column with at least one well in it."""
    if WELL not in images.columns:
        return False
    return bool(_has_well(images).any())


def _has_well(images: pd.DataFrame) -> np.ndarray:
    wells = images[WELL]
    return (wells.notna() & (wells.astype(str).str.strip() != "")).to_numpy()


def _strata(images: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns that tell wells apart: plate (else folder), well, parameter columns."""
    where = [PLATE] if PLATE in images.columns else [FOLDER] if FOLDER in images.columns else []
    measured = set(columns)
    params = [
        c
        for c in images.columns
        if "." in str(c)
        and c not in measured
        and not _is_measurement(str(c))
        and not str(c).startswith(FILE_PREFIX)
        and c not in where
    ]
    return [*where, WELL, *params]


def _is_measurement(column: str) -> bool:
    """``<stage>.count`` or ``<stage>.mean_<measurement>``."""
    name = column.partition(".")[2]
    return name == "count" or name.startswith("mean_")


def _group_ids(images: pd.DataFrame, strata: Sequence[str]) -> np.ndarray:
    """Each image's well, numbered from 0 in order of first appearance; -1 without a well."""
    ids = np.full(len(images), -1, dtype=np.int64)
    has = _has_well(images)
    if has.any():
        keys = images.loc[has, list(strata)].astype(object).where(images.loc[has, list(strata)].notna(), "")
        ids[has] = keys.astype(str).groupby(list(strata), sort=False).ngroup().to_numpy()
    return ids


def well_table(images: pd.DataFrame, columns: Sequence[str], aggregate: str = "median") -> pd.DataFrame:
    """``wells.csv`` from images.csv (see the module's docstring).

    Parameters
    ----------
    images : DataFrame
        images.csv, with ``flagged`` when the run has quality rules, and a ``well`` column.
    columns : sequence of str
        The per-image measurements to aggregate (``<stage>.count``, ``<stage>.mean_...``).
    aggregate : {'median', 'mean'}

    Returns
    -------
    DataFrame
        One row per well; no row without a well column.
    """
    return _wells(images, columns, check_well_aggregate(aggregate))[0]


def _wells(images: pd.DataFrame, columns: Sequence[str], aggregate: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The well table, and each image's row in it (-1: no well)."""
    if WELL not in images.columns:
        return pd.DataFrame(columns=[WELL, FIELDS, FIELDS_FLAGGED, *columns]), np.full(len(images), -1)
    strata = _strata(images, columns)
    ids = _group_ids(images, strata)
    count = int(ids.max()) + 1 if len(ids) else 0
    inside = images[ids >= 0]
    inside_ids = ids[ids >= 0]
    first = inside.groupby(inside_ids, sort=True).head(1)  # one row per well, in id order
    measured = set(columns)
    keys = [
        c
        for c in images.columns
        if c not in measured
        and c not in _FIELD_ONLY
        and not str(c).startswith(FILE_PREFIX)
        and (c in strata or _constant_within(inside[c], inside_ids))
    ]
    table = first[keys].reset_index(drop=True)
    table[FIELDS] = np.bincount(inside_ids, minlength=count)
    flagged = np.zeros(len(images), dtype=bool)
    if FLAGGED in images.columns:
        flagged = (images[STATUS] == "done").to_numpy() & (
            images[FLAGGED].fillna("").astype(str) != ""
        ).to_numpy()
    table[FIELDS_FLAGGED] = np.bincount(ids[(ids >= 0) & flagged], minlength=count)
    kept = usable(images) & (ids >= 0)
    values = images.loc[kept, list(columns)].apply(pd.to_numeric, errors="coerce")
    grouped = values.groupby(ids[kept], sort=True).agg(aggregate)
    aggregated = grouped.reindex(range(count))
    for column in columns:
        table[column] = aggregated[column].to_numpy(dtype=float)
    return table, ids


def _constant_within(values: pd.Series, ids: np.ndarray) -> bool:
    """Whether ``values`` hold one value (or none) within each id."""
    text = values.astype(object).where(values.notna(), "").astype(str)
    return bool((text.groupby(ids).nunique() <= 1).all())


class _Selection(Protocol):
    """What names control images (``screen.Control``): a column, and the rows it picks."""

    @property
    def column(self) -> str: ...

    def mask(self, frame: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class Replicates:
    """What a screen scores: the usable wells, or the usable images without wells.

    Attributes
    ----------
    frame : DataFrame
        One row per replicate: its key columns and measurements.
    level : {'well', 'image'}
    images : DataFrame
        The usable images the replicates come from.
    ids : (len(images),) ndarray of int
        Each usable image's row in ``frame``.
    """

    frame: pd.DataFrame
    level: str
    images: pd.DataFrame
    ids: np.ndarray

    def mask(self, control: _Selection) -> np.ndarray:
        """Which replicates are the control: a well is when its column says so, or (a
        column that differs between its fields) when every usable field of it is."""
        if self.level == IMAGE_LEVEL or control.column in self.frame.columns:
            return np.asarray(control.mask(self.frame), dtype=np.bool_)
        fields = pd.Series(np.asarray(control.mask(self.images), dtype=np.bool_))
        every = fields.groupby(self.ids).all()
        return every.reindex(range(len(self.frame)), fill_value=False).to_numpy(dtype=bool)


def replicates(images: pd.DataFrame, columns: Sequence[str], aggregate: str = "median") -> Replicates:
    """The replicates of a screen: wells with a usable field when ``images`` knows wells
    (aggregated by ``aggregate``), else the usable images."""
    kept = usable(images)
    if not knows_wells(images):
        frame = images[kept].reset_index(drop=True)
        return Replicates(frame, IMAGE_LEVEL, frame, np.arange(len(frame)))
    table, ids = _wells(images, columns, check_well_aggregate(aggregate))
    with_field = np.zeros(len(table), dtype=bool)
    with_field[ids[kept & (ids >= 0)]] = True
    renumber = np.cumsum(with_field) - 1
    chosen = kept & (ids >= 0)
    return Replicates(
        table[with_field].reset_index(drop=True),
        WELL_LEVEL,
        images[chosen].reset_index(drop=True),
        renumber[ids[chosen]],
    )
