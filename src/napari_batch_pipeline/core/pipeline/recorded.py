"""A run folder's pipeline, read without running anyone's code.

A run folder may come from someone else, and its ``pipeline.yaml`` may name any module
(``function: "venv.__main__:main"``); loading it as a pipeline to run imports that
module, which runs its code. Reading results (tables, layers, summaries) needs only what
the stages are, so :func:`load_recorded` imports nothing: a stage of a module that is
not imported yet (and not among ``trusted``) is stood in for by its record: its name,
parameters and inputs as the file writes them, and what it returns as the run recorded
it. Running such a stage raises. :func:`named_modules` lists the modules a pipeline file
names, for asking the user's consent before a received run is re-run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..stages import STAGES, StageSpec
from ..stages.registry import OUTPUT_KINDS, ParamSpec
from .model import Pipeline
from .stage_config import StageConfig
from .yaml_file import load_yaml, read_pipeline_text

__all__ = ["load_recorded", "named_modules", "untrusted_modules"]


def named_modules(path: str | Path) -> list[str]:
    """The modules the stages of a pipeline file name (``package.module:function``), in
    order, read without importing any.

    Raises
    ------
    PipelineError
        If the file cannot be read as a pipeline file.
    """
    modules: list[str] = []
    for stage in _stages(Path(path)):
        module = _module_of(stage.get("function"))
        if module is not None and module not in modules:
            modules.append(module)
    return modules


def untrusted_modules(path: str | Path, trusted: Collection[str] = ()) -> list[str]:
    """The modules of :func:`named_modules` that loading the file as a pipeline would
    import: neither imported in this process yet nor among ``trusted``."""
    return [m for m in named_modules(path) if m not in sys.modules and m not in trusted]


def load_recorded(
    path: str | Path,
    *,
    trusted: Collection[str] = (),
    returns: Mapping[str, str] | None = None,
) -> Pipeline:
    """Load a run folder's pipeline file, importing no module but ``trusted`` ones.

    Parameters
    ----------
    path : path
        The run folder's ``pipeline.yaml``.
    trusted : collection of str
        Modules that may be imported (those of the pipeline the user is running).
    returns : mapping of str to str, optional
        What each stage returns (``'image'``, ``'labels'``, ``'mask'``, ``'table'``), as
        the run recorded it; a stood-in stage without a record returns ``'image'``.

    Returns
    -------
    Pipeline
        With every stage described; a stage whose module was not imported raises when run.

    Raises
    ------
    PipelineError
        If the file is not a valid pipeline file.
    """
    path = Path(path)
    data = _document(path)
    stages: list[Any] = []
    for raw in data["stages"]:
        module = _module_of(raw.get("function")) if isinstance(raw, Mapping) else None
        if module is None or module in sys.modules or module in trusted or raw["function"] in STAGES:
            stages.append(raw)
        else:
            stages.append(_stood_in(raw, (returns or {}).get(str(raw.get("name")), "image")))
    return Pipeline.from_dict({**data, "stages": stages}, source=str(path))


def _document(path: Path) -> dict[str, Any]:
    data = load_yaml(read_pipeline_text(path), str(path))
    if not isinstance(data, Mapping) or not isinstance(data.get("stages"), list):
        raise PipelineError(f"{str(path)!r}: expected a pipeline file with a list of stages")
    return dict(data)


def _stages(path: Path) -> list[Mapping[str, Any]]:
    return [s for s in _document(path)["stages"] if isinstance(s, Mapping)]


def _module_of(function: Any) -> str | None:
    """``'package.module'`` of ``'package.module:function'``; None for a built-in name."""
    if not isinstance(function, str) or ":" not in function:
        return None
    return function.partition(":")[0] or None


def _stood_in(raw: Mapping[str, Any], returns: str) -> StageConfig | Mapping[str, Any]:
    """The stage as recorded, its function not imported; the raw mapping if it is not
    one a run could have written (validation then says what is wrong)."""
    function, params, inputs = raw.get("function"), raw.get("params") or {}, raw.get("inputs") or {}
    name = raw.get("name")
    if not (isinstance(name, str) and isinstance(params, Mapping) and isinstance(inputs, Mapping)):
        return raw
    spec = StageSpec(
        name=str(function),
        function=_not_imported(str(function)),
        data_args={str(arg): "image" for arg in inputs} or {"image": "image"},
        optional_data=frozenset(),
        params={str(key): ParamSpec(str(key), Any, value) for key, value in params.items()},
        returns=returns if returns in OUTPUT_KINDS else "image",
        menu="filter",
        doc="A stage recorded by a run folder; its module was not imported.",
        group=isinstance(raw.get("group_by"), list),  # a group stage's record has group_by
    )
    save = raw.get("save", False)
    group_by = tuple(map(str, raw["group_by"])) if spec.group else None
    config = StageConfig(name, str(function), dict(params), dict(inputs), save is True, stood_in=spec)
    return replace(config, group_by=group_by)


def _not_imported(reference: str) -> Callable[..., Any]:
    module = reference.partition(":")[0]

    def not_imported(*args: Any, **kwargs: Any) -> Any:
        raise PipelineError(
            f"{reference!r} was not imported: reading a run folder runs none of its code; "
            f"load the pipeline file itself to run it (that imports {module!r})"
        )

    not_imported.__module__ = module
    not_imported.__qualname__ = reference.partition(":")[2] or reference
    return not_imported
