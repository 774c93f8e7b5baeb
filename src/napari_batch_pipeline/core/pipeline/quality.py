"""Quality rules: the ``quality:`` section of a pipeline file.

Each rule names a per-image measurement of a table stage and the range it must lie in::

    quality:
      - {measure: quality.focus_score, min: 25}
      - {measure: quality.saturated_fraction, max: 0.01}

``measure`` is ``<stage>.<measurement>``: a table stage of the pipeline and one of its
measurements (``count``, the number of objects, for any table stage). The rules are
checked when the pipeline is built, before any image: a stage that is not a table stage,
or a measurement the stage does not give, is refused naming the rule. An image breaking
a rule keeps its status; the run's tables flag it (see :mod:`..results.screen`). Rules
do not change what a stage computes: they are not part of the pipeline's hash, and a
finished run can be judged by other rules without recomputing an image.

Before a group stage (see DESIGN, "Screens"), the rules on table stages listed before it
that take no group stage's output, directly or not (:func:`rules_before`), judge each
member first: a group learns from its unflagged members only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PipelineError
from ..stages.quality import QUALITY_MEASUREMENTS
from .stage_config import StageConfig, upstream

__all__ = [
    "COUNT",
    "QUALITY_KEY",
    "QualityRule",
    "gives",
    "known_measurements",
    "parse_quality",
    "rules_before",
]

#: the pipeline file's key of the rules
QUALITY_KEY = "quality"
#: the measurement every table stage gives: its number of rows (objects)
COUNT = "count"
_RULE_KEYS = ("measure", "min", "max")


@dataclass(frozen=True)
class QualityRule:
    """One rule: ``min <= <stage>.<measurement> <= max`` (either bound may be None).

    Attributes
    ----------
    stage : str
        A table stage of the pipeline.
    measurement : str
        One of its measurements, or ``count``.
    min, max : float or None
        The bounds, inclusive; None: no bound on that side.
    """

    stage: str
    measurement: str
    min: float | None = None
    max: float | None = None

    @property
    def measure(self) -> str:
        """``<stage>.<measurement>``, as the pipeline file writes it."""
        return f"{self.stage}.{self.measurement}"

    def broken(self, value: float) -> str | None:
        """How ``value`` breaks the rule (``'quality.focus_score 12 < 25'``), or None.

        A missing value (NaN: no object to average) breaks it: it cannot be judged.
        """
        if value is None or not math.isfinite(value):
            return f"{self.measure} missing"
        if self.min is not None and value < self.min:
            return f"{self.measure} {value:g} < {self.min:g}"
        if self.max is not None and value > self.max:
            return f"{self.measure} {value:g} > {self.max:g}"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The rule as the pipeline file writes it."""
        rule: dict[str, Any] = {"measure": self.measure}
        if self.min is not None:
            rule["min"] = self.min
        if self.max is not None:
            rule["max"] = self.max
        return rule


def parse_quality(data: Any, stages: Sequence[StageConfig]) -> tuple[QualityRule, ...]:
    """Read and check the ``quality:`` section against the pipeline's stages.

    Parameters
    ----------
    data : list of mapping or None
        ``[{measure: 'stage.measurement', min: number, max: number}, ...]``; None: no rule.
    stages : sequence of StageConfig
        The pipeline's stages, checked.

    Returns
    -------
    tuple of QualityRule

    Raises
    ------
    PipelineError
        Naming the rule (``quality[1]``) and what is wrong: not a mapping, an unknown
        key, a stage that is missing or not a table stage, a measurement it does not
        give, bounds that are not numbers, none or in the wrong order.
    """
    if data is None:
        return ()
    if not isinstance(data, list):
        raise PipelineError(
            f"{QUALITY_KEY}: expected a list of rules {{measure: stage.measurement, min: ..., max: ...}}, "
            f"got {data!r}"
        )
    by_name = {stage.name: stage for stage in stages}
    return tuple(_rule(f"{QUALITY_KEY}[{number}]", item, by_name) for number, item in enumerate(data))


def rules_before(rules: Sequence[QualityRule], stages: Sequence[Any], stage: str) -> tuple[QualityRule, ...]:
    """The rules that judge the members of group stage ``stage`` before it learns.

    Parameters
    ----------
    rules : sequence of QualityRule
        The pipeline's rules.
    stages : sequence
        The pipeline's stages in order, each with ``name``, ``inputs`` (argument ->
        source) and ``group_by`` (None for a stage that is no group stage).
    stage : str
        A group stage.

    Returns
    -------
    tuple of QualityRule
        Those on a stage listed before ``stage`` whose output needs no group stage's
        result (it is computed from the image alone, before any group learns).
    """
    names = [s.name for s in stages]
    graph = {s.name: dict(s.inputs) for s in stages}
    groups = {s.name for s in stages if s.group_by is not None}
    before = set(names[: names.index(stage)])
    return tuple(
        rule
        for rule in rules
        if rule.stage in before and not ({rule.stage} | upstream(graph, rule.stage)) & groups
    )


def _rule(where: str, item: Any, stages: Mapping[str, StageConfig]) -> QualityRule:
    if not isinstance(item, Mapping):
        raise PipelineError(f"{where}: expected a mapping with keys {', '.join(_RULE_KEYS)}, got {item!r}")
    unknown = sorted(set(map(str, item)) - set(_RULE_KEYS))
    if unknown:
        raise PipelineError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(_RULE_KEYS)}")
    measure = item.get("measure")
    stage, dot, measurement = str(measure).partition(".") if isinstance(measure, str) else ("", "", "")
    if not dot or not measurement:
        raise PipelineError(f"{where}: measure: expected 'stage.measurement', got {measure!r}")
    tables = [name for name, config in stages.items() if config.returns == "table"]
    if stage not in tables:
        raise PipelineError(
            f"{where}: measure {measure!r}: {stage!r} is not a table stage of the pipeline; "
            f"its table stages are {', '.join(tables) or 'none'}"
        )
    known = known_measurements(stages[stage])
    if not gives(known, measurement):
        raise PipelineError(
            f"{where}: measure {measure!r}: stage {stage!r} ({stages[stage].function}) gives no "
            f"measurement {measurement!r}; it gives {', '.join(sorted(known or ()))}"
        )
    low, high = (_bound(where, item, key) for key in ("min", "max"))
    if low is None and high is None:
        raise PipelineError(f"{where}: expected a min, a max or both for {measure!r}")
    if low is not None and high is not None and low > high:
        raise PipelineError(f"{where}: min {low:g} is above max {high:g}")
    return QualityRule(stage, measurement, low, high)


def known_measurements(stage: StageConfig) -> set[str] | None:
    """What a built-in table stage gives (with ``count``); None for a user's stage."""
    if stage.function == "image_quality":
        return {COUNT, *QUALITY_MEASUREMENTS}
    if stage.function == "measure":
        return {COUNT, *(p for p in stage.params.get("properties", ()) if p != "label")}
    return None


def gives(known: set[str] | None, measurement: str) -> bool:
    """Whether a stage that gives ``known`` (None: a user's stage, anything) gives
    ``measurement``, or a column of it (``centroid-0`` of ``centroid``)."""
    return known is None or measurement in known or _expanded(measurement, known)


def _expanded(measurement: str, known: set[str]) -> bool:
    """``centroid-0`` for ``centroid``: a multi-valued property's columns."""
    base, dash, index = measurement.partition("-")
    return bool(dash) and base in known and all(part.isdigit() for part in index.split("-"))


def _bound(where: str, item: Mapping[str, Any], key: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PipelineError(f"{where}: {key}: expected a finite number, got {value!r}")
    return float(value)
