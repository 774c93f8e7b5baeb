"""Tiled runs through the engine: every executor, the memory budget, resume, refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from tiled_images import blobs, chain_pipeline

from napari_batch_pipeline import run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.images.lazy import RegionReader
from napari_batch_pipeline.core.images.ome_zarr import open_levels
from napari_batch_pipeline.core.tiles import TileSettings, run_tiled, tiled_chain
from napari_batch_pipeline.core.tiles import run as tiled_run

VARYING = ["seconds"]


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "tiled.tif", blobs((520, 470), seed=1), tile=(128, 128))  # a tiled TIFF
    tifffile.imwrite(images / "strips.tif", blobs((300, 610), seed=2))  # in strips
    return images


def _tables(out):
    images = pd.read_csv(out / "images.csv").drop(columns=VARYING, errors="ignore")
    return images, pd.read_csv(out / "nuclei.csv")


@pytest.fixture
def whole_run(folder, tmp_path):
    out = tmp_path / "whole"
    run_batch(
        chain_pipeline(properties=["area", "bbox", "centroid", "intensity_mean"]),
        folder,
        out,
        executor="serial",
        tile="none",
    )
    return out


@pytest.mark.parametrize("executor", ["serial", "threads", "processes", "dask"])
def test_every_executor_gives_the_whole_image_answer(folder, whole_run, tmp_path, executor):
    out = tmp_path / executor
    report = run_batch(
        chain_pipeline(properties=["area", "bbox", "centroid", "intensity_mean"]),
        folder,
        out,
        executor=executor,
        workers=2,
        tile=128,
    )
    assert report.failed == 0
    for tiled, whole in zip(_tables(out), _tables(whole_run), strict=True):
        pd.testing.assert_frame_equal(tiled, whole, check_exact=True)
    for name in ("tiled", "strips"):
        levels = open_levels(out / "labels" / f"{name}.ome.zarr")
        expected = tifffile.imread(whole_run / "labels" / f"{name}.tif")
        np.testing.assert_array_equal(np.asarray(levels[0]), expected)
        np.testing.assert_array_equal(
            np.asarray(levels[1]), expected[::2, ::2]
        )  # nearest: labels stay labels
        assert not (out / "labels" / f"{name}.tif").exists()
    assert json.loads((out / "run.json").read_text())["tiling"]["tile"] == 128
    assert not (out / "intermediate").exists()  # the tiles' records go once the image is done


def test_auto_tiles_only_an_image_that_does_not_fit_the_budget(folder, tmp_path):
    pipeline = chain_pipeline(properties=["area"])
    roomy = run_batch(pipeline, folder, tmp_path / "roomy", executor="serial")
    tight = run_batch(pipeline, folder, tmp_path / "tight", executor="serial", memory_budget=8_000_000)
    assert roomy.failed == tight.failed == 0
    assert sorted(p.name for p in (tmp_path / "roomy" / "labels").iterdir()) == ["strips.tif", "tiled.tif"]
    assert sorted(p.name for p in (tmp_path / "tight" / "labels").iterdir()) == [
        "strips.ome.zarr",
        "tiled.ome.zarr",
    ]
    pd.testing.assert_frame_equal(*(pd.read_csv(tmp_path / n / "nuclei.csv") for n in ("roomy", "tight")))


def test_an_interrupted_image_resumes_at_its_next_tile(tmp_path, monkeypatch):
    image = blobs((400, 380), seed=4)
    pipeline = chain_pipeline()
    settings = TileSettings(tile=64)
    core = settings.core_for(image.shape, image.dtype)
    work, outputs = tmp_path / "work", {"labels": tmp_path / "labels.ome.zarr"}

    class Stop(Exception):
        pass

    def stop_after_ten(step, done, total):
        if step == "tiles" and done == 10:
            raise Stop

    with pytest.raises(Stop):
        run_tiled(
            pipeline,
            tiled_chain(pipeline),
            RegionReader(image, None),
            settings,
            core,
            work=work,
            outputs=outputs,
            progress=stop_after_ten,
        )
    assert len(list(work.glob("tile_*.npz"))) == 10
    labelled = []
    original = tiled_run.tile_objects
    monkeypatch.setattr(
        tiled_run,
        "tile_objects",
        lambda labels, tile, shape: labelled.append(tile.index) or original(labels, tile, shape),
    )
    tables = run_tiled(
        pipeline, tiled_chain(pipeline), RegionReader(image, None), settings, core, work=work, outputs=outputs
    )
    assert labelled == list(range(10, 42))  # finished tiles were not labelled again
    whole = pipeline.run(image)
    np.testing.assert_array_equal(np.asarray(open_levels(outputs["labels"])[0]), whole["labels"])
    pd.testing.assert_frame_equal(tables["nuclei"], whole["nuclei"], check_exact=True)
    assert not work.exists()


@pytest.mark.parametrize(
    ("options", "pipeline", "words"),
    [
        ({"tile": 128}, chain_pipeline(threshold="li"), "threshold method 'li' cannot be computed exactly"),
        ({"tile": 128, "halo": 3}, chain_pipeline(), "need a halo of 8 or more"),
        ({"tile": 128, "strategy": "horizontal"}, chain_pipeline(), "choose the vertical strategy"),
        ({"tile": 4}, chain_pipeline(), "tile: expected 16 pixels or more"),
        ({"tile": "big"}, chain_pipeline(), "tile: expected a size in pixels, auto or none"),
    ],
)
def test_what_cannot_run_tiled_is_refused_before_anything_runs(folder, tmp_path, options, pipeline, words):
    with pytest.raises(PipelineError, match=words):
        run_batch(pipeline, folder, tmp_path / "out", executor="serial", **options)
    assert not (tmp_path / "out" / "images.csv").exists()


def test_an_image_auto_tiles_but_cannot_fails_alone_with_the_reason(folder, tmp_path):
    report = run_batch(
        chain_pipeline(threshold="li"), folder, tmp_path / "out", executor="serial", memory_budget=8_000_000
    )
    assert report.failed == 2
    errors = pd.read_csv(tmp_path / "out" / "images.csv")["error"]
    assert errors.str.contains("cannot be computed exactly tile by tile").all()


def test_lazy_reader_reads_regions_of_tiled_and_strip_tiffs(folder):
    from napari_batch_pipeline.core.images.lazy import open_region_reader
    from napari_batch_pipeline.core.images.sources import Source

    for name in ("tiled.tif", "strips.tif"):
        pixels = tifffile.imread(folder / name)
        with open_region_reader(Source(folder / name, name)) as reader:
            assert reader.shape == pixels.shape and reader.dtype == pixels.dtype
            box = (slice(37, 211), slice(5, 299))
            np.testing.assert_array_equal(reader.read(box), pixels[box])


def test_an_object_too_large_for_the_memory_rule_fails_its_image_with_a_message(tmp_path):
    from napari_batch_pipeline.core.errors import StageError

    image = np.zeros((200, 200), dtype=np.uint16)
    image[10:190, 10:190] = 1000  # one object across every tile
    pipeline = chain_pipeline(properties=["area"])
    settings = TileSettings(tile=32, max_object=0, budget=100_000)
    core = settings.core_for(image.shape, image.dtype)
    with pytest.raises(StageError, match=r"an object's bounding box .* holds \d+ pixels, more than a tiled"):
        run_tiled(
            pipeline,
            tiled_chain(pipeline),
            RegionReader(image, None),
            settings,
            core,
            work=tmp_path / "w",
            outputs={},
        )
    roomy = TileSettings(tile=32, max_object=0)  # the default budget lets it be measured whole
    tables = run_tiled(
        pipeline,
        tiled_chain(pipeline),
        RegionReader(image, None),
        roomy,
        core,
        work=tmp_path / "w2",
        outputs={},
    )
    pd.testing.assert_frame_equal(tables["nuclei"], pipeline.run(image)["nuclei"], check_exact=True)


def test_an_ome_zarr_input_runs_tiled_region_by_region(tmp_path):
    import zarr

    pixels = blobs((400, 330), seed=6)
    images = tmp_path / "zarr_in"
    images.mkdir()
    group = zarr.open_group(str(images / "slide.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(1, 1, 1, *pixels.shape), chunks=(1, 1, 1, 128, 128), dtype=pixels.dtype)
    group["0"][0, 0, 0] = pixels
    axes = [
        {"name": n, "type": t}
        for n, t in zip("tczyx", ["time", "channel", "space", "space", "space"], strict=True)
    ]
    scale = [{"type": "scale", "scale": [1.0, 1.0, 1.0, 0.5, 0.5]}]
    group.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]
    tiffs = tmp_path / "tiff_in"
    tiffs.mkdir()
    tifffile.imwrite(tiffs / "slide.tif", pixels)
    pipeline = chain_pipeline(properties=["area", "centroid", "intensity_mean"])
    assert run_batch(pipeline, images, tmp_path / "tiled", executor="serial", tile=128).failed == 0
    assert run_batch(pipeline, tiffs, tmp_path / "whole", executor="serial", tile="none").failed == 0
    measured = ["label", "area", "centroid-0", "centroid-1", "intensity_mean"]
    tiled = pd.read_csv(tmp_path / "tiled" / "nuclei.csv")
    assert tiled["pixel_size_x"].eq(0.5).all()  # the store's scale is the pixel size
    pd.testing.assert_frame_equal(
        tiled[measured], pd.read_csv(tmp_path / "whole" / "nuclei.csv")[measured], check_exact=True
    )
    store = zarr.open_group(str(tmp_path / "tiled" / "labels" / "slide.ome.zarr"), mode="r")
    assert store.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.5, 0.5]


def test_a_tiled_run_never_reads_its_tiff_whole(folder, tmp_path, monkeypatch):
    from napari_batch_pipeline.core.images import lazy

    def whole(*args, **kwargs):
        raise AssertionError("the image was read whole")

    monkeypatch.setattr(lazy, "read_field", whole)
    report = run_batch(
        chain_pipeline(properties=["area"]), folder, tmp_path / "out", executor="threads", tile=128
    )
    assert report.failed == 0, pd.read_csv(tmp_path / "out" / "images.csv")["error"].tolist()


def test_the_estimate_of_a_tiled_image_measures_one_tile(folder, monkeypatch):
    import sys

    from napari_batch_pipeline.core.images import lazy
    from napari_batch_pipeline.core.plan import plan_batch

    estimating = sys.modules["napari_batch_pipeline.core.plan.estimate"]  # the package's name is a function

    pipeline = chain_pipeline(properties=["area"])
    whole = plan_batch(pipeline, folder, executor="serial", pattern="tiled.tif", tile="none").estimate()

    def never(*args, **kwargs):
        raise AssertionError("the image was read whole")

    monkeypatch.setattr(estimating, "read_field", never)
    monkeypatch.setattr(lazy, "read_field", never)
    tiled = plan_batch(pipeline, folder, executor="serial", pattern="tiled.tif", tile=128).estimate()
    assert tiled.peak_bytes_per_task < whole.peak_bytes_per_task / 4  # a tile of 128 of a 520 x 470 image
    assert tiled.seconds > 0


USER_STAGES = """
from scipy import ndimage as ndi

