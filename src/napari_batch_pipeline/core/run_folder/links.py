"""One rule for every file a run writes or deletes: inside the run folder, never through a
link, and named by the run itself.

A run folder may have been received from someone else, or have links put in it; a run
that wrote or deleted through a link would change files outside the folder (see DESIGN,
"Run folder": nothing is ever written outside OUTPUT_DIR). So:

- :func:`linked_folder` finds a folder the run writes in that is a link: a saved stage's
  or a group stage's folder, ``intermediate/`` and the folders beneath it, ``.parts/``
  and its folders; and the files it appends to or truncates in place (the ledger,
  ``errors.log``, ``.lock``: every other file is written whole and renamed over the old
  one, which replaces a link rather than follow it). A run refuses such a path before it
  writes or deletes anything.
- :func:`removable` says whether a file a previous run's records name (the ledger's
  outputs, ``groups.csv``'s results) may be deleted: named as the run names its outputs,
  in a folder of one of the stages that wrote such files, with no link on the way;
  :func:`remove_output` deletes one such file (or a tiled image's store).
- :func:`intermediates` finds what a run keeps under ``intermediate/`` (what a fresh
  start deletes): ``intermediate/<stage>/<stage key>/<field>.npy|.csv`` of the run's
  stages and inputs, and the tiled tasks' work folders ``intermediate/tiles/<task>/``;
  no folder on the way a link, no file that is one.

Nothing here follows a link: folders are looked at with ``lstat``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path, PurePosixPath

from ..pipeline.stage_config import INPUT
from .layout import ARRAY_SUFFIX, TABLE_SUFFIX, TILE_WORK, ZARR_SUFFIX, RunLayout

__all__ = ["behind_link", "intermediates", "linked_folder", "prune_empty", "removable", "remove_output"]

#: a stage key's folder under ``intermediate/<stage>/`` (``Pipeline.stage_key``)
_STAGE_KEY = re.compile(r"[0-9a-f]{16}")
#: a tiled task's work folder under ``intermediate/tiles/`` (``RunLayout.tile_work``)
_TILE_TASK = re.compile(r"[0-9a-f]{20}")


def linked_folder(layout: RunLayout, stages: Iterable[str], written: Iterable[str]) -> Path | None:
    """The first folder the run would write in, or file it would append to, that is a
    link; None if there is none.

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
    candidates = [layout.ledger, layout.errors_log, layout.lock_file]
    candidates += [layout.stage_dir(stage) for stage in written]
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


def remove_output(layout: RunLayout, relative: str | PurePosixPath, stages: Collection[str]) -> bool:
    """Delete the output at ``relative`` (to the run folder) if :func:`removable` allows
    it: a file, or a tiled image's OME-Zarr store; folders left empty go too. Returns
    whether something was deleted."""
    if not removable(layout, relative, stages):
        return False
    target = layout.root / relative
    if target.is_file() or target.is_symlink():
        target.unlink(missing_ok=True)
    elif target.is_dir() and target.name.endswith(ZARR_SUFFIX):
        shutil.rmtree(target, ignore_errors=True)
    else:
        return False
    prune_empty(target.parent, layout.root)
    return True


def intermediates(
    layout: RunLayout, stages: Iterable[str], keep: Collection[tuple[str, str]] = ()
) -> list[Path]:
    """What a run of a pipeline with ``stages`` (its stage and input names) keeps under
    ``intermediate/``: the files ``<stage>/<stage key>/<field>.npy|.csv`` (a field may
    hold folders) and the folders ``tiles/<task>/``; those of the (stage, stage key)
    pairs in ``keep`` left out. Nothing behind a link, no link."""
    root = layout.intermediate_dir
    if root.is_symlink() or not root.is_dir():
        return []
    found = [
        Path(e.path) for e in _entries(root / TILE_WORK) if _TILE_TASK.fullmatch(e.name) and _plain_dir(e)
    ]
    for stage in dict.fromkeys(stages):
        if stage == TILE_WORK or "/" in stage or stage in ("", ".", ".."):
            continue
        for key in _entries(root / stage):
            # a loaded image's key is its name (``intermediate/input/input/``)
            if not ((_STAGE_KEY.fullmatch(key.name) or key.name == stage == INPUT) and _plain_dir(key)):
                continue
            if (stage, key.name) in keep:
                continue
            for folder, folders, files in os.walk(key.path):  # never into a linked folder
                folders[:] = [f for f in folders if not os.path.islink(os.path.join(folder, f))]
                for name in files:
                    path = Path(folder, name)
                    if path.suffix in (ARRAY_SUFFIX, TABLE_SUFFIX) and not path.is_symlink():
                        found.append(path)
    return found


def prune_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to ``root`` while they are empty."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def behind_link(path: Path, root: Path) -> bool:
    """Whether a folder between ``root`` and ``path`` is a link (deleting or writing
    ``path`` would then reach a file elsewhere)."""
    folder = path.parent
    while folder != root and root in folder.parents:
        if folder.is_symlink():
            return True
        folder = folder.parent
    return False


def _plain_dir(entry: os.DirEntry[str]) -> bool:
    return entry.is_dir(follow_symlinks=False)


def _entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    """The entries of ``folder`` (none if it is not a plain folder)."""
    if folder.is_symlink() or not folder.is_dir():
        return
    try:
        with os.scandir(folder) as entries:
            yield from list(entries)
    except OSError:
        return
