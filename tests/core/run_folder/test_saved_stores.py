"""A tiled image's saved outputs read back: OME-Zarr stores found beside the TIFFs of whole
images, opened lazily as their levels, never followed out of the run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from napari_batch_pipeline import run_batch
from napari_batch_pipeline.core.images.ome_zarr import is_store, store_within
from napari_batch_pipeline.core.run_folder.lazy import SavedOutputs, load_pyramids, read_saved
from napari_batch_pipeline.core.run_folder.reader import RunResults, task_outputs
from napari_batch_pipeline.core.synthetic import nuclei_image

#: the tiled image: larger than the tile along both axes, and not a multiple of it
BIG = (600, 500)
TILE = 256


def _write_mixed(folder: Path) -> Path:
    folder.mkdir()
    for name, shape, count, seed in (("big.tif", BIG, 40, 3), ("small.tif", (200, 200), 5, 4)):
        image = nuclei_image(shape, n_nuclei=count, seed=seed)
        tifffile.imwrite(folder / name, image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    return folder


@pytest.fixture
def mixed_images(tmp_path: Path) -> Path:
    """``big.tif`` (600 x 500, tiled at 256) and ``small.tif`` (200 x 200, run whole),
    both with a pixel size of 0.5 um."""
    return _write_mixed(tmp_path / "images")


@pytest.fixture(scope="module")
def big_store(tmp_path_factory) -> Path:
    """big.tif's labels store of a tiled run, for tests that only read it (or copy it)."""
    from napari_batch_pipeline.core.pipeline.model import Pipeline

    root = tmp_path_factory.mktemp("store")
    pipeline = Pipeline.from_text(
        "version: 1\nstages:\n"
        "  - {name: mask, function: threshold, params: {method: otsu}}\n"
        "  - {name: labels, function: label, save: true}\n"
    )
    run_batch(pipeline, _write_mixed(root / "images"), root / "run", tile=TILE, pattern="big.tif")
    return root / "run" / "labels" / "big.ome.zarr"


@pytest.fixture
def tiled_run(tmp_path: Path, pipeline, mixed_images: Path) -> Path:
    """The DESIGN pipeline over ``mixed_images`` with tiles of 256: big.tif's labels are
    an OME-Zarr store, small.tif's a TIFF."""
    report = run_batch(pipeline, mixed_images, tmp_path / "run", tile=TILE, executor="serial")
    assert report.exit_code == 0
    run = tmp_path / "run"
    assert (run / "labels" / "big.ome.zarr").is_dir() and (run / "labels" / "small.tif").is_file()
    return run


def _whole(tmp_path: Path, pipeline, images: Path) -> np.ndarray:
    """big.tif's labels of the same pipeline run on the whole image."""
    run_batch(pipeline, images, tmp_path / "whole", tile="none", executor="serial", pattern="big.tif")
    return tifffile.imread(tmp_path / "whole" / "labels" / "big.tif")


def test_a_tasks_outputs_are_its_tiff_or_its_store(tiled_run, pipeline):
    results = RunResults(tiled_run)
    rows = {results.row_name(i): i for i in results.done_rows()}
    assert results.task_outputs(rows["big.tif"]) == {"labels": tiled_run / "labels" / "big.ome.zarr"}
    assert results.task_outputs(rows["small.tif"]) == {"labels": tiled_run / "labels" / "small.tif"}
    assert task_outputs(tiled_run, pipeline, "big.tif") == {"labels": tiled_run / "labels" / "big.ome.zarr"}
    assert task_outputs(tiled_run, pipeline, "small.tif") == {"labels": tiled_run / "labels" / "small.tif"}
    assert task_outputs(tiled_run, pipeline, "gone.tif") == {}


def test_a_store_reads_back_as_its_lazy_levels_equal_to_the_whole_images_labels(
    tiled_run, pipeline, mixed_images, tmp_path
):
    levels = read_saved(tiled_run / "labels" / "big.ome.zarr")
    assert all(isinstance(level, zarr.Array) for level in levels)
    assert [level.shape for level in levels] == [BIG, (300, 250), (150, 125)]
    whole = _whole(tmp_path, pipeline, mixed_images)
    np.testing.assert_array_equal(np.asarray(levels[0]), whole)
    np.testing.assert_array_equal(np.asarray(levels[1]), whole[::2, ::2])  # nearest: labels stay labels
    small = read_saved(tiled_run / "labels" / "small.tif")
    assert isinstance(small, np.ndarray) and small.shape == (200, 200)


def test_saved_outputs_hold_the_stores_apart_with_their_pixel_size(tiled_run):
    saved = RunResults(tiled_run).saved_outputs("labels")
    assert saved.names == ["small.tif"] and saved.scale_of(saved.stack) == (1.0, 0.5, 0.5)
    (pyramid,) = saved.pyramids
    assert pyramid.name == "big.tif" and pyramid.scale == (0.5, 0.5)
    assert [level.shape for level in pyramid.levels] == [BIG, (300, 250), (150, 125)]
    assert all(isinstance(level, zarr.Array) for level in pyramid.levels)
    assert saved.left_out == 0


