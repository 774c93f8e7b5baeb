"""The illumination stages on their own: the out-of-core median, group stage signatures."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from skimage import filters

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import get_stage
from napari_batch_pipeline.core.stages import illumination as module
from napari_batch_pipeline.core.stages.illumination import illumination
from napari_batch_pipeline.core.stages.registry import spec_from_function


class OnDisk:
    """Images as ``.npy`` files: what the engine hands a group stage."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __iter__(self):
        raise AssertionError("the median reads the files in chunks, not image by image")


def _images(count: int, shape: tuple[int, ...] = (30, 20)) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 4000, shape).astype(np.uint16) for _ in range(count)]


@pytest.mark.parametrize("shape", [(30, 20), (3, 10, 12)])
def test_the_median_on_disk_reads_chunks_of_rows_and_equals_numpy(tmp_path, monkeypatch, shape):
    images = _images(7, shape)
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"{index}.npy")
        np.save(paths[-1], image)
    monkeypatch.setattr(module, "CHUNK_BYTES", 7 * 8 * int(np.prod(shape[1:])) * 2)  # two rows at once
    result = illumination(OnDisk(paths), statistic="median", smoothing=0)
    np.testing.assert_array_equal(
        result, np.median(np.stack(images).astype(np.float64), axis=0).astype(np.float32)
    )


def test_the_mean_streams_an_iterator_once(tmp_path):
    images = _images(5)
    seen = []

    def one_at_a_time() -> Iterable[np.ndarray]:
        for image in images:
            seen.append(len(seen))
            yield image

    result = illumination(one_at_a_time(), statistic="mean", smoothing=3)
    expected = filters.gaussian(np.stack(images).astype(np.float64).mean(axis=0), 3, preserve_range=True)
    np.testing.assert_allclose(result, expected.astype(np.float32), rtol=1e-6)
    assert seen == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_images_of_another_shape_are_refused_naming_both(statistic):
    images = [*_images(2), np.zeros((31, 20), np.uint16)]
    with pytest.raises(ValueError, match=r"image 1 is \(30, 20\), image 3 is \(31, 20\)"):
        illumination(iter(images), statistic=statistic)


def test_an_empty_group_and_a_negative_smoothing_are_refused():
    with pytest.raises(ValueError, match="at least one image"):
        illumination(iter([]))
    with pytest.raises(ValueError, match="smoothing must be 0 or more, got -1"):
        illumination(iter(_images(1)), smoothing=-1.0)


def test_the_catalogue_knows_group_stages_by_their_annotation():
    assert get_stage("illumination").group and not get_stage("correct_illumination").group

    def background(images: "Iterable[napari.types.ImageData]", size: int = 3) -> "napari.types.ImageData":
        return next(iter(images))

    spec = spec_from_function(background)
    assert spec.group and spec.data_args == {"images": "image"} and list(spec.params) == ["size"]


def test_a_group_stage_takes_one_data_argument_and_gives_an_image():
    def two(
        images: "Iterable[napari.types.ImageData]", mask: "napari.types.LabelsData"
    ) -> "napari.types.ImageData":
        return mask

    def labels(images: "Iterable[napari.types.ImageData]") -> "napari.types.LabelsData":
        return next(iter(images))

    for function in (two, labels):
        with pytest.raises(PipelineError, match=r"group stage .* takes that one data argument"):
            spec_from_function(function)


def test_smoothing_is_a_sigma_and_cellprofiler_s_filter_size_is_a_full_width_at_half_maximum():
    """A smoothing filter size copied from a CellProfiler pipeline (a FWHM) smooths as there:
    sigma = size / 2.35, not 2.35 times more."""
    images = _images(3)
    mean = np.mean(np.stack(images).astype(np.float64), axis=0)
    as_cellprofiler = illumination(iter(images), smoothing_filter_size=47.0)
    expected = filters.gaussian(mean, 47.0 / 2.35, preserve_range=True).astype(np.float32)
    np.testing.assert_array_equal(as_cellprofiler, expected)
    np.testing.assert_array_equal(as_cellprofiler, illumination(iter(images), smoothing=20.0))
    np.testing.assert_array_equal(  # the size wins over smoothing, which it replaces
        illumination(iter(images), smoothing=5.0, smoothing_filter_size=47.0), as_cellprofiler
    )
    with pytest.raises(ValueError, match="smoothing_filter_size must be 0 or more, got -2"):
        illumination(iter(images), smoothing_filter_size=-2.0)
    pipeline = Pipeline.from_text(
        "version: 1\nstages:\n  - {name: illum, function: illumination, group_by: [plate],"
        " params: {smoothing_filter_size: 47}}\n"
    )
    assert pipeline.stages[0].params["smoothing_filter_size"] == 47
