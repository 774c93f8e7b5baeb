"""The pipeline file's quality: section: read, checked up front, kept out of the hash."""

from __future__ import annotations

import math

import pytest

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.pipeline.quality import QualityRule

STAGES = """version: 1
stages:
  - {name: quality, function: image_quality}
  - {name: mask, function: threshold, inputs: {image: input}}
  - {name: labels, function: label}
  - name: nuclei
    function: measure
    params: {properties: [area, centroid]}
    inputs: {labels: labels, intensity: input}
"""


def load(rules: str) -> Pipeline:
    return Pipeline.from_text(STAGES + rules)


def test_rules_are_read_written_and_left_out_of_the_hash() -> None:
    pipeline = load(
        "quality:\n  - {measure: quality.focus_score, min: 25}\n"
        "  - {measure: quality.saturated_fraction, max: 0.01}\n"
        "  - {measure: nuclei.count, min: 1, max: 500}\n  - {measure: nuclei.centroid-1, max: 90}\n"
    )
    assert pipeline.quality == (
        QualityRule("quality", "focus_score", 25.0, None),
        QualityRule("quality", "saturated_fraction", None, 0.01),
        QualityRule("nuclei", "count", 1.0, 500.0),
        QualityRule("nuclei", "centroid-1", None, 90.0),
    )
    again = Pipeline.from_text(pipeline.to_yaml())
    assert again.quality == pipeline.quality
    assert pipeline.hash == load("").hash  # judging images does not change them
    assert pipeline.with_params({"mask.method": "li"}).quality == pipeline.quality
    assert pipeline.with_quality(None).quality == ()


def test_a_rule_says_how_a_value_breaks_it() -> None:
    rule = QualityRule("quality", "focus_score", 25.0, 40.0)
    assert rule.broken(30.0) is None
    assert rule.broken(25.0) is None
    assert rule.broken(12.0) == "quality.focus_score 12 < 25"
    assert rule.broken(41.5) == "quality.focus_score 41.5 > 40"
    assert rule.broken(math.nan) == "quality.focus_score missing"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("quality: {measure: quality.focus_score}", "quality: expected a list of rules"),
        ("quality:\n  - quality.focus_score", r"quality\[0\]: expected a mapping"),
        ("quality:\n  - {measure: quality.focus_score, mn: 2}", "unknown key 'mn'"),
        ("quality:\n  - {measure: focus_score, min: 2}", "expected 'stage.measurement'"),
        (
            "quality:\n  - {measure: mask.area, min: 2}",
            "'mask' is not a table stage of the pipeline; its table stages are quality, nuclei",
        ),
        (
            "quality:\n  - {measure: quality.blur, min: 2}",
            "gives no measurement 'blur'; it gives count, focus_score",
        ),
        ("quality:\n  - {measure: nuclei.perimeter, min: 2}", "gives no measurement 'perimeter'"),
        ("quality:\n  - {measure: nuclei.area}", "expected a min, a max or both"),
        ("quality:\n  - {measure: nuclei.area, min: 5, max: 1}", "min 5 is above max 1"),
        ("quality:\n  - {measure: nuclei.area, min: low}", "min: expected a finite number"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(rules: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message.replace("(", r"\(")):
        load(rules)
