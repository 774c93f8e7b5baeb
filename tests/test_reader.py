"""The npe2 reader: a batch run folder opens as lazy layers with its tables."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import npe2
import numpy as np
import pandas as pd
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


def test_reader_refuses_quietly_what_is_not_a_run_folder(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "pipeline.yaml").write_text("version: 1\n")  # no images.csv
    for path in (tmp_path / "missing", tmp_path / "half", "", "bad\0path", 42):
        assert napari_get_reader(path) is None  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def plugin_manager() -> npe2.PluginManager:
    """npe2's plugin manager with the installed plugins, as napari discovers them."""
    manager = npe2.PluginManager()
    manager.discover()
    manager.activate(PLUGIN)  # registers its commands, as napari does on first use
    return manager


def _offered(manager: npe2.PluginManager, path: Path) -> list[npe2.manifest.contributions.ReaderContribution]:
    """This plugin's readers that npe2 (and so napari) would try on ``path``."""
    return [r for r in manager.iter_compatible_readers([str(path)]) if r.plugin_name == PLUGIN]


def _reader_for(manager: npe2.PluginManager, reader, path: Path):
    """What napari gets when it asks ``reader`` about ``path``: a read function, or None."""
    return reader.exec(kwargs={"path": [str(path)], "stack": False, "_registry": manager.commands})


@pytest.mark.parametrize("name", ["cells.tif", "cells.TIFF", "cells.ome.tif", "cells.png", "table.csv"])
def test_npe2_never_offers_the_reader_for_an_ordinary_file(plugin_manager, tmp_path, name):
    path = tmp_path / name
    if name.endswith("csv"):
        path.write_text("image,area\na.tif,12\n")
    else:
        tifffile.imwrite(path, np.zeros((8, 8), np.uint8))
    assert _offered(plugin_manager, path) == []


def test_npe2_never_offers_the_reader_for_a_run_folders_files(plugin_manager, run_folder):
    for path in (run_folder / "images.csv", run_folder / "labels" / "nuclei_01.tif"):
        assert path.is_file()
        assert _offered(plugin_manager, path) == []


def test_npe2_reads_a_run_folder_and_refuses_an_ordinary_folder(plugin_manager, run_folder, tmp_path):
    (reader,) = _offered(plugin_manager, run_folder)
    read = _reader_for(plugin_manager, reader, run_folder)
    assert read is not None
    layers = read([str(run_folder)], stack=False)
    assert [meta["name"] for _, meta, _ in layers] == ["run: input", "run: labels"]

    # npe2 offers every folder to readers that accept folders; ours says no to a plain one
    images = tmp_path / "images"
    (reader,) = _offered(plugin_manager, images)
    assert _reader_for(plugin_manager, reader, images) is None


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


def test_opening_a_run_reads_one_image_not_every_one(run_folder, monkeypatch):
    # a run of 1,000 images opens in well under a second: headers only, and the first
    # input's pixels for the contrast limits; the rest is read when napari shows it
    from napari_batch_pipeline.core.run_folder import reader

    read: list[object] = []

    def spy(read_pixels):
        return lambda path: read.append(path) or read_pixels(path)

    monkeypatch.setattr(reader, "read_image", spy(reader.read_image))
    monkeypatch.setattr(reader, "read_tiff", spy(reader.read_tiff))
    layers = read_run_folder(str(run_folder))
    assert [data.shape[0] for data, _, _ in layers] == [4, 4]
    assert read == [run_folder.parent / "images" / "nuclei_01.tif"]


def test_outputs_of_different_shapes_open_one_layer_each(tmp_path, pipeline):
    write_nuclei_folder(tmp_path / "images", count=2)
    write_nuclei_folder(tmp_path / "images" / "big", count=1, shape=(300, 200))
    (tmp_path / "images" / "big" / "nuclei_01.tif").rename(tmp_path / "images" / "wide.tif")
    run_batch(pipeline, tmp_path / "images", tmp_path / "run", pattern="*.tif")
    names = [meta["name"] for _, meta, kind in read_run_folder(str(tmp_path / "run")) if kind == "labels"]
    assert names == ["run: labels nuclei_01.tif", "run: labels nuclei_02.tif", "run: labels wide.tif"]


