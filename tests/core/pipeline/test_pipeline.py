"""The pipeline model: loading, validation, identity, round trips and running one image."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from skimage import filters, measure, segmentation

from napari_batch_pipeline.core.errors import PipelineError, StageError
from napari_batch_pipeline.core.pipeline.model import INPUT, VERSION, Pipeline, StageConfig
from napari_batch_pipeline.core.stages import STAGES


def by_hand(image: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """The DESIGN example written with scikit-image alone."""
    blurred = filters.gaussian(image, sigma=2, preserve_range=True)
    mask = blurred > filters.threshold_otsu(blurred)
    labels = measure.label(mask, connectivity=2)
    table = measure.regionprops_table(
        labels, intensity_image=image, properties=["label", "area", "intensity_mean"]
    )
    return labels, pd.DataFrame(table)


def assert_one_clean_error(excinfo: pytest.ExceptionInfo[PipelineError]) -> PipelineError:
    """One PipelineError of its own: no library exception chained under it."""
    error = excinfo.value
    assert type(error) is PipelineError
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


# -- the DESIGN example ----------------------------------------------------------------------


def test_design_example_loads_with_defaults_filled_in(pipeline: Pipeline) -> None:
    assert pipeline.name == "nuclei"
    assert pipeline.stage_names == ["blurred", "mask", "labels", "nuclei"]
    assert [s.function for s in pipeline] == ["gaussian", "threshold", "label", "measure"]
    assert pipeline["blurred"].params == {"sigma": 2.0}
    assert pipeline["mask"].params == {"method": "otsu", "block_size": 35, "offset": 0.0}
    assert pipeline["labels"].params == {"connectivity": 2}
    assert pipeline["nuclei"].params == {"properties": ["area", "intensity_mean"], "units": "pixels"}
    assert pipeline["blurred"].inputs == {"image": INPUT}
    assert pipeline["mask"].inputs == {"image": "blurred"}
    assert pipeline["labels"].inputs == {"mask": "mask"}
    assert pipeline["nuclei"].inputs == {"labels": "labels", "intensity": INPUT}
    assert [s.save for s in pipeline] == [False, False, True, False]
    assert pipeline.saved_stages == ["labels"]
    assert pipeline.table_stages == ["nuclei"]
    assert [s.returns for s in pipeline] == ["image", "mask", "labels", "table"]
    assert len(pipeline) == 4


@pytest.mark.parametrize("image_name", ["coins", "nuclei_image"])
def test_design_example_runs_like_scikit_image_by_hand(
    pipeline: Pipeline, image_name: str, request: pytest.FixtureRequest
) -> None:
    image = request.getfixturevalue(image_name)
    outputs = pipeline.run(image)
    labels, table = by_hand(image)
    assert list(outputs) == ["blurred", "mask", "labels", "nuclei"]
    np.testing.assert_array_equal(outputs["labels"], labels)
    assert labels.max() > 10
    pd.testing.assert_frame_equal(outputs["nuclei"], table)
    np.testing.assert_allclose(
        outputs["blurred"], filters.gaussian(image, sigma=2, preserve_range=True), atol=1e-3
    )


def test_run_does_not_modify_the_image(pipeline: Pipeline, coins: np.ndarray) -> None:
    original = coins.copy()
    pipeline.run(coins)
    np.testing.assert_array_equal(coins, original)


def test_run_until_and_on_stage(pipeline: Pipeline, coins: np.ndarray) -> None:
    seen: list[tuple[str, Any]] = []
    outputs = pipeline.run(coins, until="mask", on_stage=lambda name, out: seen.append((name, out)))
    assert list(outputs) == ["blurred", "mask"]
    assert [name for name, _ in seen] == ["blurred", "mask"]
    assert seen[1][1] is outputs["mask"]


def test_run_stage_takes_inputs_from_available(pipeline: Pipeline, coins: np.ndarray) -> None:
    mask = coins > 100
    labels = pipeline.run_stage("labels", {INPUT: coins, "mask": mask})
    np.testing.assert_array_equal(labels, measure.label(mask, connectivity=2))


def test_from_yaml_equals_from_text(pipeline_file: Path, pipeline_yaml: str) -> None:
    assert Pipeline.from_yaml(pipeline_file) == Pipeline.from_text(pipeline_yaml)
    assert Pipeline.from_yaml(str(pipeline_file)) == Pipeline.from_text(pipeline_yaml)


def test_from_dict_and_constructor(pipeline_yaml: str, pipeline: Pipeline) -> None:
    data = yaml.safe_load(pipeline_yaml)
    assert Pipeline.from_dict(data) == pipeline
    assert Pipeline(data["stages"], name="nuclei") == pipeline
    assert Pipeline(pipeline.stages, name="nuclei") == pipeline


# -- round trip and identity -----------------------------------------------------------------


def test_to_yaml_round_trips(pipeline: Pipeline) -> None:
    text = pipeline.to_yaml()
    again = Pipeline.from_text(text)
    assert again == pipeline
    assert again.to_dict() == pipeline.to_dict()
    assert again.to_yaml() == text
    assert again.hash == pipeline.hash
    assert yaml.safe_load(text)["version"] == VERSION


def test_to_dict_is_the_complete_file(pipeline: Pipeline) -> None:
    data = pipeline.to_dict()
    assert list(data) == ["version", "name", "stages"]
    assert data["stages"][1] == {
        "name": "mask",
        "function": "threshold",
        "params": {"method": "otsu", "block_size": 35, "offset": 0.0},
        "inputs": {"image": "blurred"},
        "save": False,
    }


def test_save_writes_a_file_that_reloads_equal(pipeline: Pipeline, tmp_path: Path) -> None:
    target = tmp_path / "out" / "saved.yaml"
    written = pipeline.save(target)
    assert Path(written) == target
    assert sorted(p.name for p in target.parent.iterdir()) == ["saved.yaml"]
    assert Pipeline.from_yaml(target) == pipeline
    assert target.read_text(encoding="utf-8") == pipeline.to_yaml()
    pipeline.with_params({"blurred.sigma": 5}).save(target)  # overwrite in place
    assert Pipeline.from_yaml(target)["blurred"].params == {"sigma": 5.0}


def test_hash_is_stable(pipeline: Pipeline, pipeline_yaml: str) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", pipeline.hash)
    assert pipeline.hash == Pipeline.from_text(pipeline_yaml).hash
    reordered = pipeline_yaml.replace(
        "params: {method: otsu}", "params: {offset: 0, block_size: 35, method: otsu}"
    )
    assert Pipeline.from_text(reordered).hash == pipeline.hash  # explicit defaults, any order


def test_hash_ignores_the_name_but_not_the_params(pipeline: Pipeline, pipeline_yaml: str) -> None:
    renamed = Pipeline.from_text(pipeline_yaml.replace("name: nuclei\n", "name: other\n", 1))
    assert renamed.name == "other"
    assert renamed.hash == pipeline.hash
    assert renamed != pipeline  # equality is of the whole file
    changed = pipeline.with_params({"blurred.sigma": 3})
    assert changed.hash != pipeline.hash
    assert pipeline.with_params({"nuclei.properties": ["area"]}).hash != pipeline.hash
    assert pipeline.with_params({"blurred.sigma": 2}).hash == pipeline.hash


def test_stage_key_follows_upstream_changes_only(pipeline: Pipeline, pipeline_yaml: str) -> None:
    changed = pipeline.with_params({"mask.method": "li"})
    assert changed.stage_key("blurred") == pipeline.stage_key("blurred")
    for name in ("mask", "labels", "nuclei"):
        assert changed.stage_key(name) != pipeline.stage_key(name)
    keys = {pipeline.stage_key(name) for name in pipeline.stage_names}
    assert len(keys) == 4
    # renaming a stage (and its references) does not change what it computes
    renamed = Pipeline.from_text(
        pipeline_yaml.replace("name: blurred", "name: smooth").replace(
            "function: threshold", "function: threshold\n    inputs: {image: smooth}"
        )
    )
    assert renamed.stage_key("smooth") == pipeline.stage_key("blurred")
    assert renamed.stage_key("labels") == pipeline.stage_key("labels")


# -- input wiring ----------------------------------------------------------------------------

WIRING = """\
version: 1
stages:
  - name: blurred
    function: gaussian
  - name: mask
    function: threshold
  - name: seeds
    function: label
    inputs: {mask: mask}
  - name: raw_mask
    function: threshold
    inputs: {image: input}
  - name: cells
    function: watershed
    inputs: {image: blurred, markers: seeds, mask: raw_mask}
  - name: grown
    function: expand_labels
    params: {distance: 3}
