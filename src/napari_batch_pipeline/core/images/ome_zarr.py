"""Saved outputs of tiled images: OME-Zarr (NGFF 0.4) multiscale stores.

A store is a folder ``<stem>.ome.zarr`` holding levels ``0``, ``1``, ... (each 2x smaller
along Y and X than the one before, nearest-neighbour, so labels stay labels), zstd
chunks, and the NGFF ``multiscales`` metadata with the pixel size; a labels output is
also an NGFF label image (``image-label``). It is written under a temporary name and
renamed into place when complete, so a run folder never holds half a store under its
final name.

A reader opens a store as its levels, lazy zarr arrays (:func:`open_store`: its metadata
is read, never its pixels). A folder may hold links, and zarr follows them:
:func:`store_within` says whether every link of a store leads somewhere inside the run
folder, so that a crafted or damaged run folder never makes the reader open a file
elsewhere (the reader checks a TIFF output the same way, one file).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LEVELS", "OmeZarrWriter", "is_store", "open_levels", "open_store", "partial_path", "store_within"]

#: pyramid levels written by default (level 0 included)
LEVELS = 4
_PARTIAL = ".partial"


def partial_path(path: Path) -> Path:
    """Where the store at ``path`` is written until it is complete."""
    return path.with_name(path.name + _PARTIAL)


class OmeZarrWriter:
    """Write one image, box by box, into an OME-Zarr store, then its pyramid.

    Parameters
    ----------
    path : Path
        The final store (``.../<stem>.ome.zarr``); writing goes to :func:`partial_path`,
        which a previous, interrupted writer may have left (its chunks are kept).
    shape : tuple of int
        (Y, X) or (Z, Y, X).
    dtype : numpy dtype
        Level 0's dtype (a mask is written as uint8).
    chunks : tuple of int
        Chunk shape of every level.
    spacing : tuple of float, optional
        Pixel size of level 0, micrometres.
    labels : bool
        Write the NGFF ``image-label`` metadata too.
    levels : int
        Pyramid levels, level 0 included; fewer when the image gets smaller than a chunk.
    name : str
        The image's name in the metadata.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, ...],
        dtype: Any,
        chunks: tuple[int, ...],
        *,
        spacing: Sequence[float] | None = None,
        labels: bool = False,
        levels: int = LEVELS,
        name: str = "",
    ):
        import numcodecs
        import zarr

        self.path = Path(path)
        self.dtype = np.dtype(np.uint8 if np.dtype(dtype) == bool else dtype)
        self.shapes = _level_shapes(shape, chunks, levels)
        temporary = partial_path(self.path)
        fresh = not (temporary / ".zattrs").exists()
        self._group = zarr.open_group(str(temporary), mode="w" if fresh else "a", zarr_format=2)
        if fresh:
            for level, level_shape in enumerate(self.shapes):
                self._group.create_array(
                    str(level),
                    shape=level_shape,
                    chunks=tuple(min(c, n) for c, n in zip(chunks, level_shape, strict=True)),
                    dtype=self.dtype,
                    compressors=numcodecs.Zstd(level=3),
                    fill_value=0,
                    chunk_key_encoding={"name": "v2", "separator": "/"},
                )
            self._group.attrs.update(
                _metadata(name or self.path.name, len(shape), len(self.shapes), spacing, labels)
            )
        else:  # an interrupted writer's store: its chunks and dtype stand
            self.dtype = np.dtype(self._group["0"].dtype)

    def write(self, box: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` at ``box`` of level 0."""
        self._group["0"][box] = data.astype(self.dtype, copy=False)

    def finish(self) -> Path:
        """Build the pyramid from level 0, block by block, and move the store into place."""
        for level in range(1, len(self.shapes)):
            source, target = self._group[str(level - 1)], self._group[str(level)]
            for box in _blocks(target.shape, target.chunks):
                below = tuple(
                    slice(2 * s.start, 2 * s.stop) if axis >= len(box) - 2 else s
                    for axis, s in enumerate(box)
                )
                step = tuple(
                    slice(None, None, 2) if axis >= len(box) - 2 else slice(None) for axis in range(len(box))
                )
                target[box] = np.asarray(source[below])[step]
        temporary = partial_path(self.path)
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(temporary, self.path)
        return self.path


def open_levels(path: str | Path) -> list[Any]:
    """The levels of an OME-Zarr store, largest first, as lazy zarr arrays."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    datasets = group.attrs["multiscales"][0]["datasets"]
    return [group[dataset["path"]] for dataset in datasets]


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


def open_store(path: Path) -> list[Any]:
    """The levels of the OME-Zarr store at ``path``, largest first, as lazy zarr arrays.

    Reads the store's metadata only (a few small JSON files).

    Raises
    ------
    ValueError
        If the store's metadata is damaged or does not describe a multiscale image:
        no ``multiscales``, a level that is missing or not an array, levels of
        different dimensions, or other than 2 or 3 of them. The message names the store.
    """
    import zarr

    try:
        levels = open_levels(path)
    except (ValueError, LookupError, TypeError, OSError) as error:  # zarr's errors are ValueErrors
        raise ValueError(
            f"{path}: not a readable OME-Zarr store ({type(error).__name__}: {error}); "
            "delete it and run its image again to write it anew"
        ) from error
    if not levels or not all(isinstance(level, zarr.Array) for level in levels):
        raise ValueError(f"{path}: its multiscales metadata names no level, or a level that is not an array")
    dimensions = {level.ndim for level in levels}
    if len(dimensions) != 1 or levels[0].ndim not in (2, 3):
        raise ValueError(f"{path}: levels of {sorted(dimensions)} dimensions; expected (Y, X) or (Z, Y, X)")
    return levels


def _resolved(path: str) -> Path | None:
    try:
        return Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None


def _level_shapes(shape: tuple[int, ...], chunks: tuple[int, ...], levels: int) -> list[tuple[int, ...]]:
    shapes = [tuple(shape)]
    while len(shapes) < max(levels, 1):
        last = shapes[-1]
        if max(last[-2:]) <= max(chunks[-2:]):
            break  # one chunk already holds the whole plane
        shapes.append((*last[:-2], *(math.ceil(n / 2) for n in last[-2:])))
    return shapes


def _blocks(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    import itertools

    ranges = [range(0, n, c) for n, c in zip(shape, chunks, strict=True)]
    for starts in itertools.product(*ranges):
        yield tuple(slice(s, min(s + c, n)) for s, c, n in zip(starts, chunks, shape, strict=True))


def _metadata(
    name: str, ndim: int, levels: int, spacing: Sequence[float] | None, labels: bool
) -> dict[str, Any]:
    axes = [{"name": letter, "type": "space", "unit": "micrometer"} for letter in "zyx"[-ndim:]]
    base = [float(s) for s in spacing] if spacing is not None else [1.0] * ndim
    datasets = []
    for level in range(levels):
        scale = [s * (2**level if axis >= ndim - 2 else 1) for axis, s in enumerate(base)]
        datasets.append(
            {"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    metadata: dict[str, Any] = {
        "multiscales": [
            {"version": "0.4", "name": name, "axes": axes, "datasets": datasets, "type": "nearest"}
        ]
    }
    if labels:
        metadata["image-label"] = {"version": "0.4"}
    return metadata
