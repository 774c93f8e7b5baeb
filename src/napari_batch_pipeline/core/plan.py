"""Tasks (images x parameter sets) and the memory and time estimate of a batch."""

from __future__ import annotations

import itertools
import os
import posixpath
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from .errors import PipelineError
from .images.fields import field_columns, pixel_columns, read_field
from .images.sources import Source
from .pipeline import Pipeline
from .run_folder.layout import output_stem, param_label
from .run_folder.tables import FOLDER

__all__ = [
    "Estimate",
    "Task",
    "check_output_names",
    "estimate",
    "format_bytes",
    "held_bytes",
    "make_tasks",
    "parameter_sets",
    "parse_size",
    "parse_sweep",
    "task_label",
]

#: memory of one worker process before it holds any image (Python, numpy, scikit-image)
WORKER_BASE_BYTES = 200 * 2**20


@dataclass(frozen=True)
class Task:
    """One unit of a batch: one image with one parameter set.

    Attributes
    ----------
    index : int
        Position in the plan; tables are written in this order.
    source : Source
        The input image.
    params : dict
        The swept parameters of this task, ``{'stage.param': value}``; empty without a sweep.
        They name the task's outputs.
    table_params : dict
        The values of the parameter table's columns this task runs with: its row's, or
        the pipeline's where no row (or an empty cell) gives one; empty without a table.
    folders : bool
        The tables have a ``folder`` column (a run over subfolders).
    """

    index: int
    source: Source
    params: dict[str, Any] = field(default_factory=dict)
    table_params: dict[str, Any] = field(default_factory=dict)
    folders: bool = False

    @property
    def label(self) -> str:
        """The swept parameter set, as the outputs' names carry it (``''`` without a sweep)."""
        return param_label(self.params)

    @property
    def values(self) -> dict[str, Any]:
        """Every parameter value the task sets, as its table columns show: swept, then from
        the parameter table."""
        return {**self.params, **self.table_params}

    @property
    def folder(self) -> str:
        """The image's folder relative to the input folder, ``.`` at the top."""
        return posixpath.dirname(self.source.relative) or "."

    @property
    def image(self) -> str:
        """The ``image`` column: the input's path relative to the input folder."""
        return self.source.relative

    @property
    def metadata(self) -> dict[str, Any]:
        """The columns that say where the task's image comes from: scene, time point,
        channel files, metadata fields, pixel size."""
        folder = {FOLDER: self.folder} if self.folders else {}
        return {**folder, **field_columns(self.source), **self.source.metadata, **pixel_columns(self.source)}

    @property
    def field(self) -> str:
        """The field's identity: ``image`` with its scene and time point."""
        source = self.source
        return (
            source.relative
            + (f"#s{source.scene}" if source.scene is not None else "")
            + (f"#t{source.t}" if source.t is not None else "")
        )

    @property
    def key(self) -> str:
        """Stable identity across runs: the field and every parameter value it sets (a
        changed row of the parameter table makes a new task)."""
        values = self.values
        return self.field + ("|" + param_label(values) if values else "")

    @property
    def field_stem(self) -> str:
        """``<image path without suffix>[__s<scene>][__t<time>]``."""
        return output_stem(self.source.relative, "", self.source.scene, self.source.t)

    @property
    def output_stem(self) -> str:
        """``<image path without suffix>[__s<scene>][__t<time>][__<parameter set>]``."""
        return output_stem(self.source.relative, self.label, self.source.scene, self.source.t)


def check_output_names(tasks: Sequence[Task]) -> None:
    """Refuse, before anything runs, tasks whose outputs would share a name (files whose
    names differ only by suffix or case, parameter values that print alike).

    Raises
    ------
    PipelineError
        Naming both inputs.
    """
    seen: dict[str, Task] = {}
    for task in tasks:
        name = task.output_stem.casefold()
        other = seen.setdefault(name, task)
        if other is not task:
            what = (
                f"{other.image!r} and {task.image!r}"
                if other.image != task.image
                else f"{other.image!r} with {other.label or 'no parameters'} and with {task.label}"
            )
            raise PipelineError(
                f"{what} would write the same output files ({task.output_stem}.*, names compared "
                "without case); rename one, or choose the files with a narrower pattern",
                options=("pattern",),
            )


def task_label(key: str) -> str:
    """The parameter-set label inside a task key (``'a.tif|blurred.sigma=2.0'``), or ``''``."""
    return key.partition("|")[2]


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
    """A YAML scalar; ``1e-3`` is a float too (YAML 1.1 would read it as a string)."""
    if _FLOAT.match(text):
        return float(text)
    return yaml.safe_load(text)


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


def make_tasks(
    sources: Sequence[Source], param_sets: Sequence[Mapping[str, Any]], *, folders: bool = False
) -> list[Task]:
    """Every image with every parameter set, image by image; ``folders``: the tables get
    a ``folder`` column."""
    tasks: list[Task] = []
    for source in sources:
        for params in param_sets:
            tasks.append(Task(len(tasks), source, dict(params), folders=folders))
    return tasks


