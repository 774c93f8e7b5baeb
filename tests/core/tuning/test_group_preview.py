"""Previewing a group stage in the tuning session: learnt from the images open, once."""

from __future__ import annotations

import numpy as np
from skimage import filters

from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.tuning.session import TuningImage, TuningSession

PIPELINE = Pipeline(
    [
        {"name": "blurred", "function": "gaussian", "params": {"sigma": 1.0}},
        {"name": "illum", "function": "illumination", "group_by": [], "params": {"smoothing": 3.0}},
        {
            "name": "flat",
            "function": "correct_illumination",
            "inputs": {"image": "input", "illumination": "illum"},
        },
        {"name": "mask", "function": "threshold"},
    ]
)


def _images(count: int) -> list[TuningImage]:
    rng = np.random.default_rng(1)
    return [TuningImage(f"image {i}", rng.uniform(100, 200, (24, 32)), f"image {i}") for i in range(count)]


def _outputs(session: TuningSession) -> dict[str, list[np.ndarray]]:
    found: dict[str, list[np.ndarray]] = {}
    for _, stage, output, _ in session.start_run():
        found.setdefault(stage, []).append(output)
    return found


def test_the_preview_learns_the_group_stage_from_the_images_open():
    session = TuningSession()
    session.set_pipeline(PIPELINE)
    assert session.pipeline() == PIPELINE  # group_by kept through the drafts
    images = _images(4)
    session.set_images(images[0])
    session.set_group_images(images)
    outputs = _outputs(session)
    blurred = [filters.gaussian(image.data, 1.0, preserve_range=True) for image in images]
    expected = filters.gaussian(np.mean(blurred, axis=0), 3.0, preserve_range=True).astype(np.float32)
    np.testing.assert_allclose(outputs["illum"][0], expected, rtol=1e-5)
    corrected = images[0].data / (expected.astype(np.float64) / np.median(expected))
    np.testing.assert_allclose(outputs["flat"][0], corrected.astype(np.float32), rtol=1e-5)


def test_a_change_downstream_reuses_the_group_result_a_change_of_images_does_not():
    session = TuningSession()
    session.set_pipeline(PIPELINE)
    images = _images(3)
    session.set_images(images[0])
    session.set_group_images(images)
    first = _outputs(session)["illum"][0]
    session.set_param(3, "method", "li")
    runs = list(session.start_run())
    assert [reused for _, stage, _, reused in runs if stage == "blurred"] == [True]
    assert next(output for _, stage, output, _ in runs if stage == "illum") is first
    session.set_group_images(images[:2])
    assert not np.array_equal(_outputs(session)["illum"][0], first)


def test_a_group_stage_added_in_the_builder_makes_one_group():
    session = TuningSession()
    session.add_stage("illumination", "illum")
    assert session.pipeline()["illum"].group_by == ()
    session.set_images(_images(1)[0])
    assert _outputs(session)["illum"][0].shape == (24, 32)  # no group images: the image alone
