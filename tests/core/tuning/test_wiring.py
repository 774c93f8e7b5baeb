"""Stages fed data of the wrong kind, named from the pipeline and from the data."""

from __future__ import annotations

import numpy as np

from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image
from napari_batch_pipeline.core.tuning.wiring import wiring_warnings


def pipeline(*stages: dict) -> Pipeline:
    return Pipeline.from_dict({"version": 1, "stages": list(stages)})


def test_an_image_stage_feeding_labels_is_named_from_the_pipeline_alone():
    chain = pipeline(
        {"name": "blurred", "function": "gaussian"},
        {"name": "nuclei", "function": "measure", "inputs": {"intensity": "input"}},
    )
    assert wiring_warnings(chain) == [
        "nuclei: its labels 'blurred' is an image, not labels: label a mask first (threshold, then label)"
    ]


def test_an_input_image_where_a_mask_is_expected_is_named_from_its_data():
    chain = pipeline({"name": "labels", "function": "label"})
    image = nuclei_image()
    assert wiring_warnings(chain) == []  # the input's kind is not known without its data
    (warning,) = wiring_warnings(chain, {"input": image})
    assert warning.startswith("labels: its mask 'input' has more than two values, not a mask")
    assert wiring_warnings(chain, {"input": image > image.mean()}) == []
    assert wiring_warnings(chain, {"input": (image > image.mean()).astype(np.uint8) * 255}) == []


def test_a_right_chain_and_fractional_labels():
    right = pipeline(
        {"name": "mask", "function": "threshold"},
        {"name": "labels", "function": "label"},
        {"name": "nuclei", "function": "measure", "inputs": {"labels": "labels", "intensity": "input"}},
    )
    assert wiring_warnings(right, {"input": nuclei_image()}) == []
    measured = pipeline({"name": "nuclei", "function": "measure", "params": {"properties": ["area"]}})
    (warning,) = wiring_warnings(measured, {"input": np.full((8, 8), 0.5)})
    assert "has fractional values, not labels" in warning
    assert wiring_warnings(measured, {"input": np.arange(64.0).reshape(8, 8)}) == []