@dataclass(frozen=True)
class Estimate:
    """What a batch will cost, measured on its first image."""

    tasks: int
    workers: int
    in_flight: int
    seconds_per_task: float
    peak_bytes_per_task: int
    output_bytes_per_task: int
    total_bytes: int
    seconds: float
    budget_bytes: int

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes

    def summary(self) -> str:
        return (
            f"{self.tasks} task(s) on {self.workers} worker(s): about "
            f"{format_seconds(self.seconds)} and {format_bytes(self.total_bytes)} of memory at peak "
            f"({format_bytes(self.peak_bytes_per_task)} per task, {self.in_flight} in flight; "
            f"budget {format_bytes(self.budget_bytes)}); "
            f"{format_bytes(self.output_bytes_per_task * self.tasks)} written"
        )

    def advice(self) -> str:
        return (
            f"the batch would need about {format_bytes(self.total_bytes)} of memory, over the budget "
            f"of {format_bytes(self.budget_bytes)}; use fewer workers, the vertical strategy, "
            "or a larger memory budget"
        )

    #: the options :meth:`advice` speaks of
    advice_options = ("workers", "strategy", "memory_budget")


def measure_first(
    pipeline: Pipeline, image: np.ndarray | Mapping[str, np.ndarray], spacing: tuple[float, ...] | None = None
) -> tuple[float, int, int]:
    """Run the chain once; return seconds, peak bytes of one task and bytes of saved outputs."""
    start = time.perf_counter()
    outputs = pipeline.run(image, spacing=spacing)
    seconds = time.perf_counter() - start
    saved = sum(outputs[name].nbytes for name in pipeline.saved_stages)
    return seconds, held_bytes(image, outputs), saved


def held_bytes(image: np.ndarray | Mapping[str, np.ndarray], outputs: Mapping[str, Any]) -> int:
    """Memory one task holds at its end (the input and every stage output), plus the
    temporaries of its largest stage (about twice its output). A thread-safe stand-in
    for tracing allocations, which is not safe while other threads allocate.

    Every task of a parallel run computes it (any one may be the first to finish), so it
    stays cheap: a table counts 8 bytes a cell and per row of its index, which is exact
    for the numeric columns of measurements (pandas' deep count cost a third of a
    millisecond per task)."""
    import pandas as pd

    images = image.values() if isinstance(image, Mapping) else [image]
    sizes = [sum(np.asarray(i).nbytes for i in images)]
    for output in outputs.values():
        if isinstance(output, np.ndarray):
            sizes.append(output.nbytes)
        elif isinstance(output, pd.DataFrame):
            sizes.append(8 * (output.size + len(output)))
    return sum(sizes) + 2 * max(sizes)


def estimate(
    pipeline: Pipeline,
    sources: Sequence[Source],
    n_param_sets: int = 1,
    *,
    workers: int = 1,
    executor: str = "serial",
    budget: int | None = None,
    measured: tuple[float, int, int] | None = None,
) -> Estimate:
    """Estimate memory and time of a batch from its first readable image.

    Parameters
    ----------
    measured : (seconds, peak bytes, saved bytes), optional
        A measurement already made (see :func:`measure_first`); else one is made here.
    """
    if measured is None:
        field = None
        for source in sources[:5]:
            try:
                field = read_field(source)
                break
            except Exception:
                continue
        if field is None:
            raise PipelineError("none of the first images can be read; nothing to estimate from")
        measured = measure_first(pipeline, field.images, field.spacing)
    seconds, peak, saved = measured
    n_tasks = len(sources) * n_param_sets
    workers = max(1, workers if executor != "serial" else 1)
    in_flight = min(n_tasks, workers)
    base = WORKER_BASE_BYTES * workers if executor in ("processes", "dask") else 0
    total = base + peak * in_flight
    return Estimate(
        tasks=n_tasks,
        workers=workers,
        in_flight=in_flight,
        seconds_per_task=seconds,
        peak_bytes_per_task=peak,
        output_bytes_per_task=saved,
        total_bytes=total,
        seconds=seconds * n_tasks / workers,
        budget_bytes=budget if budget is not None else default_budget(),
    )


def default_budget() -> int:
    """Half of the memory available now."""
    try:
        import psutil

        return int(psutil.virtual_memory().available * 0.5)
    except Exception:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") * 0.5)


_UNITS = {
    "": 1,
    "B": 1,
    "K": 2**10,
    "KB": 2**10,
    "KIB": 2**10,
    "M": 2**20,
    "MB": 2**20,
    "MIB": 2**20,
    "G": 2**30,
    "GB": 2**30,
    "GIB": 2**30,
    "T": 2**40,
    "TB": 2**40,
    "TIB": 2**40,
}


def parse_size(text: str) -> int:
    """``'4G'``, ``'512 MiB'``, ``'1000000'`` -> bytes."""
    number = text.strip().upper().rstrip()
    unit = number.lstrip("0123456789. ")
    value = number[: len(number) - len(unit)].strip()
    try:
        return int(float(value) * _UNITS[unit.strip()])
    except (KeyError, ValueError):
        raise PipelineError(
            f"memory size {text!r}: expected a number with an optional unit, like 4G or 512M"
        ) from None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
