"""Parameter sets: a sweep's grid, read from text and checked against the pipeline."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from ..errors import PipelineError
from ..pipeline.model import Pipeline
from ..run_folder.layout import param_label

__all__ = ["parameter_sets", "parse_sweep"]


def parse_sweep(options: Iterable[str]) -> dict[str, list[Any]]:
    """Parse sweep texts ``STAGE.PARAM=V1,V2,...`` into ``{'stage.param': [values]}``.

    Values are read as YAML scalars: ``2`` is an int, ``2.5`` a float, ``otsu`` a string.
    """
    sweep: dict[str, list[Any]] = {}
    for option in options:
        key, sep, values = option.partition("=")
        key = key.strip()
        if not sep or "." not in key or not values.strip():
            raise PipelineError(f"sweep {option!r}: expected STAGE.PARAM=V1,V2,...")
        try:
            parsed = [_scalar(v.strip()) for v in values.split(",") if v.strip()]
        except yaml.YAMLError:
            raise PipelineError(f"sweep {option!r}: cannot read the values") from None
        if not parsed:
            raise PipelineError(f"sweep {option!r}: expected STAGE.PARAM=V1,V2,...")
        if key in sweep:
            raise PipelineError(f"sweep {key} is given twice")
        sweep[key] = parsed
    return sweep


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _scalar(text: str) -> Any:
    """A YAML scalar; ``1e-3`` is a float too (YAML 1.1 would read it as a string).

    A value is one scalar or a short list: anchors and aliases (an "alias bomb" stands for
    billions of values in a few characters) and nesting deeper than :data:`_MAX_DEPTH`
    are refused before YAML reads the text (:class:`yaml.YAMLError`).
    """
    if _FLOAT.match(text):
        return float(text)
    if _ALIAS.search(text):
        raise yaml.YAMLError("a value cannot hold YAML anchors or aliases (& or *)")
    depth = deepest = 0
    for character in text:
        depth += (character in "[{") - (character in "]}")
        deepest = max(deepest, depth)
    if deepest > _MAX_DEPTH:
        raise yaml.YAMLError(f"a value cannot nest deeper than {_MAX_DEPTH} levels")
    return yaml.safe_load(text)


#: an anchor or alias (``&a``, ``*a``) where YAML would read one
_ALIAS = re.compile(r"(?:^|[\s,\[\{:-])[&*][^\s,\[\]\{\}]")
_MAX_DEPTH = 10


def parameter_sets(pipeline: Pipeline, sweep: Mapping[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """The grid of a sweep, each set validated against the pipeline; ``[{}]`` without one.

    Raises
    ------
    PipelineError
        If a key names no stage or parameter, or a value has the wrong type.
    """
    if not sweep:
        return [{}]
    keys = list(sweep)
    for key in keys:
        values = sweep[key]
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise PipelineError(f"sweep {key!r}: expected a non-empty list of values, got {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise PipelineError(f"sweep {key!r}: values repeat in {list(values)!r}")
    grid = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(sweep[k] for k in keys))]
    checked = []
    for params in grid:
        swept = pipeline.with_params(params)
        # keep the normalised values (2 -> 2.0 for a float parameter)
        checked.append({key: swept[key.partition(".")[0]].params[key.partition(".")[2]] for key in params})
    seen: set[str] = set()
    for params in checked:
        if repr(params) in seen:
            raise PipelineError(
                f"sweep: the parameter set {param_label(params)} comes twice (2 and 2.0 are the "
                "same number); give each value once"
            )
        seen.add(repr(params))
    return checked
