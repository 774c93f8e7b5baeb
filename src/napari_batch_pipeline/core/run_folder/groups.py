"""``groups.csv``: one row per group stage and group, and the group results it lists.

Columns: ``stage``, ``group`` (the result's name: ``<stage>/<group>.tif``), the group's
``group_by`` columns, ``images`` (the images its statistic took), ``images_failed``
(those left out because their upstream failed), ``images_flagged`` (those left out
because a quality rule flagged them), ``seconds``, ``key``: a hash of the identity and
content of the members it learnt from, everything upstream and the stage's parameters
(and the rules that judged the members), by which a later run tells whether the saved
result still holds, ``images_left_out``: the images left out because they failed, and
``flagged_left_out``: those flagged, each joined by ``"; "`` (empty when none).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..files import atomic_path
from .layout import RunLayout
from .links import prune_empty, removable

__all__ = [
    "FLAGGED_LEFT_OUT",
    "GROUP",
    "GROUP_KEY",
    "GROUP_LEFT_OUT",
    "GROUP_STAGE",
    "IMAGES_FLAGGED",
    "group_results",
    "join_left_out",
    "read_groups",
    "remove_group_results",
    "split_left_out",
    "write_groups",
]

GROUP_STAGE = "stage"
GROUP = "group"
GROUP_KEY = "key"
GROUP_LEFT_OUT = "images_left_out"
FLAGGED_LEFT_OUT = "flagged_left_out"
IMAGES_FLAGGED = "images_flagged"
_LEFT_OUT_SEPARATOR = "; "
_COUNTS = ("images", "images_failed", IMAGES_FLAGGED, "seconds")
_LISTS = (GROUP_LEFT_OUT, FLAGGED_LEFT_OUT)


def read_groups(layout: RunLayout) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows of ``groups.csv`` by (stage, group), their cells as text but the counts;
    none when there is no such file."""
    try:  # every cell as written (a plate 007 stays 007 when the row is written back)
        frame = pd.read_csv(layout.groups_table, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return {}
    if not {GROUP_STAGE, GROUP, GROUP_KEY} <= set(frame.columns):
        return {}
    for column in _COUNTS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    rows = frame.to_dict("records")
    return {(str(r[GROUP_STAGE]), str(r[GROUP])): r for r in rows}


def join_left_out(fields: Iterable[str]) -> str:
    """The ``images_left_out`` cell of a group's row."""
    return _LEFT_OUT_SEPARATOR.join(fields)


def split_left_out(row: Mapping[str, Any], column: str = GROUP_LEFT_OUT) -> list[str]:
    """The images a row's group learnt without because they failed (``column``
    ``flagged_left_out``: because they were flagged); none for a row of an earlier version."""
    cell = row.get(column)
    return cell.split(_LEFT_OUT_SEPARATOR) if isinstance(cell, str) and cell else []


def write_groups(layout: RunLayout, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``groups.csv`` whole, the key columns first, then the group columns."""
    rows = list(rows)
    columns: dict[str, None] = dict.fromkeys([GROUP_STAGE, GROUP])
    for row in rows:
        columns.update(dict.fromkeys(c for c in row if c not in (*_COUNTS, GROUP_KEY, *_LISTS)))
    columns.update(dict.fromkeys([*_COUNTS, GROUP_KEY, *_LISTS]))
    frame = pd.DataFrame(rows, columns=list(columns))
    with atomic_path(layout.groups_table) as temporary:
        frame.to_csv(temporary, index=False)


def group_results(
    layout: RunLayout, stages: Collection[str], only: Collection[tuple[str, str]] | None = None
) -> list[Path]:
    """The group results ``groups.csv`` lists that a run of group stages ``stages`` could
    have written (what a fresh start deletes): ``<stage>/<group>.tif`` with ``<stage>``
    one of ``stages``, a group name as the run makes them, and no link on the way; with
    ``only``, those of these (stage, group) pairs."""
    found = []
    for stage, group in read_groups(layout):
        if only is not None and (stage, group) not in only:
            continue
        relative = f"{stage}/{group}.tif"
        if _is_group_name(group) and removable(layout, relative, stages):
            found.append(layout.group_result(stage, group))
    return found


def remove_group_results(
    layout: RunLayout, stages: Collection[str], only: Collection[tuple[str, str]] | None = None
) -> None:
    """Delete the group results of group stages ``stages`` that ``groups.csv`` lists (with
    ``only``, of those groups), and nothing else (see :func:`group_results`)."""
    for path in group_results(layout, stages, only):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                path.unlink()
                prune_empty(path.parent, layout.root)


def _is_group_name(name: str) -> bool:
    """Whether ``name`` is made as the run makes a group's name (``plan.groups``): letters,
    digits and ``.-_=,`` only (no folder)."""
    return bool(name) and all(c.isalnum() or c in ".-_=," for c in name)
