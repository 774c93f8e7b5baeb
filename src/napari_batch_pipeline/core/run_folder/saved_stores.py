"""A tiled image's saved outputs as a reader finds them: OME-Zarr stores inside the run folder.

A whole image's saved output is one file, ``<stage>/<stem>.tif``; a tiled image's is a
folder, ``<stage>/<stem>.ome.zarr`` (:mod:`.ome_zarr` writes it), whose levels are
opened as lazy zarr arrays: opening a store reads its metadata, never its pixels.

A folder may hold links, and zarr follows them: :func:`store_within` says whether
every link of a store leads to somewhere inside the run folder, so that a crafted or
damaged run folder never makes the reader open a file elsewhere (the reader checks
the TIFF outputs the same way, one file each).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..images.sources import read_image
from .ome_zarr import open_levels

__all__ = ["is_store", "read_saved", "store_within"]

#: zarr v2's group metadata, which every store the engine writes has
_GROUP_FILES = (".zattrs", ".zgroup")


def is_store(path: Path) -> bool:
    """Whether ``path`` is an OME-Zarr store: a folder holding zarr group metadata."""
    try:
        return path.is_dir() and all((path / name).is_file() for name in _GROUP_FILES)
    except OSError:
        return False


def store_within(root: Path, store: Path) -> bool:
    """Whether ``store`` and everything in it lie inside ``root``, links resolved.

    Walks the store once (a directory listing per folder, no ``stat`` of a file that
    is no link): each link must resolve inside ``root``; a linked folder is walked
    too, once, however many links lead to it.

    Parameters
    ----------
    root : Path
        The run folder.
    store : Path
        A store in it, e.g. ``root / 'labels' / 'a.ome.zarr'``.

    Returns
    -------
    bool
        False if the store, or any link in it, leads out of ``root`` (or cannot be
        resolved, or is not there).
    """
    try:
        inside = root.resolve()
        start = store.resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    if not start.is_relative_to(inside) or not start.is_dir():
        return False
    seen = {start}
    folders = [start]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        target = _resolved(entry.path)
                        if target is None or not target.is_relative_to(inside):
                            return False
                        if target.is_dir() and target not in seen:
                            seen.add(target)
                            folders.append(target)
                    elif entry.is_dir(follow_symlinks=False):
                        folders.append(Path(entry.path))
        except OSError:
            return False
    return True


def read_saved(path: Path) -> np.ndarray | list[Any]:
    """A saved output as a viewer shows it.

    Parameters
    ----------
    path : Path
        ``<stage>/<stem>.tif`` or ``<stage>/<stem>.ome.zarr`` of a run folder (as
        ``RunResults.task_outputs`` gives it: checked to lie inside the run folder).

    Returns
    -------
    ndarray or list of zarr arrays
        The TIFF's pixels, (M, N) or (P, M, N); or the store's levels, largest first,
        lazily (nothing of the pixels is read until asked).
    """
    if is_store(path):
        return open_levels(path)
    return read_image(path)


def _resolved(path: str) -> Path | None:
    try:
        return Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
