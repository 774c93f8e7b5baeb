"""A pixel classifier runs tiled, exactly: its features reach as far as its largest sigma's
Gaussian (and a gradient or two), so a tile with that halo classes its core as the whole
image does. Percentile scaling needs the whole image and is refused tiled."""

from __future__ import annotations

from pathlib import Path

import pytest
from skimage import filters
from tiled_images import assert_same

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import forests
from napari_batch_pipeline.core.stages.training import write_training
from napari_batch_pipeline.core.synthetic import nuclei_image, painted_strokes
from napari_batch_pipeline.core.tiles import tiled_chain


def _pipeline(folder: Path, **classifier: object) -> Pipeline:
    """pixel_classifier (mask, saved) -> label (saved) -> measure, trained on strokes
    painted on one synthetic nuclei image."""
    image = nuclei_image((160, 160), n_nuclei=20, radius=7.0, seed=1)
    blurred = filters.gaussian(image, 2, preserve_range=True)
    painted = painted_strokes(blurred > filters.threshold_otsu(blurred), seed=0)
    sha = write_training(folder / "strokes.npz", [{"image": image, "labels": painted}])
    params = {"training": str(folder / "strokes.npz"), "training_sha256": sha, "trees": 10}
    params.update({"output": "mask", "foreground": 2, "features": {"sigma_min": 1, "sigma_max": 4}})
    stages = [
        {
            "name": "nuclei_mask",
            "function": "pixel_classifier",
            "params": {**params, **classifier},
            "save": True,
        },
        {"name": "labels", "function": "label", "save": True},
        {"name": "nuclei", "function": "measure", "inputs": {"labels": "labels", "intensity": "input"}},
    ]
    return Pipeline.from_dict({"version": 1, "name": "classifier", "stages": stages})


def test_a_pixel_classifier_without_percentile_scaling_runs_tiled_as_whole(tmp_path: Path, run_both) -> None:
    forests._TRAINED.clear()
    pipeline = _pipeline(tmp_path, normalize="none")
    assert tiled_chain(pipeline).radius == int(4 * 4 + 0.5) + 3
    pipeline.train()
    image = nuclei_image((300, 260), n_nuclei=60, radius=7.0, seed=5)
    whole, tiled = run_both(pipeline, image, 64)
    assert_same(whole, tiled)
    assert len(whole["nuclei"]) > 20 and whole["nuclei_mask"].any()


def test_a_pixel_classifier_scaling_each_image_by_its_percentiles_is_refused_tiled(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="normalize: none to run it tiled"):
        tiled_chain(_pipeline(tmp_path))
    with pytest.raises(PipelineError, match="multi-channel image cannot run tiled"):
        tiled_chain(_pipeline(tmp_path, normalize="none", channel_axis=-1))


def test_a_tiled_batch_of_a_pixel_classifier_in_worker_processes_equals_the_whole_image_run(tmp_path: Path):
    import pandas as pd
    import tifffile

    from napari_batch_pipeline import run_batch

    forests._TRAINED.clear()
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "field.tif", nuclei_image((300, 260), n_nuclei=60, radius=7.0, seed=5))
    pipeline = _pipeline(tmp_path, normalize="none")
    tables = []
    for executor, tile in (("serial", "none"), ("processes", 64)):
        report = run_batch(pipeline, images, tmp_path / executor, executor=executor, workers=2, tile=tile)
        assert report.failed == 0
        tables.append(pd.read_csv(tmp_path / executor / "nuclei.csv"))
    assert (tmp_path / "processes" / "labels" / "field.ome.zarr").exists()  # it did run tiled
    pd.testing.assert_frame_equal(tables[1], tables[0], check_exact=True)