def test_the_stores_count_against_the_cap(big_store):
    store = big_store
    stores = [(f"copy{i}", store, None) for i in range(3)]
    saved = load_pyramids(SavedOutputs("labels", "labels"), stores, 2)
    assert [p.name for p in saved.pyramids] == ["copy0", "copy1"] and saved.left_out == 1
    assert saved.pyramids[0].scale is None


def _attributes(text: str):
    return lambda store: (store / ".zattrs").write_text(text)


DAMAGE = {
    "not JSON": _attributes("{not json"),
    "no multiscales": _attributes(json.dumps({"image-label": {}})),
    "no datasets": _attributes(json.dumps({"multiscales": []})),
    "a dataset without a path": _attributes(json.dumps({"multiscales": [{"datasets": [{}]}]})),
    "a level that is the group": _attributes(json.dumps({"multiscales": [{"datasets": [{"path": ""}]}]})),
    "a missing level": lambda store: shutil.rmtree(store / "1"),
    "a level's metadata damaged": lambda store: (store / "0" / ".zarray").write_text("{}"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_store_is_refused_naming_it_and_left_out(big_store, tmp_path, damage):
    store = tmp_path / "damaged.ome.zarr"
    shutil.copytree(big_store, store)
    DAMAGE[damage](store)
    with pytest.raises(ValueError, match=r"damaged\.ome\.zarr"):
        read_saved(store)
    saved = load_pyramids(SavedOutputs("labels", "labels"), [("damaged", store, None)], 20)
    assert saved.pyramids == [] and saved.left_out == 1


def test_a_store_with_a_link_out_of_the_run_folder_is_not_read(tiled_run, tmp_path):
    results = RunResults(tiled_run)
    store = tiled_run / "labels" / "big.ome.zarr"
    assert store_within(tiled_run, store)
    chunk = next(path for path in (store / "0").rglob("*") if path.is_file())
    outside = tmp_path / "secret"
    shutil.copy(chunk, outside)
    chunk.unlink()
    chunk.symlink_to(outside)  # one chunk of level 0 read from elsewhere
    assert not store_within(tiled_run, store)
    assert RunResults(tiled_run).saved_outputs("labels").pyramids == []
    big = next(i for i in results.done_rows() if results.row_name(i) == "big.tif")
    assert results.task_outputs(big) == {}

    inside = tiled_run / "moved-chunk"
    shutil.move(outside, inside)
    chunk.unlink()
    chunk.symlink_to(inside)  # a link within the run folder is fine
    assert store_within(tiled_run, store)
    assert [p.name for p in RunResults(tiled_run).saved_outputs("labels").pyramids] == ["big.tif"]


def test_a_linked_store_or_level_is_followed_only_within_the_run_folder(tiled_run, pipeline, tmp_path):
    store = tiled_run / "labels" / "big.ome.zarr"
    elsewhere = tmp_path / "elsewhere.ome.zarr"
    shutil.move(store, elsewhere)
    store.symlink_to(elsewhere)  # the whole store
    assert is_store(store) and not store_within(tiled_run, store)
    assert task_outputs(tiled_run, pipeline, "big.tif") == {}
    assert RunResults(tiled_run).saved_outputs("labels").pyramids == []

    store.unlink()
    shutil.move(elsewhere, store)
    level = store / "1"
    shutil.move(level, tmp_path / "level1")
    level.symlink_to(tmp_path / "level1")  # one level's folder
    assert not store_within(tiled_run, store)
    (store / "loop").symlink_to(store)  # a cycle within the run folder: walked once
    level.unlink()
    shutil.move(tmp_path / "level1", level)
    assert store_within(tiled_run, store)
    assert task_outputs(tiled_run, pipeline, "big.tif") == {"labels": store}


def test_a_crafted_images_table_never_leads_to_a_store_out_of_the_run_folder(tiled_run, pipeline, tmp_path):
    shutil.copytree(tiled_run / "labels" / "big.ome.zarr", tmp_path / "secret.ome.zarr")
    table = pd.read_csv(tiled_run / "images.csv")
    big = int(table.index[table["image"] == "big.tif"][0])
    for image in ("../../secret.tif", str(tmp_path / "secret.tif")):  # labels/../../secret.ome.zarr
        table.loc[big, "image"] = image
        table.to_csv(tiled_run / "images.csv", index=False)
        results = RunResults(tiled_run)
        assert results.task_outputs(big) == {}
        assert results.saved_outputs("labels").pyramids == []
        assert task_outputs(tiled_run, pipeline, image) == {}


def test_a_store_opens_with_the_ome_zarr_reader(big_store):
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    location = parse_url(str(big_store))
    assert location is not None
    (node,) = list(Reader(location)())
    assert {type(spec) for spec in node.specs} == {Label, Multiscales}
    assert [level.shape for level in node.data] == [BIG, (300, 250), (150, 125)]
    assert node.metadata["coordinateTransformations"][0] == [{"type": "scale", "scale": [0.5, 0.5]}]
    np.testing.assert_array_equal(np.asarray(node.data[2]), np.asarray(read_saved(big_store)[2]))
