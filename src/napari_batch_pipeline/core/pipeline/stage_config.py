"""One stage of a pipeline file: its complete configuration, and how it is validated.

Every check names the stage, the key and what was expected, and runs before any image
is touched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PipelineError, StageError
from ..stages import StageSpec, check_param, get_stage
from ..stages.registry import check_range

__all__ = ["INPUT", "StageConfig", "check_output", "upstream", "validate_stages"]

INPUT = "input"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_STAGE_KEYS = {"name", "function", "params", "inputs", "save", "group_by"}
#: a group stage's ``group_by`` when the file gives none: its images' folder, so that a
#: recursive run learns one result per folder and a run of one folder one result
DEFAULT_GROUP_BY = "folder"


@dataclass(frozen=True)
class StageConfig:
    """One stage of a pipeline, complete: every parameter and data input filled in."""

    name: str
    function: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    save: bool = False
    #: a group stage's key columns (``folder``, metadata fields, parameter-table keys);
    #: ``()`` makes one group of every image; None for a stage of one image
    group_by: tuple[str, ...] | None = None
    #: the stage as a run folder recorded it, where its module was not imported (see
    #: :mod:`.recorded`): it describes the stage, and running it raises
    stood_in: StageSpec | None = field(default=None, compare=False, repr=False)

    @property
    def spec(self) -> StageSpec:
        return self.stood_in if self.stood_in is not None else get_stage(self.function)

    @property
    def returns(self) -> str:
        """The output kind: ``image``, ``mask``, ``labels`` or ``table`` (a parameter may
        choose it, as a classifier's ``output``)."""
        spec = self.spec
        return spec.returns_by(self.params) if spec.returns_by is not None else spec.returns

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "function": self.function,
            "params": dict(self.params),
            "inputs": dict(self.inputs),
            "save": self.save,
        }
        if self.group_by is not None:  # only group stages: other pipelines keep their hash
            data["group_by"] = list(self.group_by)
        return data


def upstream(inputs: Mapping[str, Mapping[str, str]], name: str) -> set[str]:
    """The stages ``name`` depends on, directly or not (itself excluded), given every
    stage's data inputs (``{stage: {argument: source}}``); loaded images are no stages."""
    found: set[str] = set()
    pending = list(inputs[name].values())
    while pending:
        source = pending.pop()
        if source in inputs and source not in found:
            found.add(source)
            pending.extend(inputs[source].values())
    return found


def validate_stages(
    raw: list[StageConfig | Mapping[str, Any]], sources: tuple[str, ...] = (INPUT,)
) -> tuple[StageConfig, ...]:
    """Check every stage in order. ``sources`` are the names of the loaded images
    (``input`` and the pipeline's channels), which any stage may take."""
    if not raw:
        raise PipelineError("stages: expected at least one stage, got an empty list")
    done: dict[str, StageConfig] = {}
    later = {
        str(item.get("name")) if isinstance(item, Mapping) else item.name
        for item in raw
        if isinstance(item, (Mapping, StageConfig))
    }
    for index, item in enumerate(raw):
        stage = _validate_stage(item, index, done, later, sources)
        done[stage.name] = stage
    return tuple(done.values())


