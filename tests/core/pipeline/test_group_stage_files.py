"""Pipeline files with group stages: ``group_by`` and its errors, before any image is read."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml
from skimage import filters

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline

ILLUM = {"name": "illum", "function": "illumination", "group_by": ["plate"], "params": {"smoothing": 2}}
FLAT = {
    "name": "flat",
    "function": "correct_illumination",
    "inputs": {"image": "input", "illumination": "illum"},
}


def test_a_group_stage_keeps_its_group_by_and_other_stages_their_hash():
    pipeline = Pipeline([ILLUM, FLAT])
    assert pipeline.group_stages == ["illum"] and pipeline["illum"].group_by == ("plate",)
    assert Pipeline.from_dict(pipeline.to_dict()) == pipeline
    assert "group_by" not in pipeline.to_dict()["stages"][1]
    assert pipeline.upstream("flat") == {"illum"}
    plain = Pipeline([{"name": "blurred", "function": "gaussian"}])
    assert plain.hash == Pipeline([{"name": "blurred", "function": "gaussian", "save": False}]).hash
    assert Pipeline([{**ILLUM, "group_by": "plate"}, FLAT]) == pipeline  # one column as a string


def test_one_image_through_the_chain_is_a_group_of_one():
    image = np.random.default_rng(0).uniform(100, 200, (20, 20))
    outputs = Pipeline([ILLUM, FLAT]).run(image)
    function = filters.gaussian(image, 2, preserve_range=True).astype(np.float32)
    np.testing.assert_allclose(outputs["illum"], function, rtol=1e-6)
    given = np.ones((20, 20), np.float32)
    outputs = Pipeline([ILLUM, FLAT]).run(image, given={"illum": given})
    np.testing.assert_allclose(outputs["flat"], image.astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (
            [{"name": "b", "function": "gaussian", "group_by": ["plate"]}],
            r"stage 'b', group_by: gaussian takes one image",
        ),
        ([{**ILLUM, "group_by": [1]}, FLAT], r"stage 'illum', group_by: expected a list of column names"),
        (
            [{**ILLUM, "save": True}, FLAT],
            r"stage 'illum', save: a group stage's result is saved once per group",
        ),
        ([FLAT, ILLUM], r"stage 'flat', inputs.illumination: refers to 'illum', which comes later"),
        (
            [ILLUM, {**ILLUM, "name": "again", "inputs": {"images": "illum"}}],
            r"stage 'again', inputs: a group stage cannot take the output of another group stage \('illum'\)",
        ),
    ],
    ids=["not a group stage", "not names", "saved", "used before", "group of a group"],
)
def test_group_stage_mistakes_are_named_when_the_pipeline_loads(stages, message):
    stages = [{k: v for k, v in s.items() if v is not None} for s in stages]
    with pytest.raises(PipelineError, match=message):
        Pipeline(stages)


def test_a_recorded_group_stage_of_a_module_not_imported_stays_a_group_stage(tmp_path):
    from napari_batch_pipeline.core.pipeline.recorded import load_recorded

    recorded = Pipeline([ILLUM, FLAT]).to_dict()
    recorded["stages"][0]["function"] = "somewhere_not_imported:background"
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(recorded))
    pipeline = load_recorded(tmp_path / "pipeline.yaml")
    assert pipeline.group_stages == ["illum"] and pipeline["illum"].group_by == ("plate",)
    assert "somewhere_not_imported" not in sys.modules


def test_a_group_stage_without_group_by_groups_by_folder():
    """DESIGN: ``group_by`` defaults to ``folder`` (one group in a run of one folder)."""
    pipeline = Pipeline([{k: v for k, v in ILLUM.items() if k != "group_by"}, FLAT])
    assert pipeline["illum"].group_by == ("folder",)
    assert Pipeline.from_text(pipeline.to_yaml()) == pipeline
