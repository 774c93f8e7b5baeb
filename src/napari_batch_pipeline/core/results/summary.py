"""The summary of a run: one row per group of images, the image being the unit of replication.

``summary.csv`` has one row per group (by the grouping columns; by default ``folder``
when the run has one, else the metadata columns, else the parameter columns, else one
group ``all``): the grouping columns, ``tasks_done``, ``tasks_failed``, ``objects``, and
for each numeric measurement of each table stage ``<stage>.<measurement>.mean``, ``.sd``
(ddof 1), ``.sem`` and ``.median``, taken over the per-image means of images.csv
(``<stage>.mean_<measurement>``, done tasks only). Images flagged by quality rules
(images.csv's ``flagged``) are counted in ``tasks_flagged`` and left out of ``objects``
and the statistics. ``summary.png`` plots the first measurement: a point per image and
a box per group. This module owns those names.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import PipelineError
from ..files import atomic_path
from ..images.fields import DIMS
from ..run_folder.reader import RunResults
from ..run_folder.records import DONE, FAILED
from ..run_folder.tables import FLAGGED, FOLDER, STATUS, count_column, mean_column, read_table
from . import figure_process
from .summary_plot import SummaryPlot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "GROUP",
    "OBJECTS",
    "STATISTICS",
    "TASKS_DONE",
    "TASKS_FAILED",
    "TASKS_FLAGGED",
    "begin_summary",
    "check_group_by",
    "default_group_by",
    "measurements",
    "read_summary",
    "run_summary",
    "summary_figure",
    "summary_keys",
    "summary_plot",
    "summary_table",
    "usable",
    "write_summary",
]

TASKS_DONE = "tasks_done"
TASKS_FAILED = "tasks_failed"
#: done images that break a quality rule: out of the statistics
TASKS_FLAGGED = "tasks_flagged"
OBJECTS = "objects"
#: the column of the single group of a run with nothing to group by; its value is ``all``
GROUP = "group"
ALL = "all"
STATISTICS = ("mean", "sd", "sem", "median")


def default_group_by(
    columns: Sequence[str], metadata: Sequence[str] = (), params: Sequence[str] = ()
) -> list[str]:
    """``folder`` when present, else the metadata columns, else the parameter columns
    (each as far as ``columns`` has them); ``[]``: one group."""
    for choice in ([FOLDER], list(metadata), list(params)):
        present = [c for c in choice if c in columns]
        if present:
            return present
    return []


def _with_dims(images: pd.DataFrame, keys: list[str]) -> list[str]:
    """``keys``, and ``dims`` in a run that mixes 2D and 3D images: areas and volumes are
    summarised apart."""
    return [*keys, DIMS] if DIMS in images.columns and DIMS not in keys else keys


def usable(images: pd.DataFrame) -> np.ndarray:
    """The images that count: done and not flagged by a quality rule.

    Returns
    -------
    (len(images),) ndarray of bool
    """
    done = (images[STATUS] == DONE).to_numpy()
    if FLAGGED not in images.columns:
        return done
    return done & images[FLAGGED].fillna("").astype(str).eq("").to_numpy()


def measurements(images: pd.DataFrame, table_stages: Sequence[str]) -> list[tuple[str, str]]:
    """``(stage, measurement)`` for each ``<stage>.mean_<measurement>`` column of images.csv,
    stage by stage in the pipeline's order."""
    found = []
    for stage in table_stages:
        prefix = mean_column(stage, "")
        found += [(stage, c[len(prefix) :]) for c in images.columns if c.startswith(prefix)]
    return found


def summary_table(images: pd.DataFrame, table_stages: Sequence[str], group_by: Sequence[str]) -> pd.DataFrame:
    """One row per group of images.csv.

    Parameters
    ----------
    images : DataFrame
        images.csv: one row per task.
    table_stages : sequence of str
        The pipeline's table stages; ``objects`` counts the first one's objects.
    group_by : sequence of str
        Columns of ``images``; empty: one group, ``group`` = ``all``.

    Returns
    -------
    DataFrame
        The grouping columns, ``tasks_done``, ``tasks_failed``, ``tasks_flagged`` (when
        ``images`` has ``flagged``), ``objects``, then
        ``<stage>.<measurement>.<statistic>`` for each statistic of :data:`STATISTICS`,
        groups in the order they first appear.

    Raises
    ------
    PipelineError
        If a grouping column is not in ``images``.
    """
    missing = [c for c in group_by if c not in images.columns]
    if missing:
        raise PipelineError(
            f"group by {', '.join(map(repr, missing))}: no such column in the run's images table; "
            f"its columns are {', '.join(map(str, images.columns))}",
            options=("group_by",),
        )
    keys = _with_dims(images, list(group_by) or [GROUP])
    frame = images if group_by else images.assign(**{GROUP: ALL})
    counts = [count_column(table_stages[0])] if table_stages else []
    pairs = measurements(images, table_stages)
    done = pd.Series(usable(frame), index=frame.index)
    flagged = FLAGGED in frame.columns
    # one pass of pandas' grouped reductions (a loop over 20,000 groups took 47 s)
    columns: dict[str, pd.Series] = {
        TASKS_DONE: frame[STATUS] == DONE,
        TASKS_FAILED: frame[STATUS] == FAILED,
        **({TASKS_FLAGGED: (frame[STATUS] == DONE) & ~done} if flagged else {}),
        OBJECTS: frame[counts[0]].where(done, 0).fillna(0) if counts and counts[0] in frame else done * 0,
    }
    tallies = [TASKS_DONE, TASKS_FAILED, *([TASKS_FLAGGED] if flagged else []), OBJECTS]
    for stage, measurement in pairs:
        values = pd.to_numeric(frame[mean_column(stage, measurement)], errors="coerce").astype(float)
        columns[f"{stage}.{measurement}"] = values.where(done)
    grouped = pd.DataFrame(columns, index=frame.index).groupby(
        [frame[key] for key in keys], sort=False, dropna=False
    )
    table = grouped[tallies].sum().astype(int)
    for stage, measurement in pairs:
        per_image = grouped[f"{stage}.{measurement}"]
        statistics = (per_image.mean(), per_image.std(ddof=1), per_image.sem(ddof=1), per_image.median())
        for name, value in zip(STATISTICS, statistics, strict=True):
            table[f"{stage}.{measurement}.{name}"] = value.astype(float)
    table = table.reset_index(names=keys) if len(table) else pd.DataFrame(columns=[*keys, *table.columns])
    order = [*keys, *tallies]
    order += [f"{s}.{m}.{name}" for s, m in pairs for name in STATISTICS]
    return table[order].reset_index(drop=True)


