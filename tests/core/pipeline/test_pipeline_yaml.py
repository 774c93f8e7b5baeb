"""Pipeline files built to hurt: alias bombs, self-referring aliases, deep nesting,
duplicate keys, values YAML cannot convert; and, by property, any text at all."""

from __future__ import annotations

import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.pipeline.yaml_file import MAX_ALIASES, load_yaml

GOOD = "version: 1\nname: nuclei\nstages:\n" + (
    "  - {name: blurred, function: gaussian, params: {sigma: 2}}\n  - {name: mask, function: threshold}\n"
)


def _bomb(levels: int = 9) -> str:
    """The billion laughs: each line nine aliases of the one before."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]")
    return "\n".join([*lines, f"name: *l{levels - 1}", "version: 1", "stages: []"]) + "\n"


def test_an_alias_bomb_is_refused_at_once() -> None:
    start = time.perf_counter()
    with pytest.raises(PipelineError, match="aliases expand the file") as caught:
        Pipeline.from_text(_bomb(), source="bomb.yaml")
    assert time.perf_counter() - start < 2
    assert len(str(caught.value)) < 300
    assert "bomb.yaml, line" in str(caught.value)


def test_an_alias_bomb_is_refused_through_the_command_line(tmp_path) -> None:
    import subprocess
    import sys

    pipeline = tmp_path / "bomb.yaml"
    pipeline.write_text(_bomb(), encoding="utf-8")
    images = tmp_path / "images"
    images.mkdir()
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "napari_batch_pipeline.cli", "run", pipeline, images, "-o", tmp_path / "out"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.perf_counter() - start < 30
    assert result.returncode == 2, result.stderr
    assert "aliases expand the file" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr) < 1000


def test_too_many_aliases_are_refused() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(PipelineError, match=f"more than {MAX_ALIASES} aliases"):
        load_yaml(text)


def test_a_few_aliases_still_load() -> None:
    text = GOOD.replace("params: {sigma: 2}", "params: &blur {sigma: 2}") + (
        "  - {name: again, function: gaussian, params: *blur, inputs: {image: input}}\n"
    )
    pipeline = Pipeline.from_text(text)
    assert pipeline["again"].params == {"sigma": 2.0}


def test_an_alias_inside_itself_is_refused() -> None:
    with pytest.raises(PipelineError, match="refers to itself"):
        Pipeline.from_text("version: 1\nname: &n [*n]\nstages: []\n")


@pytest.mark.parametrize(
    "text", ["[" * 60 + "]" * 60, "[" * 3000 + "]" * 3000, "a:\n" + "  - \n" * 0 + "{a: " * 80]
)
def test_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(PipelineError, match="nested"):
        load_yaml(text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (GOOD + "version: 1\n", "version"),
        (GOOD.replace("params: {sigma: 2}", "params: {sigma: 2, sigma: 3}"), "sigma"),
        (
            GOOD.replace("{name: mask, function: threshold}", "{name: mask, function: threshold, name: x}"),
            "name",
        ),
    ],
)
def test_duplicate_keys_are_refused_naming_the_key(text: str, key: str) -> None:
    assert isinstance(yaml.safe_load(text), dict)  # plain YAML takes the last one silently
    with pytest.raises(PipelineError, match=f"duplicate key '{key}'"):
        Pipeline.from_text(text)


def test_a_merge_key_is_not_a_duplicate() -> None:
    text = "base: &b {x: 1}\nother: {<<: *b, y: 2}\n"
    assert load_yaml(text)["other"] == {"x": 1, "y": 2}


@pytest.mark.parametrize("value", ["2020-13-01", "!!float x", "!!int 0x", "!!timestamp x"])
def test_values_yaml_cannot_convert_are_refused_naming_the_line(value: str) -> None:
    text = GOOD.replace("name: nuclei\n", f"name: nuclei\nextra: {value}\n", 1)
    with pytest.raises(PipelineError, match="line 3"):
        Pipeline.from_text(text)


# -- any text at all --------------------------------------------------------------------------

_KEYS = st.sampled_from(
    ["version", "name", "stages", "channels", "function", "params", "inputs", "save", "sigma", "radius"]
)
_SCALARS = st.one_of(
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.sampled_from(["gaussian", "threshold", "label", "measure", "input", "labels", "otsu", "*", ""]),
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(_KEYS, st.text(max_size=5)), children, max_size=5),
    ),
    max_leaves=25,
)


def _loads_or_refuses(text: str) -> None:
    try:
        pipeline = Pipeline.from_text(text)
    except PipelineError:
        return
    assert isinstance(pipeline, Pipeline)
    assert Pipeline.from_text(pipeline.to_yaml()) == pipeline


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_text_loads_or_raises_pipeline_error(text: str) -> None:
    _loads_or_refuses(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_DOCUMENTS)
def test_any_yaml_document_loads_or_raises_pipeline_error(document: object) -> None:
    _loads_or_refuses(yaml.safe_dump(document))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(["a", "b", "input", "images", "x-1"]), "function": _SCALARS},
            optional={"params": _DOCUMENTS, "inputs": _DOCUMENTS, "save": _SCALARS},
        ),
        max_size=4,
    ),
    st.one_of(st.none(), _DOCUMENTS),
)
def test_any_stage_list_loads_or_raises_pipeline_error(stages: list, channels: object) -> None:
    document = {"version": 1, "name": "p", "stages": stages}
    if channels is not None:
        document["channels"] = channels
    _loads_or_refuses(yaml.safe_dump(document))


def test_a_text_read_again_is_parsed_once_and_each_caller_gets_its_own_copy(monkeypatch) -> None:
    # a run read its own pipeline file back five times, each parse some 8 ms
    from napari_batch_pipeline.core.pipeline import yaml_file

    text = "version: 1\nname: parsed once\nstages:\n  - {name: b, function: gaussian, params: {sigma: 2}}\n"
    first = load_yaml(text)
    monkeypatch.setattr(yaml_file, "_Loader", None)  # a second parse would fail
    second = load_yaml(text)
    assert second == first and second is not first
    second["stages"][0]["params"]["sigma"] = 9
    assert load_yaml(text)["stages"][0]["params"]["sigma"] == 2
    with pytest.raises(PipelineError, match=r"other\.yaml, line 1"):  # errors still name the file
        monkeypatch.undo()
        load_yaml("a: [1", "other.yaml")
