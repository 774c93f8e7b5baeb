"""Plot data of a run by group: a measurement per image in each group, and a measurement
against a parameter, each image a point coloured by its group.

The image is the unit of replication, as in the summary (:mod:`.summary`): each done
task contributes its per-image value of images.csv (the object count, or the mean of a
measurement over its objects). Groups are those of the summary: the values of the
grouping columns, in the order they first appear. Plain pandas; the results view draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..run_folder.records import DONE
from ..run_folder.tables import IMAGE, STATUS, count_column, mean_column
from .summary import ALL, measurements

__all__ = ["GROUP_COLUMN", "group_names", "image_measurements", "parameter_points", "values_by_group"]

#: the column of :func:`parameter_points` that names each image's group
GROUP_COLUMN = "group"


def image_measurements(images: pd.DataFrame, table_stages: Sequence[str]) -> list[str]:
    """The per-image columns of images.csv a group plot can show: each table stage's
    ``<stage>.count``, then its ``<stage>.mean_<measurement>`` columns."""
    counts = [count_column(stage) for stage in table_stages if count_column(stage) in images]
    return counts + [mean_column(stage, name) for stage, name in measurements(images, table_stages)]


def group_names(images: pd.DataFrame, group_by: Sequence[str]) -> pd.Series:
    """Each row's group as text: ``'A'``, ``'A / day 2'`` for two columns, ``'all'`` for none."""
    if not group_by:
        return pd.Series(ALL, index=images.index, dtype=object)
    _check_columns(images, group_by)
    parts = [
        images[column].astype(object).where(images[column].notna(), "").astype(str) for column in group_by
    ]
    names = parts[0]
    for part in parts[1:]:
        names = names + " / " + part
    return names


def values_by_group(
    images: pd.DataFrame, measurement: str, group_by: Sequence[str]
) -> list[tuple[str, np.ndarray]]:
    """The finite per-image values of ``measurement`` in each group, done tasks only.

    Parameters
    ----------
    images : DataFrame
        images.csv.
    measurement : str
        A numeric column of it (:func:`image_measurements`).
    group_by : sequence of str
        The grouping columns; empty: one group ``all``.

    Returns
    -------
    list of (str, (N,) float ndarray)
        One entry per group, in the order groups first appear in images.csv (groups
        of failed tasks only included, with no values).

    Raises
    ------
    ValueError
        If a column is not in images.csv.
    """
    _check_columns(images, [measurement])
    names = group_names(images, group_by)
    values = pd.to_numeric(images[measurement], errors="coerce").to_numpy(dtype=float)
    usable = _done(images) & np.isfinite(values)
    return [(str(name), values[(names == name).to_numpy() & usable]) for name in dict.fromkeys(names)]


def parameter_points(
    images: pd.DataFrame, parameter: str, measurement: str, group_by: Sequence[str]
) -> pd.DataFrame:
    """Each done image's ``measurement`` at the value of ``parameter`` it ran with.

    Returns
    -------
    DataFrame
        Columns ``image``, ``group`` (:func:`group_names`), ``parameter`` and ``value``,
        one row per done task with a finite value, in images.csv order.

    Raises
    ------
    ValueError
        If a column is not in images.csv.
    """
    _check_columns(images, [parameter, measurement])
    values = pd.to_numeric(images[measurement], errors="coerce")
    frame = pd.DataFrame(
        {
            IMAGE: images[IMAGE],
            GROUP_COLUMN: group_names(images, group_by),
            "parameter": images[parameter],
            "value": values.astype(float),
        }
    )
    return frame[_done(images) & np.isfinite(frame["value"].to_numpy())].reset_index(drop=True)


def _done(images: pd.DataFrame) -> np.ndarray:
    return (images[STATUS] == DONE).to_numpy() if STATUS in images else np.ones(len(images), dtype=bool)


def _check_columns(images: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in images.columns]
    if missing:
        raise ValueError(
            f"no column {', '.join(map(repr, missing))} in images.csv; "
            f"its columns are {', '.join(map(str, images.columns))}"
        )
