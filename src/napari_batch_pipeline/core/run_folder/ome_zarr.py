"""Saved outputs of tiled images: OME-Zarr (NGFF 0.4) multiscale stores.

A store is a folder ``<stem>.ome.zarr`` holding levels ``0``, ``1``, ... (each 2x smaller
along Y and X than the one before, nearest-neighbour, so labels stay labels), zstd
chunks, and the NGFF ``multiscales`` metadata with the pixel size; a labels output is
also an NGFF label image (``image-label``). It is written under a temporary name and
renamed into place when complete, so a run folder never holds half a store under its
final name.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LEVELS", "OmeZarrWriter", "open_levels", "partial_path"]

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
