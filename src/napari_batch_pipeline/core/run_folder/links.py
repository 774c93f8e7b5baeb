"""One rule for every file a run writes or deletes: inside the run folder, never through a
link, and named by the run itself.

A run folder may have been received from someone else, or have links put in it; a run
that wrote or deleted through a link would change files outside the folder (see DESIGN,
"Run folder": nothing is ever written outside OUTPUT_DIR). So:

- :func:`linked_folder` finds a folder the run writes in that is a link: a saved stage's
  or a group stage's folder, ``intermediate/`` and the folders beneath it, ``.parts/``
  and its folders. A run refuses such a folder before it writes or deletes anything.
- :func:`removable` says whether a file a previous run's records name (the ledger's
  outputs, ``groups.csv``'s results) may be deleted: named as the run names its outputs,
  in a folder of one of the stages that wrote such files, with no link on the way.

Nothing here follows a link: folders are looked at with ``lstat``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path, PurePosixPath

from .layout import RunLayout

__all__ = ["behind_link", "linked_folder", "removable"]


def linked_folder(layout: RunLayout, stages: Iterable[str], written: Iterable[str]) -> Path | None:
    """The first folder the run would write in that is a link, or None.

    Parameters
    ----------
    layout : RunLayout
        The run folder.
    stages : iterable of str
        Every stage of the pipeline, and its input names (their intermediates and table
        parts have folders).
    written : iterable of str
        The stages whose files go to ``<stage>/``: saved stages and group stages.
    """
    stages = list(stages)
    candidates = [layout.stage_dir(stage) for stage in written]
    candidates += [layout.intermediate_dir, layout.parts_dir]
    candidates += [layout.intermediate_dir / stage for stage in stages]
    candidates += [layout.parts_dir / stage for stage in stages]
    for folder in candidates:
        if folder.is_symlink():
            return folder
    for stage in stages:  # intermediate/<stage>/<stage key>/
        for entry in _entries(layout.intermediate_dir / stage):
            if entry.is_symlink():
                return Path(entry.path)
    return None


def removable(layout: RunLayout, relative: str | PurePosixPath, stages: Collection[str]) -> bool:
    """Whether the file at ``relative`` (to the run folder) may be deleted as one the run
    wrote: named ``<stage>/<name>.tif`` with ``<stage>`` one of ``stages``, and no folder
    between the run folder and the file a link."""
    if not layout.is_output(relative, stages):
        return False
    return not behind_link(layout.root / relative, layout.root)


def behind_link(path: Path, root: Path) -> bool:
    """Whether a folder between ``root`` and ``path`` is a link (deleting or writing
    ``path`` would then reach a file elsewhere)."""
    folder = path.parent
    while folder != root and root in folder.parents:
        if folder.is_symlink():
            return True
        folder = folder.parent
    return False


def _entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    """The entries of ``folder`` (none if it is not a plain folder)."""
    if folder.is_symlink() or not folder.is_dir():
        return
    try:
        with os.scandir(folder) as entries:
            yield from list(entries)
    except OSError:
        return