#: the most groups the summary figure shows (summary.csv holds every group)
MAX_FIGURE_GROUPS = 60


def summary_figure(images: pd.DataFrame, table_stages: Sequence[str], group_by: Sequence[str]) -> Figure:
    """The first measurement by group: a point per image (its mean), a box per group.

    A matplotlib figure made without pyplot (no GUI backend).
    """
    return summary_plot(images, table_stages, group_by).figure()


def summary_plot(images: pd.DataFrame, table_stages: Sequence[str], group_by: Sequence[str]) -> SummaryPlot:
    """What :func:`summary_figure` draws, as plain values (at most
    :data:`MAX_FIGURE_GROUPS` groups)."""
    pairs = measurements(images, table_stages)
    if not pairs:
        return SummaryPlot(empty=True)
    stage, measurement = pairs[0]
    column = mean_column(stage, measurement)
    done = images[usable(images)]
    keys = _with_dims(images, list(group_by))
    names: list[str] = []
    data: list[np.ndarray] = []
    groups = done.groupby(keys, sort=False, dropna=False) if keys else None
    for key, group in groups if groups is not None else [((ALL,), done)]:
        if len(names) == MAX_FIGURE_GROUPS:
            break
        names.append(" / ".join(map(str, key if isinstance(key, tuple) else (key,))))
        series = pd.to_numeric(group[column], errors="coerce").to_numpy(dtype=float)
        data.append(series[np.isfinite(series)])
    total = groups.ngroups if groups is not None else 1
    shown = f"the first {len(data)} of {total} groups" if total > len(data) else f"{len(data)} group(s)"
    return SummaryPlot(
        names=tuple(names),
        values=tuple(data),
        xlabel=", ".join(keys) or GROUP,
        ylabel=f"{stage}.{measurement} (mean per image)",
        title=f"{stage}.{measurement}: {sum(map(len, data))} images in {shown}",
    )


def run_summary(results: RunResults, group_by: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The summary of a run folder and the columns it is grouped by.

    ``group_by`` None: the grouping the run recorded, else the default (see
    :func:`default_group_by`).
    """
    keys = summary_keys(results, group_by)
    return summary_table(results.images, results.pipeline.table_stages, keys), keys


def summary_keys(results: RunResults, group_by: Sequence[str] | None = None) -> list[str]:
    """The columns the summary of a run folder is grouped by: ``group_by``, else the
    grouping the run recorded, else the default (see :func:`default_group_by`)."""
    if group_by is not None:
        return list(group_by)
    recorded = results.provenance.get("group_by")
    if recorded:
        return list(recorded)
    return default_group_by(list(results.images.columns), results.metadata_columns, results.all_param_columns)


def read_summary(path: str | Path) -> pd.DataFrame:
    """``summary.csv`` as it was written: its grouping columns (those before
    ``tasks_done``) as text."""
    header = list(pd.read_csv(path, nrows=0).columns)
    keys = header[: header.index(TASKS_DONE)] if TASKS_DONE in header else []
    return read_table(Path(path), keys)


def write_summary(run_dir: str | Path, group_by: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.png`` of a run folder, whole or not at all.

    Returns
    -------
    (Path, Path)
        The table and the plot.
    """
    table, drawing = begin_summary(run_dir, group_by)
    return table, drawing.result()


def begin_summary(run_dir: str | Path, group_by: Sequence[str] | None = None) -> tuple[Path, Future[Path]]:
    """:func:`write_summary`, the plot drawn meanwhile: ``summary.csv`` is written, and
    the future's ``result()`` waits for ``summary.png`` (and raises what drawing raised)."""
    results = RunResults(run_dir)
    keys, stages, layout = summary_keys(results, group_by), results.pipeline.table_stages, results.layout
    # the plot first: the figure process draws it while the table is computed and written
    drawing = figure_process.draw_later(summary_plot(results.images, stages, keys), layout.summary_plot)
    with atomic_path(layout.summary_table) as temporary:
        summary_table(results.images, stages, keys).to_csv(temporary, index=False)
    return layout.summary_table, drawing


def check_group_by(group_by: Sequence[str] | None, columns: Collection[str]) -> None:
    """Refuse, before anything runs, a grouping by a column the run's tables will not have.

    ``columns`` are those its tasks give: ``image``, parameter and metadata columns.

    Raises
    ------
    PipelineError
        Naming the missing columns and those to group by.
    """
    missing = [c for c in group_by or () if c not in columns]
    if missing:
        raise PipelineError(
            f"group by {', '.join(map(repr, missing))}: not a column of this run's tables; "
            f"the columns to group by are {', '.join(sorted(columns))}",
            options=("group_by",),
        )
