"""A parameter sweep on one image: run the chain for every value, keep one stage's output.

Tuning a pipeline means asking "which sigma?": this runs the chain once per parameter
set of a grid (one or two swept parameters), keeps the output of one stage for every
set, and the summary values a batch would write to ``images.csv`` (object count, mean
area ...), so that the outputs can be stacked into one array and the measurements drawn
against the swept value. Stages upstream of the swept ones are computed once. Qt- and
napari-free; the sweep panel of the Pipeline builder runs it in a thread worker.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import PipelineError
from ..pipeline.model import Pipeline
from ..plan.parameters import _scalar, parameter_sets
from ..run_folder.layout import param_label
from ..run_folder.tables import summarize
from ..stages import ParamSpec
from .cache import StageCache

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "MAX_PARAMETERS",
    "MAX_VALUES",
    "ImageSweep",
    "SweepPoint",
    "default_range",
    "default_values_text",
    "is_numeric",
    "is_sweepable",
    "output_stage",
    "parse_values",
    "plot_sweep",
    "sweep_one_image",
    "sweep_summary",
    "sweep_values",
]

#: how many parameters a sweep on one image may vary at once (a line, or a grid)
MAX_PARAMETERS = 2
#: how many values ``sweep_values`` may give (a typo in step should not start 10**6 runs)
MAX_VALUES = 1000

_IMAGE_KINDS = ("image", "mask", "labels")


# -- values ---------------------------------------------------------------------------


def sweep_values(start: float, stop: float, step: float) -> list[Any]:
    """``start, start + step, ...`` up to ``stop`` inclusive (within float tolerance).

    Int start and step give ints; floats are rounded to 12 significant digits, so
    ``sweep_values(0.1, 0.3, 0.1)`` is ``[0.1, 0.2, 0.3]``, not ``0.30000000000000004``.

    Raises
    ------
    PipelineError
        If ``step`` is zero or leads away from ``stop``, or there would be more than
        :data:`MAX_VALUES` values.
    """
    for name, value in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PipelineError(f"sweep {name}: expected a finite number, got {value!r}")
    if step == 0:
        raise PipelineError(f"sweep step: expected a non-zero step from {start} to {stop}, got 0")
    span = stop - start
    if span and (span > 0) != (step > 0):
        raise PipelineError(f"sweep step {step} leads away from {stop} (start {start}); change its sign")
    steps = span / step
    count = math.floor(steps + 1e-9 * max(1.0, abs(steps))) + 1
    if count > MAX_VALUES:
        raise PipelineError(
            f"sweep from {start} to {stop} by {step} gives {count} values; at most {MAX_VALUES} are allowed"
        )
    if all(isinstance(v, int) for v in (start, step)):
        return [start + i * step for i in range(count)]
    return [float(f"{start + i * step:.12g}") for i in range(count)]


def parse_values(text: str) -> list[Any]:
    """The values of a list text, ``'1, 2.5, 4'`` or ``'otsu, li'``, read as YAML scalars.

    Raises
    ------
    PipelineError
        If there is no value, or a value cannot be read.
    """
    parts = [part.strip() for part in str(text).split(",")]
    if not any(parts):
        raise PipelineError(f"sweep values {text!r}: expected values separated by commas, like 1, 2, 3")
    if not all(parts):
        raise PipelineError(f"sweep values {text!r}: an empty value between commas")
    values = []
    for part in parts:
        try:
            values.append(_scalar(part))
        except Exception:
            raise PipelineError(f"sweep values {text!r}: cannot read {part!r}") from None
    return values


def is_numeric(param: ParamSpec) -> bool:
    """Whether the parameter is a number (swept by start, stop and step)."""
    return param.annotation in (int, float)


def is_sweepable(param: ParamSpec) -> bool:
    """Whether the parameter takes single values (numbers, strings, choices, flags), not lists."""
    annotation = param.annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return all(a is type(None) or _scalar_type(a) for a in typing.get_args(annotation))
    return _scalar_type(annotation)


def _scalar_type(annotation: Any) -> bool:
    return annotation in (int, float, bool, str) or typing.get_origin(annotation) is Literal


def default_range(param: ParamSpec, current: Any) -> tuple[float, float, float]:
    """Start, stop and step to offer for a numeric parameter around its current value.

    From half to twice the current value, in steps of half of it (whole steps for an
    int), so that the current value is among those swept.
    """
    value = current if isinstance(current, (int, float)) and not isinstance(current, bool) else param.default
    value = float(value or 0)
    if param.annotation is int:
        whole = int(value)
        if whole <= 0:
            return whole, whole + 4, 1
        step = max(1, whole // 2)
        return whole - step, whole + 2 * step, step
    if value == 0:
        return 0.0, 1.0, 0.25
    half = abs(value) / 2
    return value - half, value + 2 * half, half


def default_values_text(param: ParamSpec, current: Any) -> str:
    """The list text to offer for a parameter that is not a number: every choice, or the value."""
    annotation = param.annotation
    if typing.get_origin(annotation) is Literal:
        return ", ".join(map(str, typing.get_args(annotation)))
    if annotation is bool:
        return "true, false"
    return "null" if current is None else str(current)


# -- running --------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    """The result of one parameter set.

    Attributes
    ----------
    params : dict
        The set, ``{'stage.param': value}``.
    output : (M, N) ndarray
        The output of the sweep's stage.
    summary : dict of str to float
        As in ``images.csv``: ``<stage>.count`` and ``<stage>.mean_<column>``.
    """

    params: dict[str, Any]
    output: np.ndarray
    summary: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return param_label(self.params)


class ImageSweep:
    """A sweep of one or two parameters on one image: the grid, and the points run so far.

    Parameters
    ----------
    pipeline : Pipeline
        The chain.
    sweep : dict of str to list
        ``{'stage.param': [values]}``, one or two keys; the grid is their product, the
        last key varying fastest.
    stage : str, optional
        The stage whose output is kept; default :func:`output_stage`.

    Raises
    ------
    PipelineError
        If there are no or too many parameters, a key or value does not fit the pipeline,
        or ``stage`` is not an image, mask or labels stage of it. Nothing has run then.
    """

    def __init__(self, pipeline: Pipeline, sweep: Mapping[str, Sequence[Any]], stage: str | None = None):
        if not sweep or len(sweep) > MAX_PARAMETERS:
            raise PipelineError(
                f"a sweep on one image varies 1 or {MAX_PARAMETERS} parameters, got {len(sweep)}"
            )
        self.pipeline = pipeline
        self.param_sets = parameter_sets(pipeline, sweep)
        self.parameters: list[str] = list(sweep)
        self.shape: tuple[int, ...] = tuple(len(sweep[key]) for key in self.parameters)
        self.values: dict[str, list[Any]] = {}
        for axis, key in enumerate(self.parameters):
            stride = math.prod(self.shape[axis + 1 :])
            self.values[key] = [self.param_sets[i * stride][key] for i in range(self.shape[axis])]
        self.stage = output_stage(pipeline) if stage is None else stage
        if pipeline[self.stage].returns not in _IMAGE_KINDS:
            raise PipelineError(
                f"the sweep keeps an image, mask or labels output; stage {self.stage!r} "
                f"gives a {pipeline[self.stage].returns}"
            )
        self.kind: str = pipeline[self.stage].returns
        self.points: list[SweepPoint] = []

    def __len__(self) -> int:
        return len(self.param_sets)

    @property
    def complete(self) -> bool:
        """Whether every parameter set has run."""
        return len(self.points) == len(self.param_sets)

    def run(self, image: Any, cancelled: Callable[[], bool] | None = None) -> Iterator[SweepPoint]:
        """Run the remaining parameter sets on ``image``; yield each point as it is done.

        Parameters
        ----------
        image : (M, N) ndarray, or one per channel name (see :meth:`Pipeline.images_of`)
        cancelled : callable, optional
            Checked before every stage computed; when it returns True the sweep stops,
            the set under way is dropped, and :attr:`complete` stays False.

        Raises
        ------
        StageError
            If a stage fails for some parameter set.
        """
        cache = StageCache()  # upstream outputs shared by consecutive sets are computed once
        for params in self.param_sets[len(self.points) :]:
            if cancelled is not None and cancelled():
                return
            pipeline = self.pipeline.with_params(params)
            outputs = dict(
                (name, output) for name, output, _ in cache.run(pipeline, image, "sweep", stop=cancelled)
            )
            if len(outputs) < len(pipeline):  # stopped part-way
                return
            point = SweepPoint(dict(params), outputs[self.stage], sweep_summary(pipeline, outputs))
            self.points.append(point)
            yield point

    def stack(self) -> np.ndarray:
        """The outputs as one array: ``(n, M, N)``, or ``(n1, n2, M, N)`` for a grid.

        Raises
        ------
        ValueError
            If the sweep is not complete, or the outputs differ in shape.
        """
        if not self.complete:
            raise ValueError(f"the sweep is incomplete: {len(self.points)} of {len(self)} parameter sets ran")
        shapes = {point.output.shape for point in self.points}
        if len(shapes) > 1:
            raise ValueError(f"the outputs of stage {self.stage!r} differ in shape: {sorted(shapes)}")
        stacked = np.stack([point.output for point in self.points])
        return stacked.reshape(self.shape + stacked.shape[1:])

    def table(self) -> pd.DataFrame:
        """One row per point run: the parameter columns, then the summary columns."""
        return pd.DataFrame([{**point.params, **point.summary} for point in self.points])

    @property
    def measurements(self) -> list[str]:
        """The summary columns, object counts first."""
        names = list(dict.fromkeys(key for point in self.points for key in point.summary))
        return sorted(names, key=lambda name: not name.endswith(".count"))

    def point_at(self, index: Sequence[int]) -> SweepPoint:
        """The point at a grid position (one index per parameter)."""
        if len(index) != len(self.shape) or not all(
            0 <= i < n for i, n in zip(index, self.shape, strict=True)
        ):
            raise IndexError(f"grid position {tuple(index)} is outside the grid {self.shape}")
        flat = int(np.ravel_multi_index(tuple(index), self.shape))
        return self.points[flat]


def output_stage(pipeline: Pipeline) -> str:
    """The last stage with an image, mask or labels output.

    Raises
    ------
    PipelineError
        If every stage gives a table.
    """
    for stage in reversed(pipeline.stages):
        if stage.returns in _IMAGE_KINDS:
            return stage.name
    raise PipelineError("the pipeline has no stage with an image, mask or labels output")


def sweep_summary(pipeline: Pipeline, outputs: Mapping[str, Any]) -> dict[str, float]:
    """The summary of one run: of every table stage (:func:`summarize`), as in ``images.csv``.

    Without a table stage: the object count and mean area (in pixels) of the last labels
    or mask output (a mask's connected components), as ``<stage>.count`` and
    ``<stage>.mean_area``; empty when there is neither.
    """
    summary: dict[str, float] = {}
    for name in pipeline.table_stages:
        summary.update(summarize(name, outputs[name]))
    if summary:
        return summary
    for stage in reversed(pipeline.stages):
        if stage.returns in ("labels", "mask") and stage.name in outputs:
            return _label_summary(stage.name, stage.returns, outputs[stage.name])
    return summary


def _label_summary(name: str, kind: str, data: np.ndarray) -> dict[str, float]:
    labels = ndi.label(data)[0] if kind == "mask" else np.asarray(data)
    areas = np.bincount(labels.ravel().astype(np.int64, copy=False))[1:]
    areas = areas[areas > 0]
    return {
        f"{name}.count": int(areas.size),
        f"{name}.mean_area": float(areas.mean()) if areas.size else float("nan"),
    }


def sweep_one_image(
    pipeline: Pipeline,
    image: np.ndarray,
    sweep: Mapping[str, Sequence[Any]],
    *,
    stage: str | None = None,
    on_result: Callable[[SweepPoint], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ImageSweep:
    """Run ``pipeline`` on ``image`` for every parameter set of ``sweep``.

    Parameters
    ----------
    pipeline : Pipeline
    image : (M, N) ndarray
    sweep : dict of str to list
        ``{'stage.param': [values]}``, one or two keys (a grid).
    stage : str, optional
        The stage whose output is kept; default: the last image, mask or labels stage.
    on_result : callable, optional
        Called with each :class:`SweepPoint` as it is done.
    cancelled : callable, optional
        Checked before every stage; True stops the sweep (the result is then incomplete).

    Returns
    -------
    ImageSweep
        Its ``points`` in grid order; ``stack()`` gives the outputs as one array.

    Examples
    --------
    >>> result = sweep_one_image(pipeline, image, {"blurred.sigma": [1, 2, 3]})
    >>> result.stack().shape
    (3, 256, 256)
    """
    result = ImageSweep(pipeline, sweep, stage)
    for point in result.run(image, cancelled):
        if on_result is not None:
            on_result(point)
    return result


# -- plot -----------------------------------------------------------------------------


def plot_sweep(
    axes: Axes, result: ImageSweep, measurement: str, selected: Sequence[int] | None = None
) -> None:
    """Draw ``measurement`` against the first swept parameter on ``axes``.

    One line (gid ``'sweep'``) for a single parameter; for a grid, one line per value of
    the second parameter (gids ``'sweep:<value>'``). Values that are not numbers are
    placed at 0, 1, 2 ... and named on the axis. ``selected`` (a grid position) is
    marked with a ring (gid ``'selected'``).
    """
    key = result.parameters[0]
    values = result.values[key]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    x = [float(v) for v in values] if numeric else list(range(len(values)))
    n_points = len(result.points)

    def y_of(indices: list[int]) -> list[float]:
        out = []
        for i in indices:
            value = result.points[i].summary.get(measurement, math.nan) if i < n_points else math.nan
            out.append(float(value))
        return out

    if len(result.shape) == 1:
        axes.plot(x, y_of(list(range(len(values)))), marker="o", color="C0", gid="sweep")
    else:
        second = result.parameters[1]
        n2 = result.shape[1]
        for j, value in enumerate(result.values[second]):
            indices = [i * n2 + j for i in range(len(values))]
            axes.plot(x, y_of(indices), marker="o", gid=f"sweep:{value}", label=f"{second}={value}")
        axes.legend(fontsize="small")
    if not numeric:
        axes.set_xticks(x, [str(v) for v in values])
    if selected is not None and len(selected) == len(result.shape):
        flat = int(np.ravel_multi_index(tuple(selected), result.shape))
        if flat < n_points:
            axes.plot(
                [x[selected[0]]],
                y_of([flat]),
                marker="o",
                markersize=12,
                markerfacecolor="none",
                markeredgecolor="C3",
                linestyle="none",
                gid="selected",
            )
    axes.set_xlabel(key)
    axes.set_ylabel(measurement)
