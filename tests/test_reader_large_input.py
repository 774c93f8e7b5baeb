"""The npe2 reader on a run whose input is large (a plane of more than 4096 x 4096
pixels): the input opens as one multiscale layer read chunk by chunk, its contrast
limits from a few chunks, never the whole image; a small input opens as before."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_batch_pipeline import run_batch
from napari_batch_pipeline._reader import read_run_folder
from napari_batch_pipeline.core.images.lazy import LARGE_PLANE, is_large, open_input_pyramid
from napari_batch_pipeline.core.pipeline.model import Pipeline

PLUGIN = "napari-batch-pipeline"
SIDE = 6000
THRESHOLD = "version: 1\nstages:\n  - {name: mask, function: threshold, params: {method: otsu}}\n"


def _slide(shape: tuple[int, int] = (SIDE, SIDE)) -> np.ndarray:
    """Bright lines on a dark ground, brightest (250) in the lower right corner only."""
    image = np.full(shape, 10, np.uint8)
    image[::7] = 120
    image[:, ::5] = 60
    image[-40:, -40:] = 250
    return image


@pytest.fixture(scope="module")
def large_run(tmp_path_factory) -> Path:
    """A run over ``big.tif`` (6000 x 6000 uint8, tiled at 256, uncompressed, 0.5 um
    pixels) and ``small.tif`` (300 x 200), run whole."""
    root = tmp_path_factory.mktemp("large_input")
    images = root / "images"
    images.mkdir()
    options = {"resolution": (20000.0, 20000.0), "resolutionunit": "CENTIMETER"}  # 0.5 um
    tifffile.imwrite(images / "big.tif", _slide(), tile=(256, 256), **options)
    tifffile.imwrite(images / "small.tif", _slide((300, 200)), **options)
    report = run_batch(Pipeline.from_text(THRESHOLD), images, root / "run", executor="serial")
    assert report.exit_code == 0
    return root / "run"


class _CountedReads:
    """Bytes read through tifffile's file handles while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.bytes = 0
        read = tifffile.FileHandle.read

        def counted(handle, size=-1):
            data = read(handle, size)
            self.bytes += len(data)
            return data

        monkeypatch.setattr(tifffile.FileHandle, "read", counted)


def _layers(run: Path) -> dict[str, tuple[object, dict, str]]:
    return {meta["name"]: (data, meta, kind) for data, meta, kind in read_run_folder(str(run))}


def test_a_large_input_opens_as_one_lazy_multiscale_layer_reading_few_pixels(large_run, monkeypatch):
    reads = _CountedReads(monkeypatch)
    layers = _layers(large_run)
    levels, meta, kind = layers["run: input big.tif"]
    assert kind == "image" and meta["multiscale"] is True
    assert isinstance(levels, list) and all(isinstance(level, da.Array) for level in levels)
    assert [level.shape for level in levels] == [(6000, 6000), (3000, 3000), (1500, 1500), (750, 750)]
    assert levels[0].numblocks == (12, 12)  # the file's 256 tiles, two by two
    assert meta["scale"] == pytest.approx((0.5, 0.5))
    # opening read a few tiles for the contrast limits: under 10 % of the 36 MB of pixels
    assert 0 < reads.bytes < 0.1 * SIDE * SIDE
    low, high = meta["contrast_limits"]
    assert low == 10 and 120 <= high <= 250

    reads.bytes = 0
    corner = np.asarray(levels[0][-100:, -100:])  # chunk by chunk: one tile's worth
    np.testing.assert_array_equal(corner, _slide()[-100:, -100:])
    assert reads.bytes <= 2 * 256 * 256
    np.testing.assert_array_equal(np.asarray(levels[3][:50, :60]), _slide()[:400:8, :480:8])

    small, meta, kind = layers["run: input"]  # run whole, read as before: a stack of one
    assert kind == "image" and "multiscale" not in meta and small.shape == (1, 300, 200)
    assert meta["metadata"]["names"] == ["small.tif"]


def test_a_strided_smallest_level_is_read_once_however_often_it_is_drawn(large_run, monkeypatch):
    pyramid = open_input_pyramid(large_run.parent / "images" / "big.tif")
    assert pyramid is not None and not pyramid.own
    reads = _CountedReads(monkeypatch)
    first = np.asarray(pyramid.levels[-1])  # a thumbnail: (nearly) every tile of level 0
    assert reads.bytes >= 0.9 * SIDE * SIDE  # all but the chunks read for the contrast limits
    reads.bytes = 0
    again = np.asarray(pyramid.levels[-1][100:300])  # drawn again: its chunks were kept
    assert reads.bytes == 0
    np.testing.assert_array_equal(first, _slide()[::8, ::8])
    np.testing.assert_array_equal(again, first[100:300])


def test_a_large_volume_takes_its_contrast_limits_from_its_first_to_last_plane(tmp_path):
    volume = np.full((3, 4200, 4100), 5, np.uint8)
    volume[0, :, ::9] = 1
    volume[2, :, ::9] = 200
    tifffile.imwrite(tmp_path / "volume.tif", volume, tile=(256, 256), metadata={"axes": "ZYX"})
    pyramid = open_input_pyramid(tmp_path / "volume.tif")
    assert pyramid is not None and not pyramid.own and pyramid.contrast_limits == (1.0, 200.0)
    assert [level.shape for level in pyramid.levels][-1] == (3, 525, 513)  # Z kept, Y and X strided
    np.testing.assert_array_equal(np.asarray(pyramid.levels[-1][2]), volume[2, ::8, ::8])


