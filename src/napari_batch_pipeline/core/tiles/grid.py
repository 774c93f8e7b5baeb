"""The tile grid of an image: core boxes that cover it without overlap, each with a halo.

A box is a tuple of slices, one per axis. Cores are taken in raster order (the last axis
fastest), so tile ``i`` of a grid is the ``i``-th in the order scikit-image scans pixels.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["Box", "Tile", "TileGrid", "expand", "shift", "size_of"]

Box = tuple[slice, ...]


@dataclass(frozen=True)
class Tile:
    """One tile: its place in the grid, its core box and the core grown by the halo.

    Attributes
    ----------
    index : int
        Raster position among the grid's tiles.
    position : tuple of int
        Grid coordinates, one per axis.
    core : tuple of slice
        The pixels this tile owns, in image coordinates.
    """

    index: int
    position: tuple[int, ...]
    core: Box

    @property
    def origin(self) -> tuple[int, ...]:
        return tuple(s.start for s in self.core)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.core)


@dataclass(frozen=True)
class TileGrid:
    """Core boxes of ``tile`` pixels per axis over an image of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        The image's shape, (Y, X) or (Z, Y, X).
    tile : tuple of int
        The core size along each axis; the last tile of an axis may be smaller.
    """

    shape: tuple[int, ...]
    tile: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.shape) != len(self.tile):
            raise ValueError(f"tile {self.tile} has {len(self.tile)} axes, the image {len(self.shape)}")
        if any(size < 1 for size in self.tile):
            raise ValueError(f"tile sizes must be 1 or more, got {self.tile}")

    @property
    def counts(self) -> tuple[int, ...]:
        """Tiles along each axis."""
        return tuple(math.ceil(n / t) for n, t in zip(self.shape, self.tile, strict=True))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def __iter__(self) -> Iterator[Tile]:
        for index, position in enumerate(itertools.product(*(range(c) for c in self.counts))):
            yield self.at(position, index)

    def at(self, position: Sequence[int], index: int | None = None) -> Tile:
        """The tile at grid coordinates ``position``."""
        core = tuple(
            slice(p * t, min((p + 1) * t, n)) for p, t, n in zip(position, self.tile, self.shape, strict=True)
        )
        if index is None:
            index = 0
            for p, c in zip(position, self.counts, strict=True):
                index = index * c + p
        return Tile(index, tuple(position), core)

    def overlapping(self, box: Box) -> Iterator[Tile]:
        """The tiles whose cores meet ``box``."""
        ranges = [range(s.start // t, (s.stop - 1) // t + 1) for s, t in zip(box, self.tile, strict=True)]
        for position in itertools.product(*ranges):
            yield self.at(position)

    def tile_of(self, point: Sequence[int]) -> int:
        """The index of the tile holding pixel ``point``."""
        index = 0
        for p, t, c in zip(point, self.tile, self.counts, strict=True):
            index = index * c + p // t
        return index


def expand(box: Box, halo: Sequence[int], shape: Sequence[int]) -> Box:
    """``box`` grown by ``halo`` pixels on every side, clipped to an image of ``shape``."""
    return tuple(
        slice(max(s.start - h, 0), min(s.stop + h, n)) for s, h, n in zip(box, halo, shape, strict=True)
    )


def shift(box: Box, origin: Sequence[int]) -> Box:
    """``box`` in the coordinates of a region starting at ``origin``."""
    return tuple(slice(s.start - o, s.stop - o) for s, o in zip(box, origin, strict=True))


def size_of(box: Box) -> int:
    """How many pixels ``box`` holds."""
    return math.prod(s.stop - s.start for s in box)
