"""The batch widget shows a tiled image's saved outputs as multiscale layers of their
OME-Zarr stores, read lazily, with the image's objects as features: in the layers of the
run, and in those of a clicked row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from napari_batch_pipeline.core.images import lazy
from napari_batch_pipeline.core.images.ome_zarr import open_levels
from napari_batch_pipeline.core.synthetic import nuclei_image


@pytest.fixture
def tiled_widget(make_batch_widget, run_to_end, tmp_path):
    """A batch widget after a run in which ``big.tif`` (600 x 500) did not fit the memory
    budget, so was tiled, and ``small.tif`` (200 x 200) ran whole."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name, shape, count, seed in (("big.tif", (600, 500), 40, 3), ("small.tif", (200, 200), 5, 4)):
        image = nuclei_image(shape, n_nuclei=count, seed=seed)
        tifffile.imwrite(folder / name, image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    widget = make_batch_widget(folder)
    widget.memory_budget.value = "16M"  # big.tif's chain needs about 24 MB: tiled; small.tif's fits
    report = run_to_end(widget)
    assert report.done == 2
    assert (tmp_path / "out" / "labels" / "big.ome.zarr").is_dir()
    assert (tmp_path / "out" / "labels" / "small.tif").is_file()
    return widget


def _objects(tmp_path, image: str) -> pd.DataFrame:
    objects = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    return objects[objects["image"] == image].reset_index(drop=True)


def test_the_runs_layers_show_a_tiled_image_multiscale_with_its_objects(tiled_widget, tmp_path):
    viewer = tiled_widget.viewer
    labels = viewer.layers["out: labels big.tif"]
    assert labels.multiscale and all(isinstance(level, zarr.Array) for level in labels.data)
    assert tuple(labels.data[0].shape) == (600, 500)
    np.testing.assert_allclose(labels.scale, (0.5, 0.5))
    expected = _objects(tmp_path, "big.tif")
    assert list(labels.features["label"]) == list(expected["label"]) != []
    np.testing.assert_allclose(labels.features["area"], expected["area"])
    assert labels.metadata["image"] == "big.tif" and labels.metadata["table"] == "nuclei"
    whole = viewer.layers["out: labels"]  # small.tif: its TIFF, as before
    assert not whole.multiscale and whole.data.shape == (1, 200, 200)


def test_a_clicked_tiled_row_shows_its_store_multiscale_with_its_objects(tiled_widget, tmp_path):
    widget = tiled_widget
    table = widget.table
    row = next(r for r in range(table.rowCount()) if table.text(r, 0) == "big.tif")
    image, labels = widget.show_row(row)
    assert labels.name == "out: big.tif labels" and labels.multiscale
    assert all(isinstance(level, zarr.Array) for level in labels.data)
    stored = open_levels(tmp_path / "out" / "labels" / "big.ome.zarr")
    assert [tuple(level.shape) for level in labels.data] == [level.shape for level in stored]
    assert stored[0].shape == (600, 500) and len(stored) > 1
    np.testing.assert_allclose(labels.scale, (0.5, 0.5))
    assert list(labels.features["label"]) == list(_objects(tmp_path, "big.tif")["label"]) != []
    assert image.data.shape == (600, 500)


def test_a_clicked_well_shows_a_tiled_images_labels_multiscale(make_napari_viewer, pipeline, tmp_path):
    from napari_batch_pipeline import run_batch
    from napari_batch_pipeline._widgets.results.plate_view import well_layers
    from napari_batch_pipeline.core.run_folder.reader import RunResults

    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "P1_A01.tif", nuclei_image((600, 500), n_nuclei=40, seed=3))
    run_batch(pipeline, folder, tmp_path / "run", tile=256, executor="serial")
    viewer = make_napari_viewer()
    image, labels = well_layers(viewer, RunResults(tmp_path / "run"), [0])
    assert image.name == "run: P1_A01.tif" and not image.multiscale
    assert labels.name == "run: P1_A01.tif labels" and labels.multiscale
    assert [tuple(level.shape) for level in labels.data] == [(600, 500), (300, 250), (150, 125)]
    assert all(isinstance(level, zarr.Array) for level in labels.data)


def test_a_clicked_row_shows_a_large_input_lazily_and_a_small_one_whole(tiled_widget, tmp_path, monkeypatch):
    import dask.array as da

    monkeypatch.setattr(lazy, "LARGE_PLANE", 100_000)  # big.tif's 600 x 500 counts as large
    widget = tiled_widget
    table = widget.table
    row = next(r for r in range(table.rowCount()) if table.text(r, 0) == "big.tif")
    image = widget.show_row(row)[0]
    assert image.name == "out: big.tif" and image.multiscale
    assert isinstance(image.data[0], da.Array) and tuple(image.data[0].shape) == (600, 500)
    np.testing.assert_allclose(image.scale, (0.5, 0.5))
    np.testing.assert_array_equal(np.asarray(image.data[0]), tifffile.imread(tmp_path / "images" / "big.tif"))
    small = widget.show_row(next(r for r in range(table.rowCount()) if table.text(r, 0) == "small.tif"))[0]
    assert not small.multiscale and isinstance(small.data, np.ndarray) and small.data.shape == (200, 200)
