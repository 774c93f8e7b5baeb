"""The stage catalogue: built-in stages by name, and user functions by reference.

A user function joins as ``package.module:function``; it must annotate its data
arguments with napari types and give every other argument a default. Holds the
registry (:mod:`.registry`: what a stage is, its parameters and their checks), the
stages by kind (:mod:`.filters`, :mod:`.segment`, :mod:`.measure`, :mod:`.objects`,
:mod:`.quality`, the group stages of :mod:`.illumination`, and the classifiers of
:mod:`.classifiers` with their forests (:mod:`.forests`) and training files
(:mod:`.training`)) and what they share about pixel sizes (:mod:`.spatial`). It uses
scikit-image, SciPy, scikit-learn (imported when a forest is trained) and the project's
errors only: the rest of the core builds on it, never the other way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import PipelineError
from . import classifiers, filters, illumination, measure, objects, quality, segment
from .registry import (
    SPACING_ARG,
    ParamSpec,
    StageSpec,
    check_param,
    describe_type,
    import_function,
    spec_from_function,
    stage,
)

__all__ = [
    "SPACING_ARG",
    "STAGES",
    "ParamSpec",
    "StageSpec",
    "check_param",
    "describe_type",
    "get_stage",
    "register_stage",
    "stage",
]

STAGES: dict[str, StageSpec] = {}


def register_stage(function: Callable[..., Any], name: str | None = None) -> StageSpec:
    """Add ``function`` to the catalogue under ``name`` (default: its reference).

    Raises
    ------
    PipelineError
        If the function lacks napari type annotations or a parameter default.
    """
    if name is None:
        name = f"{function.__module__}:{function.__qualname__}"
    spec = spec_from_function(function, name)
    STAGES[name] = spec
    return spec


def get_stage(name: str) -> StageSpec:
    """The stage called ``name``: a built-in, a registered function or an importable one."""
    if name in STAGES:
        return STAGES[name]
    if ":" not in name:
        close = min(STAGES, key=lambda known: _distance(known, name))
        hint = f" (did you mean {close!r}?)" if _distance(close, name) <= 3 else ""
        raise PipelineError(
            f"unknown function {name!r}{hint}; built-in stages are {', '.join(sorted(STAGES))}, "
            "or name your own as 'package.module:function'"
        )
    return register_stage(import_function(name), name)


def _distance(a: str, b: str) -> int:
    """Levenshtein distance, for 'did you mean' suggestions."""
    row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, char_b in enumerate(b, 1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (char_a != char_b)),
            )
    return row[-1]


for _module in (filters, illumination, segment, measure, quality, objects, classifiers):
    for _name in _module.__all__:
        _function = getattr(_module, _name)
        if callable(_function) and hasattr(_function, "__stage_info__"):
            register_stage(_function, _name)
