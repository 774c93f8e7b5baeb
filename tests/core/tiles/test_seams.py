"""Objects that cross seams in every way join into the whole image's objects."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from skimage import measure
from skimage.draw import line

from napari_batch_pipeline.core.tiles.grid import TileGrid
from napari_batch_pipeline.core.tiles.seams import join, tile_objects


def _tiled_label(mask: np.ndarray, tile: tuple[int, ...], connectivity: int) -> np.ndarray:
    grid = TileGrid(mask.shape, tile)
    local = {t.index: measure.label(mask[t.core], connectivity=connectivity) for t in grid}
    joined = join([tile_objects(local[t.index], t, mask.shape) for t in grid], grid, connectivity)
    out = np.zeros(mask.shape, dtype=np.int64)
    for t in grid:
        out[t.core] = joined.tile_map(t.index)[local[t.index]]
    return out


def _shapes() -> dict[str, np.ndarray]:
    shapes: dict[str, np.ndarray] = {}
    mask = np.zeros((40, 40), bool)
    mask[9:11, 5:35] = True  # crosses a vertical seam along a tile's edge row
    mask[0:3, 0:3] = mask[37:, 37:] = mask[0:2, 38:] = True  # the image's corners
    shapes["edges and corners"] = mask
    mask = np.zeros((40, 40), bool)
    mask[17:23, 17:23] = True  # on a 4-tile junction (tiles of 20)
    shapes["junction"] = mask
    mask = np.zeros((40, 40), bool)
    mask[19, 19] = mask[20, 20] = True  # touching only diagonally, across the junction
    mask[19, 30] = mask[20, 29] = True  # the other diagonal, across a seam
    shapes["diagonal"] = mask
    mask = np.zeros((60, 60), bool)  # a U whose arms meet only through the far tiles
    mask[2:58, 5:8] = mask[2:58, 52:55] = mask[55:58, 5:55] = True
    shapes["U"] = mask
    mask = np.zeros((64, 64), bool)  # a square spiral through many tiles
    corners = [(2, 2), (2, 61), (61, 61), (61, 6), (6, 6), (6, 57), (57, 57), (57, 10), (10, 10), (10, 53)]
    for (r0, c0), (r1, c1) in itertools.pairwise(corners):
        rr, cc = line(r0, c0, r1, c1)
        mask[rr, cc] = True
    shapes["spiral"] = mask
    return shapes


@pytest.mark.parametrize("name", list(_shapes()))
@pytest.mark.parametrize("connectivity", [1, 2])
@pytest.mark.parametrize("tile", [(20, 20), (7, 9), (1000, 1000)])
def test_seam_cases_join_as_the_whole_image_labels(name, connectivity, tile):
    mask = _shapes()[name]
    np.testing.assert_array_equal(
        _tiled_label(mask, tile, connectivity), measure.label(mask, connectivity=connectivity)
    )


def test_diagonal_neighbours_join_only_with_full_connectivity():
    mask = _shapes()["diagonal"]
    assert _tiled_label(mask, (20, 20), 1).max() == 4
    assert _tiled_label(mask, (20, 20), 2).max() == 2


@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_3d_diagonals_through_tile_corners(connectivity):
    rng = np.random.default_rng(11)
    mask = rng.random((21, 22, 23)) > 0.75  # specks touching in every way
    np.testing.assert_array_equal(
        _tiled_label(mask, (5, 6, 7), connectivity), measure.label(mask, connectivity=connectivity)
    )
