"""The npe2 reader: a batch run folder opens as lazy layers with its tables."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_batch_pipeline import run_batch
from napari_batch_pipeline._reader import napari_get_reader, read_run_folder
from napari_batch_pipeline.core.synthetic import write_nuclei_folder

PLUGIN = "napari-batch-pipeline"


@pytest.fixture
def run_folder(tmp_path: Path, pipeline) -> Path:
    """A finished run of the DESIGN pipeline (labels saved) over four images, one of them broken."""
    write_nuclei_folder(tmp_path / "images", count=4)
    (tmp_path / "images" / "nuclei_05.tif").write_bytes(b"not a tiff")
    run_batch(pipeline, tmp_path / "images", tmp_path / "run", executor="serial")
    return tmp_path / "run"


def test_reader_claims_run_folders_only(run_folder, tmp_path):
    assert napari_get_reader(str(run_folder)) is read_run_folder
    assert napari_get_reader([str(run_folder)]) is read_run_folder
    assert napari_get_reader(str(tmp_path / "images")) is None
    assert napari_get_reader(str(run_folder / "images.csv")) is None
    assert napari_get_reader([str(run_folder), str(run_folder)]) is None


def test_run_folder_opens_as_lazy_stacks_with_the_tables(run_folder):
    layers = {meta["name"]: (data, meta, kind) for data, meta, kind in read_run_folder(str(run_folder))}
    assert list(layers) == ["run: input", "run: labels"]

    labels, meta, kind = layers["run: labels"]
    assert kind == "labels"
    assert isinstance(labels, da.Array) and labels.shape == (4, 256, 256)
    np.testing.assert_array_equal(
        np.asarray(labels[1]), tifffile.imread(run_folder / "labels" / "nuclei_02.tif")
    )
    assert meta["metadata"]["names"] == [f"nuclei_0{i}.tif" for i in range(1, 5)]
    images = meta["metadata"]["images"]
    assert list(images["status"]) == ["done"] * 4 + ["failed"]
    assert set(meta["metadata"]["tables"]) == {"nuclei"}
    assert len(meta["metadata"]["tables"]["nuclei"]) == images["nuclei.count"].sum()

    inputs, meta, kind = layers["run: input"]
    assert kind == "image" and inputs.shape == (4, 256, 256)
    low, high = meta["contrast_limits"]
    assert low < high


def test_outputs_of_different_shapes_open_one_layer_each(tmp_path, pipeline):
    write_nuclei_folder(tmp_path / "images", count=2)
    write_nuclei_folder(tmp_path / "images" / "big", count=1, shape=(300, 200))
    (tmp_path / "images" / "big" / "nuclei_01.tif").rename(tmp_path / "images" / "wide.tif")
    run_batch(pipeline, tmp_path / "images", tmp_path / "run", pattern="*.tif")
    names = [meta["name"] for _, meta, kind in read_run_folder(str(tmp_path / "run")) if kind == "labels"]
    assert names == ["run: labels nuclei_01.tif", "run: labels nuclei_02.tif", "run: labels wide.tif"]


def test_a_run_without_saved_outputs_or_inputs_says_so(tmp_path, pipeline_yaml):
    from napari_batch_pipeline.core.pipeline import Pipeline

    write_nuclei_folder(tmp_path / "images", count=1)
    unsaved = Pipeline.from_text(pipeline_yaml.replace("save: true", "save: false"))
    run_batch(unsaved, tmp_path / "images", tmp_path / "run")
    for path in (tmp_path / "images").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match="no saved stage outputs"):
        read_run_folder(str(tmp_path / "run"))


def test_napari_opens_a_run_folder_with_the_plugin(make_napari_viewer, run_folder):
    viewer = make_napari_viewer()
    layers = viewer.open(str(run_folder), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["run: input", "run: labels"]
    assert type(viewer.layers["run: labels"]).__name__ == "Labels"
    assert viewer.layers["run: labels"].data.shape == (4, 256, 256)