from napari_batch_pipeline import stage


@stage(radius=lambda params: params["size"] // 2)
def box_mean(image: "napari.types.ImageData", size: int = 5) -> "napari.types.ImageData":
    return ndi.uniform_filter(image.astype("float32"), size)


def plain_mean(image: "napari.types.ImageData", size: int = 5) -> "napari.types.ImageData":
    return ndi.uniform_filter(image.astype("float32"), size)
"""


@pytest.fixture
def user_stages(tmp_path, monkeypatch):
    """A module of user stages on the path; the catalogue forgets them afterwards (loading
    a pipeline registers the functions it names)."""
    from napari_batch_pipeline.core.stages import STAGES

    before = set(STAGES)
    (tmp_path / "tiled_user_stages.py").write_text(USER_STAGES)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in set(STAGES) - before:
        del STAGES[name]


def test_a_users_stage_runs_tiled_when_it_declares_its_reach(user_stages, run_both):
    from napari_batch_pipeline.core.pipeline.model import Pipeline

    def pipeline(function):
        return Pipeline.from_dict(
            {
                "version": 1,
                "name": "user",
                "stages": [
                    {"name": "smooth", "function": f"tiled_user_stages:{function}", "params": {"size": 9}},
                    {"name": "mask", "function": "threshold", "params": {"method": "otsu"}},
                    {"name": "labels", "function": "label", "save": True},
                    {
                        "name": "nuclei",
                        "function": "measure",
                        "inputs": {"labels": "labels", "intensity": "smooth"},
                    },
                ],
            }
        )

    assert tiled_chain(pipeline("box_mean")).radius == 4
    whole, tiled = run_both(pipeline("box_mean"), blobs((300, 260), seed=8), 64)
    np.testing.assert_array_equal(tiled["labels"], whole["labels"])
    pd.testing.assert_frame_equal(tiled["nuclei"], whole["nuclei"], check_exact=True)
    with pytest.raises(
        PipelineError, match=r"declares how far it reaches: decorate it with @stage\(radius=N\)"
    ):
        tiled_chain(pipeline("plain_mean"))


@pytest.mark.parametrize("executor", ["threads", "serial"])
def test_cancel_stops_a_tiled_image_at_its_next_tile_and_the_resume_completes(tmp_path, executor):
    import threading
    import time

    from napari_batch_pipeline.core.batch import BatchRun

    images = tmp_path / "slide"
    images.mkdir()
    tifffile.imwrite(images / "slide.tif", blobs((900, 800), seed=9), tile=(128, 128))
    pipeline = chain_pipeline(properties=["area", "centroid"])
    out = tmp_path / "out"
    batch = BatchRun(pipeline, images, out, executor=executor, tile=64)
    work = out / "intermediate" / "tiles"

    def cancel_after_some_tiles() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(work.glob("*/tile_*.npz"))) < 5:
            time.sleep(0.005)
        batch.cancel()

    watcher = threading.Thread(target=cancel_after_some_tiles, daemon=True)
    watcher.start()
    report = list(batch.events())[-1].report
    watcher.join()
    assert report.cancelled and report.done == 0 and report.failed == 0
    finished = len(list(work.glob("*/tile_*.npz")))
    assert 5 <= finished < 182  # stopped mid-image (13 x 14 tiles), its tiles kept
    assert report.results.provenance["status"] == "cancelled"

    resumed = run_batch(pipeline, images, out, executor=executor, tile=64)
    assert resumed.exit_code == 0 and resumed.done == 1
    whole = pipeline.run(tifffile.imread(images / "slide.tif"))
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "nuclei.csv")[["label", "area", "centroid-0", "centroid-1"]],
        whole["nuclei"][["label", "area", "centroid-0", "centroid-1"]],
        check_exact=True,
    )
