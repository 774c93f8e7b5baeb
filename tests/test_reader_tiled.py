"""The npe2 reader on a run with tiled images: each tiled image's saved output (an OME-Zarr
store) opens as one multiscale layer whose data is the store's levels, read lazily,
with the image's objects as features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from napari_batch_pipeline import run_batch
from napari_batch_pipeline._reader import read_run_folder
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image

PLUGIN = "napari-batch-pipeline"


def _write(folder: Path, name: str, image: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / name, image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})


@pytest.fixture
def tiled_run(tmp_path: Path, pipeline_yaml: str) -> Path:
    """The DESIGN pipeline, ``blurred`` saved too, over ``big.tif`` (600 x 500, tiled at
    256) and ``small.tif`` (200 x 200, run whole); pixel size 0.5 um."""
    _write(tmp_path / "images", "big.tif", nuclei_image((600, 500), n_nuclei=40, seed=3))
    _write(tmp_path / "images", "small.tif", nuclei_image((200, 200), n_nuclei=5, seed=4))
    text = pipeline_yaml.replace("params: {sigma: 2}", "params: {sigma: 2}\n    save: true")
    report = run_batch(
        Pipeline.from_text(text), tmp_path / "images", tmp_path / "run", tile=256, executor="serial"
    )
    assert report.exit_code == 0 and (tmp_path / "run" / "labels" / "big.ome.zarr").is_dir()
    return tmp_path / "run"


@pytest.fixture(scope="module")
def large_run(tmp_path_factory) -> Path:
    """A run of one 4000 x 4000 image tiled at 1024: level 0 of its labels store holds 64 MB."""
    root = tmp_path_factory.mktemp("large")
    _write(root / "images", "large.tif", np.tile(nuclei_image((500, 500), n_nuclei=30, seed=5), (8, 8)))
    pipeline = Pipeline.from_text(
        "version: 1\nstages:\n"
        "  - {name: mask, function: threshold, params: {method: otsu}}\n"
        "  - {name: labels, function: label, save: true}\n"
        "  - {name: nuclei, function: measure, inputs: {labels: labels}, params: {properties: [area]}}\n"
    )
    assert run_batch(pipeline, root / "images", root / "run", tile=1024, executor="serial").exit_code == 0
    return root / "run"


def _layers(run: Path) -> dict[str, tuple[object, dict, str]]:
    return {meta["name"]: (data, meta, kind) for data, meta, kind in read_run_folder(str(run))}


def test_a_tiled_images_labels_are_one_multiscale_layer_with_its_objects(tiled_run):
    layers = _layers(tiled_run)
    levels, meta, kind = layers["run: labels big.tif"]
    assert kind == "labels" and meta["multiscale"] is True
    assert isinstance(levels, list) and all(isinstance(level, zarr.Array) for level in levels)
    assert [level.shape for level in levels] == [(600, 500), (300, 250), (150, 125)]
    assert meta["scale"] == pytest.approx((0.5, 0.5))
    assert meta["metadata"]["names"] == ["big.tif"] and meta["metadata"]["image"] == "big.tif"

    objects = pd.read_csv(tiled_run / "nuclei.csv")
    expected = objects[objects["image"] == "big.tif"].reset_index(drop=True)
    features = meta["features"]
    assert list(features["index"]) == list(features["label"]) == list(expected["label"]) != []
    np.testing.assert_allclose(features["area"], expected["area"])
    assert set(features["label"]) == set(np.unique(np.asarray(levels[0]))) - {0}

    small, meta, kind = layers["run: labels"]  # run whole: its TIFF, a stack of one as always
    assert kind == "labels" and "multiscale" not in meta and small.shape == (1, 200, 200)
    assert meta["metadata"]["names"] == ["small.tif"]
    assert list(meta["features"]["label"]) == list(objects[objects["image"] == "small.tif"]["label"])


def test_a_tiled_images_saved_image_stage_is_a_multiscale_image(tiled_run):
    levels, meta, kind = _layers(tiled_run)["run: blurred big.tif"]
    assert kind == "image" and meta["multiscale"] is True and "features" not in meta
    assert [level.shape for level in levels] == [(600, 500), (300, 250), (150, 125)]
    low, high = meta["contrast_limits"]
    smallest = np.asarray(levels[-1])
    assert (low, high) == (float(smallest.min()), float(smallest.max())) and low < high


def test_opening_a_large_tiled_run_reads_none_of_level_0(large_run, monkeypatch):
    read: list[tuple[tuple[int, ...], object]] = []
    original = zarr.Array.__getitem__

    def spy(self, selection):
        read.append((self.shape, selection))
        return original(self, selection)

    monkeypatch.setattr(zarr.Array, "__getitem__", spy)
    levels, meta, _ = _layers(large_run)["run: labels large.tif"]
    assert all(isinstance(level, zarr.Array) and not isinstance(level, np.ndarray) for level in levels)
    assert [level.shape for level in levels] == [(4000, 4000), (2000, 2000), (1000, 1000), (500, 500)]
    assert read == []  # labels: no contrast limits, nothing read
    assert len(meta["features"]) == pd.read_csv(large_run / "nuclei.csv").shape[0] > 1000


def test_napari_shows_a_tiled_images_labels_multiscale_with_features(make_napari_viewer, tiled_run):
    viewer = make_napari_viewer()
    viewer.open(str(tiled_run), plugin=PLUGIN)
    labels = viewer.layers["run: labels big.tif"]
    assert type(labels).__name__ == "Labels" and labels.multiscale
    assert [tuple(level.shape) for level in labels.data] == [(600, 500), (300, 250), (150, 125)]
    assert all(isinstance(level, zarr.Array) for level in labels.data)
    np.testing.assert_allclose(labels.scale, (0.5, 0.5))
    objects = pd.read_csv(tiled_run / "nuclei.csv")
    assert list(labels.features["label"]) == list(objects[objects["image"] == "big.tif"]["label"])
    assert labels.metadata["run_folder"] == str(tiled_run.resolve())
    blurred = viewer.layers["run: blurred big.tif"]
    assert type(blurred).__name__ == "Image" and blurred.multiscale


def test_napari_opens_a_large_tiled_run_without_reading_level_0_whole(make_napari_viewer, large_run, qtbot):
    pixels_read: dict[tuple[int, ...], int] = {}
    original = zarr.Array.__getitem__

    def spy(self, selection):
        data = original(self, selection)
        pixels_read[self.shape] = pixels_read.get(self.shape, 0) + int(np.size(data))
        return data

    viewer = make_napari_viewer(show=True)  # napari picks a level when it draws the canvas
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zarr.Array, "__getitem__", spy)
        viewer.open(str(large_run), plugin=PLUGIN)
        labels = viewer.layers["run: labels large.tif"]
        assert labels.multiscale and all(isinstance(level, zarr.Array) for level in labels.data)
        assert len(labels.features) > 1000
        qtbot.wait(300)
        # the whole image in view: napari reads a smaller level, none of level 0
        assert pixels_read.get((4000, 4000), 0) == 0 and sum(pixels_read.values()) > 0
        viewer.camera.center = (2000, 2000)
        viewer.camera.zoom = 4  # a few hundred pixels of the image in view: level 0, that part of it
        qtbot.waitUntil(lambda: pixels_read.get((4000, 4000), 0) > 0, timeout=10_000)
        qtbot.wait(300)
    assert labels.data_level == 0
    assert 0 < pixels_read[(4000, 4000)] < 4000 * 4000 // 4


def test_a_tiled_volume_opens_multiscale_in_y_and_x_at_its_voxel_size(make_napari_viewer, tmp_path, pipeline):
    volume = np.stack([nuclei_image((300, 280), n_nuclei=20, seed=seed) for seed in range(6)])
    (tmp_path / "images").mkdir()
    tifffile.imwrite(
        tmp_path / "images" / "vol.tif",
        volume,
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"unit": "um", "spacing": 2.0, "axes": "ZYX"},
    )
    assert (
        run_batch(pipeline, tmp_path / "images", tmp_path / "run", tile=128, executor="serial").exit_code == 0
    )
    levels, meta, kind = _layers(tmp_path / "run")["run: labels vol.tif"]
    assert kind == "labels" and meta["multiscale"] and meta["scale"] == pytest.approx((2.0, 0.5, 0.5))
    assert [level.shape for level in levels] == [(6, 300, 280), (6, 150, 140), (6, 75, 70)]

    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "run"), plugin=PLUGIN)
    labels = viewer.layers["run: labels vol.tif"]
    assert labels.multiscale and labels.ndim == 3
    objects = pd.read_csv(tmp_path / "run" / "nuclei.csv")
    assert list(labels.features["label"]) == list(objects["label"]) != []
    plane = np.asarray(labels.data[0][3])
    assert set(np.unique(plane)) - {0} <= set(labels.features["label"])
