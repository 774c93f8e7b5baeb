"""StageCache: a changed parameter re-runs that stage and those after it, nothing before."""

from __future__ import annotations

import numpy as np
import pytest

from napari_batch_pipeline.core.errors import StageError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.tuning.cache import StageCache


def run(cache, pipeline, image, key="image"):
    return {name: (output, reused) for name, output, reused in cache.run(pipeline, image, key)}


def test_unchanged_stages_are_reused_and_changed_ones_recomputed(pipeline, nuclei_image):
    cache = StageCache()
    first = run(cache, pipeline, nuclei_image)
    assert not any(reused for _, reused in first.values())

    again = run(cache, pipeline, nuclei_image)
    assert all(reused for _, reused in again.values())
    assert again["labels"][0] is first["labels"][0]

    changed = pipeline.with_params({"mask.method": "li"})
    after = run(cache, changed, nuclei_image)
    assert {name: reused for name, (_, reused) in after.items()} == {
        "blurred": True,
        "mask": False,
        "labels": False,
        "nuclei": False,
    }
    expected = changed.run(nuclei_image)
    np.testing.assert_array_equal(after["labels"][0], expected["labels"])
    assert len(cache) == len(changed)  # the outputs of the old configuration are forgotten


def test_images_are_kept_apart_by_key(pipeline, nuclei_image, coins):
    cache = StageCache()
    run(cache, pipeline, nuclei_image, "a")
    other = run(cache, pipeline, coins, "b")
    assert not any(reused for _, reused in other.values())
    np.testing.assert_array_equal(other["labels"][0], pipeline.run(coins)["labels"])


def test_a_superseded_run_stops_before_the_next_computed_stage(pipeline, nuclei_image):
    cache = StageCache()
    names = [name for name, _, _ in cache.run(pipeline, nuclei_image, "a", stop=lambda: True)]
    assert names == []
    run(cache, pipeline, nuclei_image, "a")
    reused = [name for name, _, _ in cache.run(pipeline, nuclei_image, "a", stop=lambda: True)]
    assert reused == pipeline.stage_names  # everything cached: nothing to stop


def test_a_failing_stage_keeps_the_outputs_before_it(user_module, nuclei_image):
    module = user_module(
        "failing_stage",
        """
        def fail(image: "napari.types.ImageData", when: float = 1.0) -> "napari.types.ImageData":
            raise RuntimeError("no luck")
        """,
    )
    pipeline = Pipeline(
        [{"name": "blurred", "function": "gaussian"}, {"name": "bad", "function": f"{module}:fail"}]
    )
    cache = StageCache()
    seen = []
    with pytest.raises(StageError, match="no luck"):
        for name, _, reused in cache.run(pipeline, nuclei_image, "a"):
            seen.append((name, reused))
    assert seen == [("blurred", False)]
    outputs = cache.run(pipeline, nuclei_image, "a")
    assert next(outputs)[2] is True  # blurred: from the cache
    with pytest.raises(StageError):
        next(outputs)
