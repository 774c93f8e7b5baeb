"""Plot data from a run's tables: objects per image, a measurement's values, its columns.

(The plot of a measurement against a swept parameter is :mod:`.sweep_plot`.) Plain
pandas; the results view draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..run_folder.layout import param_label
from ..run_folder.tables import BOOKKEEPING, IMAGE, STATUS, count_column, param_columns

if TYPE_CHECKING:
    from ..pipeline.model import Pipeline

__all__ = ["measurement_columns", "measurement_values", "object_counts"]


def measurement_columns(table: pd.DataFrame, pipeline: Pipeline | None = None) -> list[str]:
    """The numeric measurement columns of a table: not image, label, status or parameters."""
    skip = set(BOOKKEEPING)
    if pipeline is not None:
        skip |= set(param_columns(list(table.columns), pipeline))
    return [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]


def object_counts(images: pd.DataFrame, stage: str, params: Sequence[str] = ()) -> pd.DataFrame:
    """Objects per task from images.csv, for a bar chart.

    Parameters
    ----------
    images : DataFrame
        images.csv.
    stage : str
        The table stage whose ``<stage>.count`` column counts the objects.
    params : sequence of str
        Parameter columns, appended to each task's name.

    Returns
    -------
    DataFrame
        Columns ``name`` and ``count``, done tasks only, in images.csv order.
    """
    column = count_column(stage)
    if column not in images:
        return pd.DataFrame({"name": pd.Series(dtype=str), "count": pd.Series(dtype=float)})
    done = images[images[STATUS] == "done"] if STATUS in images else images
    names = [
        str(row[IMAGE]) + (" [" + param_label({p: _scalar(row[p]) for p in params}) + "]" if params else "")
        for _, row in done.iterrows()
    ]
    return pd.DataFrame({"name": names, "count": done[column].to_numpy(dtype=float)})


def measurement_values(table: pd.DataFrame, column: str) -> np.ndarray:
    """The finite values of a numeric column, for a histogram.

    Raises
    ------
    ValueError
        If the column is missing or not numeric.
    """
    if column not in table:
        raise ValueError(
            f"no column {column!r} in the table; its columns are {', '.join(map(str, table.columns))}"
        )
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _scalar(value: Any) -> Any:
    """A pandas cell as the plain Python value the run labelled its files with."""
    return value.item() if isinstance(value, np.generic) else value