def _validate_stage(
    item: StageConfig | Mapping[str, Any],
    index: int,
    done: Mapping[str, StageConfig],
    later: set[str],
    sources: tuple[str, ...],
) -> StageConfig:
    data = item.to_dict() if isinstance(item, StageConfig) else item
    label = f"#{index + 1}"
    if not isinstance(data, Mapping):
        raise PipelineError(f"stages[{index}]: expected a mapping with name and function, got {data!r}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name in sources:
        taken = ", ".join(map(repr, sources))
        raise PipelineError(
            f"expected a name of letters, digits, '_' or '-' (not {taken}: those name the "
            f"images), got {name!r}",
            stage=name if isinstance(name, str) else label,
            key="name",
        )
    if name in done:
        raise PipelineError("duplicate stage name; every stage needs its own name", stage=name, key="name")
    unknown = sorted(set(map(str, data)) - _STAGE_KEYS)
    if unknown:
        raise PipelineError(
            f"unknown key; expected {', '.join(sorted(_STAGE_KEYS))}", stage=name, key=unknown[0]
        )
    function = data.get("function")
    if not isinstance(function, str):
        raise PipelineError(
            f"expected the name of a stage function, got {function!r}", stage=name, key="function"
        )
    stood_in = item.stood_in if isinstance(item, StageConfig) else None
    try:
        spec = stood_in if stood_in is not None else get_stage(function)
    except PipelineError as error:
        raise PipelineError(str(error), stage=name, key="function") from None
    params = _validate_params(name, spec, data.get("params") or {})
    inputs = _validate_inputs(name, spec, data.get("inputs") or {}, done, later, sources)
    if spec.check is not None:
        problem = spec.check(params, set(inputs))
        if problem:
            raise PipelineError(problem, stage=name, key="params")
    for key in data.get("params") or {}:  # the values given (a default is its author's choice)
        problem = check_range(key, params[key])
        if problem:
            raise PipelineError(problem, stage=name, key=f"params.{key}")
    save = data.get("save", False)
    if not isinstance(save, bool):
        raise PipelineError(f"expected true or false, got {save!r}", stage=name, key="save")
    if save and spec.returns == "table":
        save = False  # tables are always written as <stage>.csv
    group_by = _validate_group(name, spec, data, inputs, done)
    config = StageConfig(
        name=name, function=function, params=params, inputs=inputs, save=save, stood_in=stood_in
    )
    return replace(config, group_by=group_by)


def _validate_group(
    name: str,
    spec: StageSpec,
    data: Mapping[str, Any],
    inputs: Mapping[str, str],
    done: Mapping[str, StageConfig],
) -> tuple[str, ...] | None:
    """A group stage's ``group_by``, checked; None for a stage of one image."""
    given = data.get("group_by")
    if not spec.group:
        if given is not None:
            raise PipelineError(
                f"{spec.name} takes one image at a time; only a group stage (one whose data "
                "argument is Iterable[napari.types.ImageData], such as illumination) takes group_by",
                stage=name,
                key="group_by",
            )
        return None
    if given is None:  # DESIGN's default: by folder (one group in a run of one folder)
        given = [DEFAULT_GROUP_BY]
    if isinstance(given, str):
        given = [given]
    if not isinstance(given, list) or not all(isinstance(c, str) and c for c in given):
        raise PipelineError(f"expected a list of column names, got {given!r}", stage=name, key="group_by")
    if data.get("save"):
        raise PipelineError(
            f"a group stage's result is saved once per group ({name}/<group>.tif); remove save",
            stage=name,
            key="save",
        )
    pending = list(inputs.values())
    while pending:
        source = pending.pop()
        if source in done:
            if done[source].group_by is not None:
                raise PipelineError(
                    f"a group stage cannot take the output of another group stage ({source!r})",
                    stage=name,
                    key="inputs",
                )
            pending.extend(done[source].inputs.values())
    return tuple(dict.fromkeys(given))


def _validate_params(name: str, spec: StageSpec, given: Any) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise PipelineError(
            f"expected a mapping of parameter names to values, got {given!r}",
            stage=name,
            key="params",
        )
    params = spec.defaults()
    for key, value in given.items():
        if key not in spec.params:
            known = ", ".join(spec.params) or "none"
            raise PipelineError(
                f"unknown parameter of {spec.name}; its parameters are: {known}",
                stage=name,
                key=f"params.{key}",
            )
        try:
            params[key] = check_param(spec.params[key], value)
        except ValueError as error:
            raise PipelineError(str(error), stage=name, key=f"params.{key}") from None
    return {key: _plain(value) for key, value in params.items()}


def _validate_inputs(
    name: str,
    spec: StageSpec,
    given: Any,
    done: Mapping[str, StageConfig],
    later: set[str],
    sources: tuple[str, ...],
) -> dict[str, str]:
    if not isinstance(given, Mapping):
        raise PipelineError(
            f"expected a mapping of data arguments to stage names, got {given!r}",
            stage=name,
            key="inputs",
        )
    previous = list(done)[-1] if done else INPUT
    inputs: dict[str, str] = {}
    for arg in given:
        if arg not in spec.data_args:
            raise PipelineError(
                f"{spec.name} has no data argument {arg!r}; its data arguments are: "
                f"{', '.join(spec.data_args)}",
                stage=name,
                key=f"inputs.{arg}",
            )
    for arg, kind in spec.data_args.items():
        source = given.get(arg)
        if source is None:
            if arg == spec.main_arg:
                source = previous
            elif arg in spec.optional_data:
                continue
            else:
                raise PipelineError(
                    f"{spec.name} needs {kind} for {arg!r}; connect it with inputs: {{{arg}: <stage name>}}",
                    stage=name,
                    key=f"inputs.{arg}",
                )
        images = " or ".join(map(repr, sources))
        if not isinstance(source, str):
            raise PipelineError(
                f"expected a stage name or {images}, got {source!r}",
                stage=name,
                key=f"inputs.{arg}",
            )
        if source not in sources and source not in done:
            why = "comes later in the pipeline" if source in later and source != name else "does not exist"
            if source == name:
                why = "is this stage itself"
            raise PipelineError(
                f"refers to {source!r}, which {why}; expected {images} or one of the earlier "
                f"stages ({', '.join(done) or 'none'})",
                stage=name,
                key=f"inputs.{arg}",
            )
        if source not in sources and done[source].returns == "table":
            raise PipelineError(
                f"{source!r} gives a table, but {arg!r} takes {kind}",
                stage=name,
                key=f"inputs.{arg}",
            )
        inputs[arg] = source
    return inputs


def _plain(value: Any) -> Any:
    """YAML- and JSON-friendly: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_output(stage: StageConfig, kind: str, result: Any) -> Any:
    """``result`` of ``stage`` as its kind asks (a mapping becomes a table), or a
    :class:`StageError` saying what it got."""
    if kind == "table":
        if isinstance(result, Mapping):
            result = pd.DataFrame(dict(result))
        if not isinstance(result, pd.DataFrame):
            raise StageError(stage.name, stage.function, f"expected a table, got {type(result).__name__}")
        return result
    if not isinstance(result, np.ndarray):
        raise StageError(stage.name, stage.function, f"expected an array, got {type(result).__name__}")
    if kind in ("labels", "mask") and not (np.issubdtype(result.dtype, np.integer) or result.dtype == bool):
        raise StageError(
            stage.name,
            stage.function,
            f"expected integer labels or a mask, got dtype {result.dtype}",
        )
    return result