"""


def test_inputs_default_to_previous_or_name_input_or_an_earlier_stage() -> None:
    pipeline = Pipeline.from_text(WIRING)
    assert pipeline["blurred"].inputs == {"image": INPUT}
    assert pipeline["mask"].inputs == {"image": "blurred"}
    assert pipeline["raw_mask"].inputs == {"image": INPUT}
    assert pipeline["cells"].inputs == {"image": "blurred", "markers": "seeds", "mask": "raw_mask"}
    assert pipeline["grown"].inputs == {"labels": "cells"}


def test_inputs_are_wired_when_running(coins: np.ndarray) -> None:
    outputs = Pipeline.from_text(WIRING).run(coins)
    blurred = filters.gaussian(coins, sigma=2, preserve_range=True).astype(np.float32)
    mask = blurred > filters.threshold_otsu(blurred)
    seeds = measure.label(mask, connectivity=2)
    raw_mask = coins > filters.threshold_otsu(coins)
    cells = segmentation.watershed(-blurred, seeds, mask=raw_mask)
    np.testing.assert_array_equal(outputs["raw_mask"], raw_mask)
    np.testing.assert_array_equal(outputs["cells"], cells)
    np.testing.assert_array_equal(outputs["grown"], segmentation.expand_labels(cells, 3))


def test_optional_input_stays_unconnected() -> None:
    pipeline = Pipeline.from_text(WIRING.replace(", mask: raw_mask", ""))
    assert pipeline["cells"].inputs == {"image": "blurred", "markers": "seeds"}


# -- with_params -----------------------------------------------------------------------------


def test_with_params_returns_a_validated_copy(pipeline: Pipeline, coins: np.ndarray) -> None:
    changed = pipeline.with_params({"blurred.sigma": 1, "mask.method": "li"})
    assert changed["blurred"].params == {"sigma": 1.0}
    assert changed["mask"].params["method"] == "li"
    assert pipeline["blurred"].params == {"sigma": 2.0}  # the original is untouched
    assert changed.name == pipeline.name
    blurred = filters.gaussian(coins, sigma=1, preserve_range=True).astype(np.float32)
    np.testing.assert_array_equal(
        changed.run(coins, until="mask")["mask"], blurred > filters.threshold_li(blurred)
    )


@pytest.mark.parametrize(
    ("overrides", "stage", "key", "message"),
    [
        ({"blurred.sigma": "big"}, "blurred", "params.sigma", "expected a number, got 'big'"),
        ({"mask.method": "magic"}, "mask", "params.method", "expected one of 'otsu'"),
        ({"blurred.radius": 3}, "blurred", "params.radius", "its parameters are: sigma"),
        ({"nope.sigma": 3}, None, None, "'nope.sigma': expected 'stage.param'"),
        ({"blurred": 3}, None, None, "expected 'stage.param'"),
    ],
)
def test_with_params_validates(
    pipeline: Pipeline, overrides: dict[str, Any], stage: str | None, key: str | None, message: str
) -> None:
    with pytest.raises(PipelineError) as excinfo:
        pipeline.with_params(overrides)
    error = assert_one_clean_error(excinfo)
    assert (error.stage, error.key) == (stage, key)
    assert message in str(error)


# -- invalid files ---------------------------------------------------------------------------

DESIGN = "DESIGN"  # a bad file made from the DESIGN example by a replacement


def _stage(name: str, function: str, extra: str = "") -> str:
    return f"  - name: {name}\n    function: {function}\n{extra}"


def _file(*stages: str) -> str:
    return "version: 1\nstages:\n" + "".join(stages)


# id: (text or (old, new) replacement in the DESIGN example, stage, key, message fragments)
BAD_FILES: dict[str, tuple[Any, str | None, str | None, list[str]]] = {
    "yaml_syntax": (
        ("    function: threshold\n", "    function: threshold\n   params: [oops\n"),
        None,
        None,
        ["invalid YAML", "line 9"],
    ),
    "yaml_unclosed": ("version: 1\nstages: [\n", None, None, ["invalid YAML", "line 3"]),
    "unknown_function": (
        ("function: gaussian", "function: gausian"),
        "blurred",
        "function",
        ["unknown function 'gausian'", "did you mean 'gaussian'?"],
    ),
    "unknown_parameter": (
        ("{sigma: 2}", "{sigma: 2, sigmaa: 3}"),
        "blurred",
        "params.sigmaa",
        ["unknown parameter of gaussian", "its parameters are: sigma"],
    ),
    "wrong_type": (
        ("{sigma: 2}", "{sigma: two}"),
        "blurred",
        "params.sigma",
        ["expected a number, got 'two' (str)"],
    ),
    "wrong_type_bool": (
        ("{sigma: 2}", "{sigma: yes}"),
        "blurred",
        "params.sigma",
        ["expected a number, got True"],
    ),
    "wrong_type_float_for_int": (
        ("    save: true", "    params: {connectivity: 1.5}\n    save: true"),
        "labels",
        "params.connectivity",
        ["expected a whole number, got 1.5"],
    ),
    "wrong_choice": (
        ("{method: otsu}", "{method: magic}"),
        "mask",
        "params.method",
        ["expected one of 'otsu', 'li', 'yen', 'triangle', 'mean', 'isodata', 'minimum', 'local'"],
    ),
    "wrong_list_item": (
        ("[area, intensity_mean]", "[area, 3]"),
        "nuclei",
        "params.properties",
        ["expected a list, each item a string"],
    ),
    "params_not_a_mapping": (
        ("{sigma: 2}", "[2]"),
        "blurred",
        "params",
        ["expected a mapping of parameter names to values"],
    ),
    "forward_reference": (
        ("{sigma: 2}", "{sigma: 2}\n    inputs: {image: labels}"),
        "blurred",
        "inputs.image",
        ["refers to 'labels', which comes later in the pipeline", "expected 'input'"],
    ),
    "self_reference": (
        ("{method: otsu}", "{method: otsu}\n    inputs: {image: mask}"),
        "mask",
        "inputs.image",
        ["refers to 'mask', which is this stage itself"],
    ),
    "missing_input": (
        ("labels: labels, intensity", "labels: segmentation, intensity"),
        "nuclei",
        "inputs.labels",
        ["refers to 'segmentation', which does not exist", "blurred, mask, labels"],
    ),
    "unknown_data_argument": (
        ("intensity: input}", "intensity: input, image: input}"),
        "nuclei",
        "inputs.image",
        ["measure has no data argument 'image'", "labels, intensity"],
    ),
    "table_as_input": (
        _file(
            _stage("labels", "label"),
            _stage("table", "measure", "    params: {properties: [area]}\n"),
            _stage("more", "label"),
        ),
        "more",
        "inputs.mask",
        ["'table' gives a table"],
    ),
    "missing_required_data": (
        _file(_stage("blurred", "gaussian"), _stage("cells", "watershed")),
        "cells",
        "inputs.markers",
        ["watershed needs labels for 'markers'", "inputs: {markers: <stage name>}"],
    ),
    "duplicate_names": (
        ("name: mask", "name: blurred"),
        "blurred",
        "name",
        ["duplicate stage name"],
    ),
    "reserved_name": (("name: mask", "name: input"), "input", "name", ["not 'input'"]),
    "bad_name": (("name: mask", "name: 'my mask'"), "my mask", "name", ["letters, digits"]),
    "missing_name": (("  - name: mask\n", "  -\n"), "#2", "name", ["got None"]),
    "missing_function": (
        ("    function: threshold\n", ""),
        "mask",
        "function",
        ["expected the name of a stage function, got None"],
    ),
    "save_not_bool": (("save: true", "save: sometimes"), "labels", "save", ["true or false"]),
    "unsupported_version": (
        ("version: 1", "version: 2"),
        None,
        None,
        ["version: expected 1, got 2", "unsupported"],
    ),
    "version_as_text": (("version: 1", "version: '1'"), None, None, ["version: expected 1"]),
    "version_true": (("version: 1", "version: true"), None, None, ["version: expected 1"]),
    "missing_version": (("version: 1\n", ""), None, None, ["version: expected 1", "missing"]),
    "empty_stages": ("version: 1\nstages: []\n", None, None, ["stages: expected a non-empty"]),
    "no_stages": ("version: 1\nname: x\n", None, None, ["stages: expected a non-empty"]),
    "stages_not_a_list": (
        "version: 1\nstages: {a: gaussian}\n",
        None,
        None,
        ["stages: expected a non-empty list"],
    ),
    "stage_not_a_mapping": (
        "version: 1\nstages:\n  - gaussian\n",
        None,
        None,
        ["stages[0]: expected a mapping with name and function"],
    ),
    "empty_file": ("", None, None, ["expected a mapping with keys version, name, stages"]),
    "not_a_mapping": ("- 1\n- 2\n", None, None, ["expected a mapping", "got list"]),
    "unknown_top_level_key": (
        ("name: nuclei\n", "name: nuclei\nstage: []\n"),
        None,
        None,
        ["unknown key 'stage'", "expected channels, name, quality, screen, stages, version"],
    ),
    "unknown_stage_key": (
        ("save: true", "saved: true"),
        "labels",
        "saved",
        ["unknown key", "expected function, group_by, inputs, name, params, save"],
    ),
    "bad_pipeline_name": (
        ("name: nuclei", "name: ''"),
        None,
        None,
        ["name: expected a non-empty"],
    ),
}


def _bad_text(spec: Any, design: str) -> str:
    if isinstance(spec, tuple):
        old, new = spec
        assert old in design, old
        return design.replace(old, new, 1)
    return spec


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_invalid_file_raises_one_clear_error(
    case: str, pipeline_yaml: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, stage, key, fragments = BAD_FILES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(_bad_text(text, pipeline_yaml), encoding="utf-8")
    called: list[str] = []
    for name, spec in list(STAGES.items()):
        recorder = replace(spec, function=lambda *a, _n=name, **k: called.append(_n))
        monkeypatch.setitem(STAGES, name, recorder)
    with pytest.raises(PipelineError) as excinfo:
        Pipeline.from_yaml(path)
    error = assert_one_clean_error(excinfo)
    message = str(error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert (error.stage, error.key) == (stage, key)
    if stage is not None:
        assert message.startswith(f"stage {stage!r}, {key}: ")
    assert called == []  # nothing ran


def test_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nstages:\n  - name: a\n    function: [gaussian\n")
    with pytest.raises(PipelineError) as excinfo:
        Pipeline.from_yaml(path)
    assert re.match(rf"{re.escape(str(path))}, line \d+, column \d+: invalid YAML: ", str(excinfo.value))


def test_same_errors_from_text(pipeline_yaml: str) -> None:
    text = _bad_text(BAD_FILES["unknown_parameter"][0], pipeline_yaml)
    with pytest.raises(PipelineError, match=r"stage 'blurred', params.sigmaa: unknown parameter"):
        Pipeline.from_text(text)


def test_missing_file_is_a_pipeline_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="does not exist"):
        Pipeline.from_yaml(tmp_path / "nope.yaml")


def test_first_problem_is_reported(pipeline_yaml: str) -> None:
    text = pipeline_yaml.replace("{sigma: 2}", "{sigma: x}").replace("method: otsu", "method: y")
    with pytest.raises(PipelineError) as excinfo:
        Pipeline.from_text(text)
    assert excinfo.value.stage == "blurred"


# -- hostile files ---------------------------------------------------------------------------

HOSTILE = [
    "version: 1\nstages: !!python/object/apply:os.system ['touch {marker}']\n",
    "version: 1\nstages:\n  - name: a\n    function: gaussian\n"
    "    params: {{sigma: !!python/object/apply:os.system ['touch {marker}']}}\n",
    "version: 1\nstages: !!python/object/apply:subprocess.call [[touch, '{marker}']]\n",
    "version: 1\nstages: !!python/object/new:os.system ['touch {marker}']\n",
    "version: 1\nstages: !!python/name:builtins.eval ''\n",
    "version: 1\nstages:\n  - name: a\n    function: !!python/name:os.system ''\n",
    "version: 1\nstages: !!python/module:os ''\n",
    "version: 1\nname: !!python/object:argparse.Namespace {{a: 1}}\nstages: []\n",
    "version: 1\nstages: !!binary aGVsbG8=\n",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_python_tags_are_refused_and_nothing_runs(template: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.yaml"
    path.write_text(template.format(marker=marker), encoding="utf-8")
    with pytest.raises(PipelineError) as excinfo:
        Pipeline.from_yaml(path)
    error = assert_one_clean_error(excinfo)
    assert not marker.exists()
    if "!!python" in template:
        assert "refused tag" in str(error)
        assert re.search(r"tag:yaml.org,2002:python/\w+", str(error))
        assert "line " in str(error)


@pytest.mark.skipif(sys.platform == "win32", reason="uses the POSIX touch command")
def test_hostile_payload_is_live(tmp_path: Path) -> None:
    """The payload really runs under an unsafe loader: the refusal test means something."""
    marker = tmp_path / "pwned"
    yaml.unsafe_load(HOSTILE[0].format(marker=marker))
    assert marker.exists()


@pytest.mark.parametrize(
    "function",
    ["os:system", "builtins:eval", "builtins:exec", "subprocess:run", "pickle:loads"],
)
def test_functions_without_napari_annotations_are_refused(
    function: str, tmp_path: Path, coins: np.ndarray
) -> None:
    marker = tmp_path / "pwned"
    text = _file(_stage("a", f"'{function}'", f"    params: {{command: 'touch {marker}'}}\n"))
    before = dict(STAGES)
    with pytest.raises(PipelineError) as excinfo:
        Pipeline.from_text(text)
    error = assert_one_clean_error(excinfo)
    assert (error.stage, error.key) == ("a", "function")
    assert f"{function} is not a stage" in str(error)
    assert "napari type" in str(error)
    assert before == STAGES
    assert not marker.exists()


# -- running: stage failures and output kinds ------------------------------------------------

BROKEN_STAGES = '''
import numpy as np


def explode(image: "napari.types.ImageData", when: int = 0) -> "napari.types.ImageData":
    """Raise."""
    raise RuntimeError("the detector is on fire")


def as_list(image: "napari.types.ImageData") -> "napari.types.ImageData":
    """Return a list instead of an array."""
    return image.tolist()


def float_labels(image: "napari.types.ImageData") -> "napari.types.LabelsData":
    """Return floats where labels are expected."""
    return image.astype(float)


def not_a_table(labels: "napari.types.LabelsData") -> "pandas.DataFrame":
    """Return a list where a table is expected."""
    return [1, 2, 3]


def dict_table(labels: "napari.types.LabelsData") -> "pandas.DataFrame":
    """Return a mapping of columns."""
    return {"label": [1, 2], "area": [10, 20]}
'''


def test_stage_raising_gives_stage_error(coins: np.ndarray) -> None:
    pipeline = Pipeline.from_text(
        _file(
            _stage("mask", "threshold"),
            _stage("labels", "label", "    params: {connectivity: 3}\n"),
        )
    )
    with pytest.raises(StageError) as excinfo:
        pipeline.run(coins)
    error = excinfo.value
    assert error.stage == "labels"
    assert error.function == "label"
    assert str(error).startswith("stage 'labels' (label) failed: ValueError: ")
    assert "onnectivity" in str(error)
    assert isinstance(error.__cause__, ValueError)


def test_user_stage_raising_gives_stage_error(user_module, coins: np.ndarray) -> None:
    module = user_module("broken_stages", BROKEN_STAGES)
    pipeline = Pipeline.from_text(_file(_stage("boom", f"'{module}:explode'")))
    with pytest.raises(StageError, match=r"stage 'boom' .*RuntimeError: the detector is on fire"):
        pipeline.run(coins)


@pytest.mark.parametrize(
    ("function", "data_stage", "message"),
    [
        ("as_list", None, "expected an array, got list"),
        ("float_labels", None, "expected integer labels or a mask, got dtype float64"),
        ("not_a_table", "label", "expected a table, got list"),
    ],
)
def test_wrong_output_kind_gives_stage_error(
    user_module, coins: np.ndarray, function: str, data_stage: str | None, message: str
) -> None:
    module = user_module("kind_stages", BROKEN_STAGES)
    stages = [_stage("mask", "threshold"), _stage("first", data_stage)] if data_stage else []
    pipeline = Pipeline.from_text(_file(*stages, _stage("wrong", f"'{module}:{function}'")))
    with pytest.raises(StageError) as excinfo:
        pipeline.run(coins)
    assert excinfo.value.stage == "wrong"
    assert message in str(excinfo.value)


def test_table_given_as_mapping_becomes_a_data_frame(user_module, coins: np.ndarray) -> None:
    module = user_module("mapping_stages", BROKEN_STAGES)
    pipeline = Pipeline.from_text(
        _file(_stage("mask", "threshold"), _stage("table", f"'{module}:dict_table'"))
    )
    table = pipeline.run(coins)["table"]
    pd.testing.assert_frame_equal(table, pd.DataFrame({"label": [1, 2], "area": [10, 20]}))


def test_stage_config_is_immutable(pipeline: Pipeline) -> None:
    stage = pipeline["blurred"]
    assert isinstance(stage, StageConfig)
    with pytest.raises(AttributeError):
        stage.name = "other"  # type: ignore[misc]


def test_unknown_stage_lookup(pipeline: Pipeline) -> None:
    with pytest.raises(PipelineError, match="no stage named 'nope'; stages are blurred, mask"):
        pipeline["nope"]


@pytest.mark.parametrize(
    ("stage", "fragment"),
    [
        ("  - name: m\n    function: measure\n    inputs: {labels: input}\n", "need an intensity image"),
        (
            "  - name: m\n    function: measure\n    inputs: {labels: input, intensity: input}\n"
            "    params: {properties: [area, aera]}\n",
            "unknown ['aera']",
        ),
        ("  - name: g\n    function: gaussian\n    params: {sigma: -1}\n", "sigma must be 0 or more"),
        (
            "  - name: r\n    function: rescale_intensity\n    params: {in_range: [99, 1]}\n",
            "0 <= low < high",
        ),
        (
            "  - name: t\n    function: threshold\n    params: {method: local, block_size: 4}\n",
            "block_size must be odd",
        ),
    ],
)
def test_values_that_cannot_work_are_refused_at_load(stage: str, fragment: str) -> None:
    with pytest.raises(PipelineError) as excinfo:
        Pipeline.from_text("version: 1\nstages:\n" + stage)
    assert fragment in str(excinfo.value)
    assert excinfo.value.key == "params"
