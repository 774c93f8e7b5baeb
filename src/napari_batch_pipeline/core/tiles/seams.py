"""Objects across tile seams: each tile labels its core alone; one join makes them whole.

A tile's :class:`TileObjects` is all the join needs of it: for each of its provisional
labels the first pixel in raster order (the *anchor*, as a flat index into the whole
image), the bounding box and the pixel count, and the labels on the faces of its core.
:func:`join` links provisional labels that touch across a seam (with the connectivity of
the labelling, diagonals through tile corners included) into connected components, and
numbers each component by the rank of its anchor: ``skimage.measure.label`` numbers
objects in the raster order of their first pixel, so the ids are exactly the whole
image's.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .grid import Tile, TileGrid

__all__ = ["Joined", "TileObjects", "join", "tile_objects"]


@dataclass(frozen=True)
class TileObjects:
    """What the join needs of one labelled tile core.

    Attributes
    ----------
    count : int
        Provisional labels 1..count.
    anchors : (count,) ndarray of int64
        Flat index (in the whole image) of each label's first pixel in raster order.
    boxes : (count, 2 * ndim) ndarray of int64
        Each label's bounding box in image coordinates: starts, then stops.
    areas : (count,) ndarray of int64
        Pixels per label.
    faces : tuple of ndarray
        For each axis, the core's first and last slice of provisional labels.
    """

    count: int
    anchors: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    faces: tuple[np.ndarray, ...]

    def to_npz(self) -> dict[str, np.ndarray]:
        arrays = {
            "count": np.array(self.count),
            "anchors": self.anchors,
            "boxes": self.boxes,
            "areas": self.areas,
        }
        arrays.update({f"face_{i}": face for i, face in enumerate(self.faces)})
        return arrays

    @classmethod
    def from_npz(cls, data: Any) -> TileObjects:
        faces = tuple(data[f"face_{i}"] for i in range(len([k for k in data if k.startswith("face_")])))
        return cls(int(data["count"]), data["anchors"], data["boxes"], data["areas"], faces)


def tile_objects(labels: np.ndarray, tile: Tile, shape: tuple[int, ...]) -> TileObjects:
    """Describe a tile core's provisional labels (numbered 1..n in raster order, as
    ``skimage.measure.label`` numbers them).

    Parameters
    ----------
    labels : ndarray of int
        The core's labels, shape ``tile.shape``.
    tile : Tile
        Where the core is.
    shape : tuple of int
        The whole image's shape.
    """
    flat = labels.ravel()
    count = int(flat.max()) if flat.size else 0
    # labels first appear in increasing order: the running maximum steps up by one at each
    running = np.maximum.accumulate(flat)
    firsts = np.flatnonzero(np.diff(running, prepend=0))
    if len(firsts) != count:
        raise ValueError("provisional labels must be numbered 1..n in raster order of their first pixel")
    local = np.unravel_index(firsts, labels.shape)
    anchors = np.ravel_multi_index(
        tuple(c + o for c, o in zip(local, tile.origin, strict=True)), shape
    ).astype(np.int64)
    boxes = np.zeros((count, 2 * labels.ndim), dtype=np.int64)
    for i, box in enumerate(ndi.find_objects(labels)):
        if box is not None:
            boxes[i] = [s.start + o for s, o in zip(box, tile.origin, strict=True)] + [
                s.stop + o for s, o in zip(box, tile.origin, strict=True)
            ]
    areas = np.bincount(flat, minlength=count + 1)[1:].astype(np.int64)
    faces: list[np.ndarray] = []
    for axis in range(labels.ndim):
        faces += [np.take(labels, 0, axis=axis).copy(), np.take(labels, -1, axis=axis).copy()]
    return TileObjects(count, anchors, boxes, areas, tuple(faces))


@dataclass(frozen=True)
class Joined:
    """The objects of the whole image, from its tiles' provisional labels.

    Attributes
    ----------
    offsets : (tiles + 1,) ndarray
        Tile ``t``'s provisional label ``k`` is node ``offsets[t] + k``.
    ids : (nodes + 1,) ndarray of int64
        Each node's final id (node 0, the background: 0).
    anchors, areas : (n,) ndarray of int64
        Per final id (index ``id - 1``): the first pixel and the pixel count.
    boxes : (n, 2 * ndim) ndarray of int64
        Per final id: the bounding box, starts then stops.
    """

    offsets: np.ndarray
    ids: np.ndarray
    anchors: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray

    @property
    def count(self) -> int:
        return len(self.anchors)

    def tile_map(self, tile: int) -> np.ndarray:
        """Provisional label -> final id, for tile ``tile`` (0 -> 0)."""
        start, stop = self.offsets[tile], self.offsets[tile + 1]
        return np.concatenate([[0], self.ids[start + 1 : stop + 1]]).astype(np.int64)


def join(records: list[TileObjects], grid: TileGrid, connectivity: int) -> Joined:
    """Join the tiles' provisional labels into the whole image's objects.

    Parameters
    ----------
    records : list of TileObjects
        One per tile of ``grid``, in tile order.
    grid : TileGrid
        The tiles.
    connectivity : int
        As in ``skimage.measure.label``: how many axes two touching pixels may differ along.

    Returns
    -------
    Joined
    """
    counts = np.array([r.count for r in records], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    nodes = int(offsets[-1])
    firsts, seconds = _seam_pairs(records, grid, offsets, connectivity)
    graph = coo_matrix((np.ones(len(firsts), dtype=np.int8), (firsts, seconds)), shape=(nodes + 1, nodes + 1))
    _, component = connected_components(graph, directed=False)
    component = component[1:]  # node 0 is the background
    anchors = np.concatenate([r.anchors for r in records]) if nodes else np.zeros(0, np.int64)
    ndim = len(grid.shape)
    boxes = np.concatenate([r.boxes for r in records]) if nodes else np.zeros((0, 2 * ndim), np.int64)
    areas = np.concatenate([r.areas for r in records]) if nodes else np.zeros(0, np.int64)
    # relabel components 0..m-1 densely, then rank them by their first pixel
    _, dense = np.unique(component, return_inverse=True)
    m = int(dense.max()) + 1 if nodes else 0
    first = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, dense, anchors)
    rank = np.empty(m, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(m)
    final = rank[dense] + 1
    starts = np.full((m, ndim), np.iinfo(np.int64).max, dtype=np.int64)
    stops = np.zeros((m, ndim), dtype=np.int64)
    np.minimum.at(starts, final - 1, boxes[:, :ndim])
    np.maximum.at(stops, final - 1, boxes[:, ndim:])
    total = np.bincount(final - 1, weights=areas, minlength=m).astype(np.int64)
    ids = np.concatenate([[0], final]).astype(np.int64)
    ordered_first = np.sort(first)
    return Joined(offsets, ids, ordered_first, total, np.concatenate([starts, stops], axis=1))


def _seam_pairs(
    records: list[TileObjects], grid: TileGrid, offsets: np.ndarray, connectivity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Node pairs that touch across a seam."""
    ndim = len(grid.shape)
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    steps = [
        d for d in itertools.product((-1, 0, 1), repeat=ndim - 1) if np.count_nonzero(d) + 1 <= connectivity
    ]
    for axis in range(ndim):
        for k in range(grid.counts[axis] - 1):
            below = _plane(records, grid, offsets, axis, k, last=True)
            above = _plane(records, grid, offsets, axis, k + 1, last=False)
            for step in steps:
                src = tuple(slice(max(0, -d), n - max(0, d)) for d, n in zip(step, below.shape, strict=True))
                dst = tuple(slice(max(0, d), n - max(0, -d)) for d, n in zip(step, below.shape, strict=True))
                a, b = below[src], above[dst]
                touching = (a > 0) & (b > 0)
                firsts.append(a[touching])
                seconds.append(b[touching])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.unique(np.stack([np.concatenate(firsts), np.concatenate(seconds)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _plane(
    records: list[TileObjects], grid: TileGrid, offsets: np.ndarray, axis: int, k: int, *, last: bool
) -> np.ndarray:
    """The seam-facing slices of the tiles at grid index ``k`` along ``axis``, as nodes,
    laid out over the whole image's other axes."""
    others = [a for a in range(len(grid.shape)) if a != axis]
    plane = np.zeros([grid.shape[a] for a in others], dtype=np.int64)
    for tile in grid:
        if tile.position[axis] != k:
            continue
        face = records[tile.index].faces[2 * axis + (1 if last else 0)].astype(np.int64)
        nodes = np.where(face > 0, face + offsets[tile.index], 0)
        plane[tuple(tile.core[a] for a in others)] = nodes
    return plane
