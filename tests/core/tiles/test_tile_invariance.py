"""A tiled run gives exactly the whole image's labels (same ids) and tables, for any tile."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import filters
from tiled_images import PROPERTIES_3D, assert_same, blobs, chain_pipeline

from napari_batch_pipeline.core.tiles.grid import TileGrid
from napari_batch_pipeline.core.tiles.thresholds import Histogram, ValueRange


@pytest.mark.parametrize(("tile", "threads"), [(128, 1), (256, 1), (384, 1), (128, 3)])
def test_2d_labels_and_tables_equal_the_whole_image(run_both, tile, threads):
    image = blobs((701, 653))  # not a multiple of any tile
    whole, tiled = run_both(chain_pipeline(), image, tile, threads=threads)
    assert whole["labels"].max() > 80
    assert_same(whole, tiled)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_each_connectivity_with_small_objects_removed(run_both, connectivity):
    image = blobs((500, 430), seed=3, sigma=2.5)
    pipeline = chain_pipeline(connectivity=connectivity, min_size=40)
    whole, tiled = run_both(pipeline, image, 64)
    assert (whole["labels"] > 0).sum() > (whole["kept"] > 0).sum() > 0  # some objects removed
    assert_same(whole, tiled)


@pytest.mark.parametrize("tile", [16, 24])
def test_3d_boxes(run_both, tile):
    image = blobs((37, 90, 80), seed=5, sigma=1.5)
    whole, tiled = run_both(chain_pipeline(sigma=0.7, properties=PROPERTIES_3D, connectivity=3), image, tile)
    assert whole["labels"].max() > 8
    assert_same(whole, tiled)


@pytest.mark.parametrize("method", ["otsu", "yen", "isodata", "minimum"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.uint8])
def test_thresholds_from_tiles_equal_scikit_image(method, dtype):
    rng = np.random.default_rng(7)
    two_peaks = np.concatenate([rng.normal(60, 10, 40000), rng.normal(170, 15, 30000)])
    image = np.clip(two_peaks, 0, 255).reshape(350, 200).astype(dtype)
    grid = TileGrid(image.shape, (64, 48))
    span = ValueRange()
    for tile in grid:
        span.add(image[tile.core])
    histogram = Histogram(span.low, span.high, image.dtype)
    for tile in grid:
        histogram.add(image[tile.core])
    expected = getattr(filters, f"threshold_{method}")(image)
    assert histogram.threshold(method) == expected
    assert np.array_equal(image > histogram.threshold(method), image > expected)


def test_a_uniform_image_thresholds_as_scikit_image_does():
    image = np.full((100, 90), 7, dtype=np.uint16)
    span = ValueRange()
    span.add(image[:50])
    span.add(image[50:])
    histogram = Histogram(span.low, span.high, image.dtype)
    histogram.add(image)
    assert histogram.threshold("otsu") == filters.threshold_otsu(image)


@pytest.mark.slow
@pytest.mark.parametrize("tile", [1024, 768])
def test_a_6000_by_5000_image_equals_the_scikit_image_chain_exactly(run_both, tile):
    """The issue's measure of done: same ids and tables as the whole-image chain."""
    from napari_batch_pipeline.core.demo import slide_image

    image = slide_image((6000, 5000), seed=3)
    pipeline = chain_pipeline(properties=["area", "bbox", "centroid", "intensity_mean", "eccentricity"])
    whole, tiled = run_both(pipeline, image, tile)
    assert whole["labels"].max() > 3000
    assert_same(whole, tiled)
