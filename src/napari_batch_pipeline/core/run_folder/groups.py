"""``groups.csv``: one row per group stage and group, and the group results it lists.

Columns: ``stage``, ``group`` (the result's name: ``<stage>/<group>.tif``), the group's
``group_by`` columns, ``images`` (the images its statistic took), ``images_failed``
(those left out because their upstream failed), ``seconds``, and ``key``: a hash of the
members' identity and content, everything upstream and the stage's parameters, by which
a later run tells whether the saved result still holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..files import atomic_path
from .layout import RunLayout

__all__ = [
    "GROUP",
    "GROUP_KEY",
    "GROUP_STAGE",
    "group_results",
    "read_groups",
    "remove_group_results",
    "write_groups",
]

GROUP_STAGE = "stage"
GROUP = "group"
GROUP_KEY = "key"
_COUNTS = ("images", "images_failed", "seconds")


def read_groups(layout: RunLayout) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows of ``groups.csv`` by (stage, group); none when there is no such file."""
    try:
        frame = pd.read_csv(layout.groups_table, dtype={GROUP_STAGE: str, GROUP: str, GROUP_KEY: str})
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return {}
    if not {GROUP_STAGE, GROUP, GROUP_KEY} <= set(frame.columns):
        return {}
    rows = frame.to_dict("records")
    return {(str(r[GROUP_STAGE]), str(r[GROUP])): r for r in rows}


def write_groups(layout: RunLayout, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``groups.csv`` whole, the key columns first, then the group columns."""
    rows = list(rows)
    columns: dict[str, None] = dict.fromkeys([GROUP_STAGE, GROUP])
    for row in rows:
        columns.update(dict.fromkeys(c for c in row if c not in (*_COUNTS, GROUP_KEY)))
    columns.update(dict.fromkeys([*_COUNTS, GROUP_KEY]))
    frame = pd.DataFrame(rows, columns=list(columns))
    with atomic_path(layout.groups_table) as temporary:
        frame.to_csv(temporary, index=False)


def group_results(layout: RunLayout) -> list[Path]:
    """The group results ``groups.csv`` lists (what a fresh start deletes)."""
    found = []
    for stage, group in read_groups(layout):
        relative = f"{stage}/{group}.tif"
        if layout.is_output(relative, [stage]):
            found.append(layout.group_result(stage, group))
    return found


def remove_group_results(layout: RunLayout) -> None:
    """Delete the group results ``groups.csv`` lists, and nothing else."""
    for path in group_results(layout):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                path.unlink()
