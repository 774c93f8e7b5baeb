"""What a stage's spec says of its parameters beyond their types: a mapping of named
options (each with its type and default), and a parameter a tool writes, not a person."""

from __future__ import annotations

import pytest

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.stages import get_stage, spec_from_function, stage
from napari_batch_pipeline.core.stages.forests import FEATURE_DEFAULTS, feature_settings


def test_the_pixel_classifiers_features_are_named_options_with_the_stages_defaults() -> None:
    features = get_stage("pixel_classifier").params["features"]
    assert [option.name for option in features.options] == list(FEATURE_DEFAULTS)
    assert {option.name: option.default for option in features.options} == FEATURE_DEFAULTS
    kinds = {option.name: option.annotation for option in features.options}
    assert kinds["sigma_min"] is float and kinds["intensity"] is bool
    assert feature_settings({o.name: o.default for o in features.options}) == FEATURE_DEFAULTS
    assert not features.read_only


@pytest.mark.parametrize("name", ["pixel_classifier", "object_classifier"])
def test_a_classifiers_training_hash_is_written_by_the_builder(name: str) -> None:
    params = get_stage(name).params
    assert "builder saves" in params["training_sha256"].read_only
    assert not params["training"].read_only and not params["training_sha256"].options
    assert not any(p.read_only for key, p in params.items() if key != "training_sha256")


def _user_stage(
    image: "napari.types.ImageData",
    shape: dict = {"size": 3},  # noqa: B006
    note: str = "",
) -> "napari.types.ImageData":
    return image


def test_a_user_stage_may_say_the_same() -> None:
    marked = stage(options={"shape": {"size": int, "round": bool}}, read_only={"note": "the tool"})(
        _user_stage
    )
    params = spec_from_function(marked, "user").params
    assert [(o.name, o.annotation, o.default) for o in params["shape"].options] == [
        ("size", int, 3),
        ("round", bool, None),
    ]
    assert params["note"].read_only == "the tool"


def test_marks_on_what_is_not_a_parameter_or_not_a_mapping_are_refused() -> None:
    with pytest.raises(PipelineError, match="marks 'nothing', which is not one of its parameters"):
        spec_from_function(stage(read_only={"nothing": "x"})(_user_stage), "user")
    with pytest.raises(PipelineError, match="'note' has named options, so its default is a mapping"):
        spec_from_function(stage(options={"note": {"a": int}})(_user_stage), "user")