def test_labels_of_one_image_carry_its_objects_as_features(tmp_path, pipeline):
    import pandas as pd
    from skimage.measure import regionprops

    write_nuclei_folder(tmp_path / "images", count=2)
    write_nuclei_folder(tmp_path / "images" / "big", count=1, shape=(300, 200))
    (tmp_path / "images" / "big" / "nuclei_01.tif").rename(tmp_path / "images" / "wide.tif")
    run_batch(pipeline, tmp_path / "images", tmp_path / "run", pattern="*.tif")
    objects = pd.read_csv(tmp_path / "run" / "nuclei.csv")
    labels = [(data, meta) for data, meta, kind in read_run_folder(str(tmp_path / "run")) if kind == "labels"]
    assert len(labels) == 3
    for data, meta in labels:
        image = meta["metadata"]["image"]
        features = meta["features"]
        assert meta["metadata"]["run_folder"] == str((tmp_path / "run").resolve())
        expected = objects[objects["image"] == image].reset_index(drop=True)
        assert list(features["index"]) == list(features["label"]) == list(expected["label"])
        assert np.allclose(features["area"], expected["area"])
        array = np.asarray(data)
        assert sorted(features["label"]) == sorted(int(r.label) for r in regionprops(array))
        assert np.allclose(sorted(features["area"]), sorted(r.area for r in regionprops(array)))


def test_a_run_without_saved_outputs_or_inputs_says_so(tmp_path, pipeline_yaml):
    from napari_batch_pipeline.core.pipeline.model import Pipeline

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


def test_a_labels_stack_opened_in_napari_has_the_objects_of_the_image_shown(make_napari_viewer, run_folder):
    viewer = make_napari_viewer()
    viewer.open(str(run_folder), plugin=PLUGIN)
    labels = viewer.layers["run: labels"]
    nuclei = pd.read_csv(run_folder / "nuclei.csv")

    for step in (0, 2):
        viewer.dims.set_current_step(0, step)
        image = labels.metadata["image"]
        expected = nuclei[nuclei["image"] == image]
        # 0 x 0 before: only the batch widget's stacks had features
        assert list(labels.features["label"]) == list(expected["label"]) != []
        assert np.allclose(labels.features["area"], expected["area"])
        assert labels.features["label"].max() == np.asarray(labels.data[step]).max()
    assert labels.metadata["image"] != nuclei["image"].iloc[0]


def test_a_run_folder_opened_a_second_time_has_features_on_its_renamed_labels(make_napari_viewer, run_folder):
    viewer = make_napari_viewer()
    viewer.open(str(run_folder), plugin=PLUGIN)
    viewer.open(str(run_folder), plugin=PLUGIN)  # napari renames the second: "run: labels [1]"
    nuclei = pd.read_csv(run_folder / "nuclei.csv")
    first, second = viewer.layers["run: labels"], viewer.layers["run: labels [1]"]
    for step in (1, 3):
        viewer.dims.set_current_step(0, step)
        for labels in (first, second):
            expected = nuclei[nuclei["image"] == labels.metadata["image"]]
            # the features followed the layer, not its name (0 x 0 on the renamed one before)
            assert list(labels.features["label"]) == list(expected["label"]) != [], labels.name
        assert second.metadata["image"] == first.metadata["image"] == sorted(nuclei["image"].unique())[step]


def test_group_results_open_as_images_with_their_pixel_size(tmp_path):
    from napari_batch_pipeline.core.pipeline.model import Pipeline
    from napari_batch_pipeline.core.synthetic import nuclei_image

    for plate in ("p1", "p2"):
        for index in range(2):
            image = nuclei_image((48, 64), n_nuclei=4, radius=5.0, seed=index)
            path = tmp_path / "images" / plate / f"{index}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, image, imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"unit": "um"})
    pipeline = Pipeline(
        [
            {"name": "illum", "function": "illumination", "group_by": ["folder"], "params": {"smoothing": 2}},
            {
                "name": "flat",
                "function": "correct_illumination",
                "inputs": {"image": "input", "illumination": "illum"},
            },
        ]
    )
    run_batch(pipeline, tmp_path / "images", tmp_path / "run", recursive=True)
    groups = {
        meta["name"]: (data, meta)
        for data, meta, kind in read_run_folder(str(tmp_path / "run"))
        if kind == "image" and "illum" in meta["name"]
    }
    assert sorted(groups) == ["run: illum p1", "run: illum p2"]
    data, meta = groups["run: illum p2"]
    np.testing.assert_array_equal(data, tifffile.imread(tmp_path / "run" / "illum" / "p2.tif"))
    assert meta["scale"] == pytest.approx((0.5, 0.5)) and meta["metadata"]["group"] == "p2"
