"""Measurements of a tiled image's objects, each measured once and whole.

Each object is measured by the tile holding its anchor (its first pixel), with
``regionprops`` on a crop that holds its whole bounding box: the labels of that crop
(other objects set to 0) and the intensity image computed on it with its halo. The
crop's origin is given to ``regionprops`` as its ``offset`` (positions are then the whole
image's) and added to ``bbox`` (which ``offset`` does not shift). The rows equal those of
the measurement stage on the whole image, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import StageError
from ..stages.measure import measure_table
from .grid import Box, TileGrid
from .seams import Joined
from .stop import check_stop

__all__ = ["measure_objects"]

#: a crop may hold this many times a tile core grown by max_object on each side
_CROP_FACTOR = 4
#: copies of a crop a measurement holds (labels, intensity, regionprops' own)
_COPIES = 10


def measure_objects(
    pipeline: Any,
    stage: Any,
    image: Any,
    grid: TileGrid,
    joined: Joined,
    keep: np.ndarray,
    labels_of: Callable[[Box], np.ndarray],
    max_object: int,
    budget: int | None = None,
) -> pd.DataFrame:
    """The measurement stage ``stage``'s table over the whole image, tile by tile.

    Parameters
    ----------
    pipeline : Pipeline
    stage : StageConfig
        The ``measure`` stage.
    image : TiledImage
        Computes the intensity image on a box.
    grid : TileGrid
    joined : Joined
        The objects.
    keep : ndarray of bool
        Which final ids the labels stage keeps.
    labels_of : callable
        The final labels of the stage's labels input on a box.
    max_object : int
        The object extent crops are planned for (see :class:`.settings.TileSettings`).
    budget : int, optional
        Bytes one image may hold: a crop may take up to a tenth of it in pixels of eight
        bytes, if that is more than the crops planned for.

    Raises
    ------
    StageError
        If an object's crop is larger than the memory rule allows.
    """
    ids = np.flatnonzero(keep)
    limit = _CROP_FACTOR * math.prod(t + 2 * max_object for t in grid.tile)
    if budget is not None:
        limit = max(limit, budget // (8 * _COPIES))
    ndim = len(grid.shape)
    anchors = np.unravel_index(joined.anchors[ids - 1], grid.shape)
    owners = np.array([grid.tile_of(point) for point in zip(*anchors, strict=True)], dtype=np.int64)
    intensity = stage.inputs.get("intensity")
    parts: list[pd.DataFrame] = []
    for tile_index in np.unique(owners):
        check_stop(f"the measurements of {stage.name!r}")
        mine = ids[owners == tile_index]
        boxes = joined.boxes[mine - 1]
        box = tuple(slice(int(boxes[:, a].min()), int(boxes[:, ndim + a].max())) for a in range(ndim))
        if math.prod(s.stop - s.start for s in box) > limit:
            for one in mine:  # a large object: a crop of its own
                own = tuple(
                    slice(int(joined.boxes[one - 1, a]), int(joined.boxes[one - 1, ndim + a]))
                    for a in range(ndim)
                )
                parts.append(_measure(stage, image, labels_of, intensity, [one], own, limit))
            continue
        parts.append(_measure(stage, image, labels_of, intensity, mine, box, limit))
    if not parts:  # no object: the whole image's (empty) table
        return _empty(stage, image, intensity)
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values("label", kind="stable").reset_index(drop=True)


def _measure(
    stage: Any,
    image: Any,
    labels_of: Callable[[Box], np.ndarray],
    intensity: str | None,
    ids: Any,
    box: Box,
    limit: int,
) -> pd.DataFrame:
    size = math.prod(s.stop - s.start for s in box)
    if size > limit:
        raise StageError(
            stage.name,
            stage.function,
            f"an object's bounding box {tuple((s.start, s.stop) for s in box)} holds {size} pixels, more "
            f"than a tiled measurement may take ({limit}, from the memory budget and the tile and "
            "max-object sizes); raise one of them, or run this image whole",
        )
    labels = labels_of(box)
    labels[~np.isin(labels, ids)] = 0
    values = image.pixels(box)[intensity] if intensity else None
    origin = tuple(s.start for s in box)
    return measure_table(labels, values, offset=origin, **_params(stage))


def _empty(stage: Any, image: Any, intensity: str | None) -> pd.DataFrame:
    ndim = len(image.reader.shape)
    labels = np.zeros((1,) * ndim, dtype=np.int32)
    values = np.zeros((1,) * ndim, dtype=np.float32) if intensity else None
    return measure_table(labels, values, **_params(stage))


def _params(stage: Any) -> dict[str, Any]:
    """The stage's parameters; tiled measurements are in pixels (see :mod:`.kinds`)."""
    return {name: value for name, value in stage.params.items() if name != "units"}
