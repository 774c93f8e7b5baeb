"""The memory and time estimate of a batch, measured on its first image; sizes as text."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PipelineError
from ..images.fields import read_field
from ..images.lazy import open_region_reader
from ..images.sources import Source
from ..pipeline.model import Pipeline
from ..tiles.grid import TileGrid, expand
from ..tiles.kinds import tiled_chain
from ..tiles.settings import TileSettings

__all__ = [
    "Estimate",
    "default_budget",
    "estimate",
    "format_bytes",
    "format_seconds",
    "held_bytes",
    "measure_first",
    "measure_sources",
    "parse_size",
]

#: memory of one worker process before it holds any image (Python, numpy, scikit-image)
WORKER_BASE_BYTES = 200 * 2**20


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
    #: peak bytes of the largest image's task (the first image's, scaled by size)
    largest_peak_bytes: int = 0
    #: seconds the classifier stages' forests took to train (part of :attr:`seconds`)
    training_seconds: float = 0.0

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes

    def summary(self) -> str:
        return (
            f"{self.tasks} task(s) on {self.workers} worker(s): about "
            f"{format_seconds(self.seconds)}"
            + (
                f" (training {format_seconds(self.training_seconds)})"
                if self.training_seconds >= 0.05
                else ""
            )
            + f" and {format_bytes(self.total_bytes)} of memory at peak "
            f"({format_bytes(self.peak_bytes_per_task)} per task"
            + (
                f", {format_bytes(self.largest_peak_bytes)} for the largest image"
                if self.largest_peak_bytes > 1.5 * self.peak_bytes_per_task
                else ""
            )
            + f", {self.in_flight} in flight; "
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


def measure_sources(
    pipeline: Pipeline, sources: Sequence[Source], tiling: TileSettings | None = None
) -> tuple[float, int, int]:
    """:func:`measure_first` on the first readable of the first five ``sources``; an image
    that ``tiling`` tiles is measured on its first tile (never read whole).

    Raises
    ------
    PipelineError
        If none of them can be read.
    """
    for source in sources[:5]:
        try:
            tiled = _measure_tile(pipeline, source, tiling) if tiling is not None else None
            if tiled is not None:
                return tiled
            start = time.perf_counter()
            field = read_field(source)
            read = time.perf_counter() - start
        except Exception:
            continue
        seconds, peak, saved = measure_first(pipeline, field.images, field.spacing)
        return seconds + read, peak, saved  # a task's time includes its read, as a run's does
    raise PipelineError("none of the first images can be read; nothing to estimate from")


def _measure_tile(pipeline: Pipeline, source: Source, tiling: TileSettings) -> tuple[float, int, int] | None:
    """Seconds, bytes held and bytes saved of a tiled image, from its first tile (with its
    halo): the time scaled to every tile and to the threshold passes; None when the image
    is not tiled or the pipeline cannot run tiled."""
    if tiling.tile == "none" or (
        tiling.tile == "auto" and source.pixels is not None and source.pixels * 80 <= tiling.budget_bytes()
    ):
        return None
    try:
        chain = tiled_chain(pipeline)
    except PipelineError:
        return None
    with open_region_reader(source) as reader:
        core = tiling.core_for(reader.shape, reader.dtype)
        if core is None:
            return None
        halo = chain.radius if tiling.halo is None else tiling.halo
        grid = TileGrid(reader.shape, core)
        first = next(iter(grid))
        crop = reader.read(expand(first.core, (halo,) * len(core), reader.shape))
    seconds, held, saved = measure_first(pipeline, crop, reader.spacing)
    passes = 1 + len(chain.thresholds)
    return seconds * len(grid) * passes, held, saved * len(grid)


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
    tiling: TileSettings | None = None,
) -> Estimate:
    """Estimate memory and time of a batch from its first readable image.

    Parameters
    ----------
    measured : (seconds, peak bytes, saved bytes), optional
        A measurement already made (see :func:`measure_first`); else one is made here.
        Without one, the classifier stages' forests are trained first (not in the
        measured task's time: a run trains them once), and their training time counts once.
    """
    training = 0.0
    if measured is None and pipeline.classifier_stages:  # their forests: once per run, first
        start = time.perf_counter()
        pipeline.train()
        training = time.perf_counter() - start
    if measured is None:
        measured = measure_sources(pipeline, sources, tiling)
    seconds, peak, saved = measured
    n_tasks = len(sources) * n_param_sets
    workers = max(1, workers if executor != "serial" else 1)
    in_flight = min(n_tasks, workers)
    base = WORKER_BASE_BYTES * workers if executor in ("processes", "dask") else 0
    # memory and time grow with an image's size: the first image's, scaled to each image's
    sizes = _relative_sizes(sources)
    largest = sorted(sizes, reverse=True)[:in_flight]
    total = base + int(peak * sum(largest) * in_flight / len(largest)) if largest else base + peak * in_flight
    return Estimate(
        tasks=n_tasks,
        workers=workers,
        in_flight=in_flight,
        seconds_per_task=seconds,
        peak_bytes_per_task=peak,
        output_bytes_per_task=saved,
        total_bytes=total,
        seconds=training + seconds * (sum(sizes) if sizes else len(sources)) * n_param_sets / workers,
        budget_bytes=budget if budget is not None else default_budget(),
        largest_peak_bytes=int(peak * max(sizes)) if sizes else peak,
        training_seconds=training,
    )


def _relative_sizes(sources: Sequence[Source]) -> list[float]:
    """Each field's size relative to the first readable one's (which is measured), from the
    files' headers; empty when a size is unknown."""
    first = next((s.pixels for s in sources[:5] if s.problem is None), None)
    if not first or any(s.pixels is None for s in sources if s.problem is None):
        return []
    return [s.pixels / first for s in sources if s.problem is None and s.pixels]


def default_budget() -> int:
    """Half of the memory available now."""
    return int(available_memory() * 0.5)


def available_memory() -> int:
    """The memory available now, in bytes: Linux's ``MemAvailable`` (what psutil reports
    there), read without importing psutil (a twentieth of a second, on a one-image run's
    critical path); psutil elsewhere."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo", encoding="ascii") as file:
            kib = next(line.split()[1] for line in file if line.startswith("MemAvailable:"))
        return int(kib) * 1024
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


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