def test_an_input_is_large_past_4096_by_4096_pixels(tmp_path):
    assert not is_large((4096, 4096)) and is_large((4097, 4096)) and is_large((3, 5000, 5000))
    assert LARGE_PLANE == 4096 * 4096
    tifffile.imwrite(tmp_path / "plane.tif", np.zeros((4096, 4096), np.uint8), tile=(256, 256))
    assert open_input_pyramid(tmp_path / "plane.tif") is None  # read whole, as before
    rgb = np.zeros((4200, 4100, 3), np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, tile=(256, 256), photometric="rgb")
    assert open_input_pyramid(tmp_path / "rgb.tif") is None  # several channels: as before


def test_a_pyramidal_input_shows_its_own_levels_and_reads_only_the_smallest(tmp_path, monkeypatch):
    image = _slide((4400, 4200))
    with tifffile.TiffWriter(tmp_path / "pyramid.tif", bigtiff=True) as tif:
        tif.write(image, tile=(256, 256), subifds=2)
        tif.write(image[::2, ::2], tile=(256, 256), subfiletype=1)
        tif.write(image[::4, ::4], tile=(256, 256), subfiletype=1)
    reads = _CountedReads(monkeypatch)
    pyramid = open_input_pyramid(tmp_path / "pyramid.tif")
    assert pyramid is not None and pyramid.own
    assert [level.shape for level in pyramid.levels] == [(4400, 4200), (2200, 2100), (1100, 1050)]
    assert reads.bytes < 1.5 * 1100 * 1050  # the smallest level, whole, and headers
    assert pyramid.contrast_limits == (10.0, 250.0)
    np.testing.assert_array_equal(np.asarray(pyramid.levels[1][:300, :300]), image[:600:2, :600:2])


def test_a_large_ome_zarr_input_shows_its_own_levels(tmp_path):
    from napari_batch_pipeline.core.images.ome_zarr import OmeZarrWriter

    image = _slide((4200, 4300))
    writer = OmeZarrWriter(tmp_path / "in.ome.zarr", image.shape, image.dtype, (512, 512), spacing=(0.5, 0.5))
    writer.write((slice(None), slice(None)), image)
    writer.finish()
    pyramid = open_input_pyramid(tmp_path / "in.ome.zarr")
    assert pyramid is not None and pyramid.own and len(pyramid.levels) == 4
    assert all(isinstance(level, da.Array) for level in pyramid.levels)
    np.testing.assert_array_equal(np.asarray(pyramid.levels[0][-50:, -50:]), image[-50:, -50:])
    assert pyramid.contrast_limits == (10.0, 250.0)


def test_a_large_input_shows_in_napari(large_run, make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(large_run), plugin=PLUGIN)
    layer = viewer.layers["run: input big.tif"]
    assert layer.multiscale and isinstance(layer.data[0], da.Array)
    assert tuple(layer.data[0].shape) == (SIDE, SIDE)
    assert layer.contrast_limits[0] == 10
    for other in viewer.layers:
        other.visible = other is layer
    viewer.reset_view()
    qtbot.waitUntil(lambda: layer.loaded, timeout=60_000)
    shown = np.asarray(layer._slice.image.raw)  # the chunks of the level napari chose
    assert shown.size and shown.max() == 120 and shown.min() == 10
    qtbot.wait(100)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].std() > 0  # its lines are drawn


def test_a_large_ome_zarr_input_of_a_run_opens_as_its_levels(tmp_path, monkeypatch):
    import zarr

    from napari_batch_pipeline.core.images import lazy

    pixels = _slide((400, 330))
    images = tmp_path / "images"
    images.mkdir()
    group = zarr.open_group(str(images / "slide.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(1, 1, 1, 400, 330), chunks=(1, 1, 1, 128, 128), dtype=pixels.dtype)
    group["0"][0, 0, 0] = pixels
    axes = [{"name": n, "type": t} for n, t in zip("tczyx", ["time", "channel", *["space"] * 3], strict=True)]
    scale = [{"type": "scale", "scale": [1.0, 1.0, 1.0, 0.5, 0.5]}]
    datasets = [{"path": "0", "coordinateTransformations": scale}]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    pipeline = Pipeline.from_text(THRESHOLD)
    assert run_batch(pipeline, images, tmp_path / "run", executor="serial", tile=128).exit_code == 0
    monkeypatch.setattr(lazy, "LARGE_PLANE", 10_000)  # its 400 x 330 counts as large
    levels, meta, kind = _layers(tmp_path / "run")["run: input slide.ome.zarr"]
    assert kind == "image" and meta["multiscale"] is True and meta["scale"] == pytest.approx((0.5, 0.5))
    assert len(levels) == 1 and isinstance(levels[0], da.Array) and levels[0].shape == (400, 330)
    np.testing.assert_array_equal(np.asarray(levels[0]), pixels)
