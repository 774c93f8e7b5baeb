"""The options of a batch, checked in one place.

:class:`BatchOptions` holds how a batch runs (which inputs, executor, strategy, sweep,
limits); building one checks every value, so the engine, the command line and the
widget refuse the same mistakes with the same words. Messages name options by their
meaning; :attr:`PipelineError.options` names them for the command line and the widgets
to add their own wording.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..executor_choice import AUTO, EXECUTORS, choose_executor
from ..results.screen import Control, ScreenSettings
from ..tiles.kinds import tiled_chain
from ..tiles.settings import TileSettings

__all__ = ["EXECUTORS", "STRATEGIES", "BatchOptions", "cpu_count"]

STRATEGIES = ("vertical", "horizontal")


def cpu_count() -> int:
    """The number of CPU cores (at least 1)."""
    return os.cpu_count() or 1


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs; every value is checked when it is built.

    Attributes
    ----------
    pattern : str or None
        Glob on file names; None: every image file.
    recursive : bool
        Also look in subfolders.
    metadata : str or None
        A regular expression whose named groups become columns.
    executor : {'auto', 'serial', 'threads', 'processes', 'dask'}
        ``auto`` (the default) chooses one from the pipeline and the machine when the
        batch is planned (:meth:`resolved`; :mod:`..executor_choice` says how).
    workers : int or None
        Workers of a parallel executor; None: one per CPU core. Always 1 for serial.
    scheduler : str or None
        Address of a dask scheduler (the dask executor only).
    strategy : {'vertical', 'horizontal'}
    sweep : dict of str to list
        ``{'stage.param': [values]}``; several keys form a grid.
    memory_budget : int or None
        Bytes the batch may hold at once; None: half the free memory.
    limit : int or None
        Only the first ``limit`` images.
    fresh : bool
        Replace a run of another pipeline in the output folder.
    params : path or None
        A parameter table (CSV): per-dataset values keyed by folder, image or metadata
        (see :mod:`.params_table`).
    group_by : tuple of str or None
        The columns that group the run's summary; None: ``folder`` when there is one,
        else the metadata columns, else the parameter columns. A text is split at commas.
    task_timeout : float or None
        Seconds one task may run; past that its worker process is stopped and the task
        fails. Needs worker processes (the processes or dask executor): a thread cannot
        be stopped. None: no limit.
    low_priority : bool
        Worker processes run at a lower priority than this process, so that an
        interactive program running the batch (the napari viewer) always comes first.
    workers_starting : bool
        The warm worker processes of a ``low_priority`` run are still starting (the napari
        widget started them when it opened): ``auto`` runs built-in stages on threads
        instead of waiting for them.
    annotations : path or None
        A plate map (CSV): annotation columns joined into every table, keyed by folder,
        image or metadata (see :mod:`..results.annotations`).
    negative_control, positive_control : str or None
        ``COLUMN=VALUE``: the control images of a screen, by any column of the tables
        (see :mod:`..results.screen`). A positive control needs a negative one.
    table_format : {'csv', 'parquet'}
        ``parquet``: every table also as a Parquet file.
    tile : int or {'auto', 'none'}
        Images larger than memory (see :mod:`..tiles`): the tile core size in pixels per
        axis (every image larger than it is tiled), ``auto`` (tile only an image whose
        chain would not fit the memory budget) or ``none``.
    halo : int or None
        Pixels around each tile; None: the chain's reach (the least that is exact).
    max_object : int
        The object extent (pixels) a tiled measurement plans its crops for.
    levels : int
        Pyramid levels of a tiled image's saved outputs (OME-Zarr).
    well_aggregate : {'median', 'mean'}
        How the fields of a well become its row of wells.csv, the replicates of a screen
        whose images have wells.
    readout : str or None
        The measurement a screen is about (``<stage>.mean_<measurement>``), instead of
        the pipeline's ``screen: readout`` (see :mod:`..pipeline.readout`).

    Raises
    ------
    PipelineError
        For the first value that cannot work, naming the option.
    """

    pattern: str | None = None
    recursive: bool = False
    metadata: str | None = None
    executor: str = AUTO
    workers: int | None = None
    scheduler: str | None = None
    strategy: str = "vertical"
    sweep: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    memory_budget: int | None = None
    limit: int | None = None
    fresh: bool = False
    params: str | Path | None = None
    group_by: Sequence[str] | str | None = None
    task_timeout: float | None = None
    low_priority: bool = False
    workers_starting: bool = False
    annotations: str | Path | None = None
    negative_control: str | None = None
    positive_control: str | None = None
    table_format: str = "csv"
    tile: int | str = "auto"
    halo: int | None = None
    max_object: int = 128
    levels: int = 4
    well_aggregate: str = "median"
    readout: str | None = None
    #: why ``auto`` chose ``executor`` (set by :meth:`resolved`; empty when the user chose)
    executor_reason: str = field(default="", init=False, compare=False)
    #: ``auto`` runs the first tasks on threads and chooses the executor for the rest
    #: from their timings (see :mod:`..executor_choice`)
    executor_measure: bool = field(default=False, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise PipelineError(
                f"strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}", options=("strategy",)
            )
        if self.executor not in EXECUTORS:
            raise PipelineError(
                f"executor {self.executor!r}: expected one of {', '.join(EXECUTORS)}", options=("executor",)
            )
        for name in ("limit", "workers"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise PipelineError(f"{name}: expected 1 or more, got {value!r}", options=(name,))
        if self.memory_budget is not None and self.memory_budget < 1:
            raise PipelineError(
                f"memory budget: expected 1 byte or more, got {self.memory_budget}",
                options=("memory_budget",),
            )
        if self.scheduler and self.executor not in ("dask", AUTO):
            raise PipelineError(
                "a scheduler address is for the dask executor; choose the dask executor",
                options=("scheduler", "executor"),
            )
        self._check_task_timeout()
        object.__setattr__(self, "tile", self.tiling().tile)  # refuses a bad tile, halo or levels
        self.screen()  # refuses a control that is not COLUMN=VALUE, an unknown table format
        object.__setattr__(self, "sweep", {key: list(values) for key, values in (self.sweep or {}).items()})
        object.__setattr__(self, "group_by", _columns(self.group_by))

    def _check_task_timeout(self) -> None:
        value = self.task_timeout
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise PipelineError(
                f"task timeout: expected a number of seconds above 0, got {value!r}",
                options=("task_timeout",),
            )
        if self.executor not in ("processes", "dask", AUTO):
            raise PipelineError(
                f"a task timeout stops the worker process of a task that runs too long; the "
                f"{self.executor} executor runs tasks in this process: choose the processes or dask executor",
                options=("task_timeout", "executor"),
            )

    def resolved(self, pipeline: Any) -> BatchOptions:
        """These options with ``auto`` replaced by the executor it chooses for ``pipeline``.

        Raises
        ------
        PipelineError
            If the executor runs tasks in worker processes and a stage's function exists
            in this session only (``Pipeline.session_functions``): no worker could find it.
        """
        options = self._chosen(pipeline)
        options._check_tiling(pipeline)
        here = list(getattr(pipeline, "session_functions", []))
        if here and options.executor in ("processes", "dask"):
            why = f" (auto chose it: {options.executor_reason})" if self.executor == AUTO else ""
            raise PipelineError(
                f"the pipeline's function(s) {', '.join(map(repr, here))} exist in this session only "
                f"(registered under a plain name, or defined in a script or notebook): worker "
                f"processes of the {options.executor} executor cannot find them{why}; put them in a "
                "module and name them 'package.module:function', or run them on threads or serial",
                options=("executor",),
            )
        return options

    def tiling(self) -> TileSettings:
        """How the images of this batch are tiled (each worker's share of the budget)."""
        budget = self.memory_budget // self.worker_count if self.memory_budget else None
        return TileSettings(self.tile, self.halo, self.max_object, self.levels, budget)

    def tiles_within_budget(self, pipeline: Any) -> bool:
        """Whether images too large for the memory budget are tiled to fit it instead."""
        settings = self.tiling()
        if settings.tile == "none" or self.strategy != "vertical" or not settings.fits_budget():
            return False
        try:
            tiled_chain(pipeline)
        except PipelineError:
            return False
        return True

    def _check_tiling(self, pipeline: Any) -> None:
        """Refuse, before anything runs, a tile size for a pipeline that cannot run tiled."""
        settings = self.tiling()
        if not isinstance(settings.tile, int):
            return
        if self.strategy != "vertical":
            raise PipelineError(
                "tiled images run image by image: choose the vertical strategy, or tile: none",
                options=("strategy", "tile"),
            )
        chain = tiled_chain(pipeline)
        if settings.halo is not None and settings.halo < chain.radius:
            raise PipelineError(
                f"halo {settings.halo}: the pipeline's stages reach {chain.radius} pixels, so tiles need a "
                f"halo of {chain.radius} or more to give the whole image's answer; choose halo auto or "
                f"{chain.radius}",
                options=("halo",),
            )

    def _chosen(self, pipeline: Any) -> BatchOptions:
        if self.executor != AUTO:
            return self
        choice = choose_executor(
            pipeline,
            workers=self.workers or cpu_count(),
            cores=cpu_count(),
            scheduler=self.scheduler,
            task_timeout=self.task_timeout,
            low_priority=self.low_priority,
            workers_starting=self.workers_starting,
        )
        options = replace(self, executor=choice.executor)
        object.__setattr__(options, "executor_reason", choice.reason)
        object.__setattr__(options, "executor_measure", choice.measure)
        return options

    def for_tasks(self, count: int) -> BatchOptions:
        """These options for a batch of ``count`` tasks: where ``auto`` chose threads to
        measure and there is one task, nothing runs beside it, so it runs serial (no
        thread pool, and a tiled image gets the whole memory budget)."""
        if not self.executor_measure or count > 1:
            return self
        options = replace(self, executor="serial")
        object.__setattr__(options, "executor_reason", "built-in stages only, and one task")
        return options

    @property
    def worker_count(self) -> int:
        """How many tasks run at once: 1 for serial, else ``workers`` or one per core."""
        return 1 if self.executor == "serial" else (self.workers or cpu_count())

    def screen(self) -> ScreenSettings:
        """The plate map, controls and table format, as the run's conclusions take them."""
        return ScreenSettings(
            annotations=Path(self.annotations).expanduser().resolve() if self.annotations else None,
            negative=Control.parse(self.negative_control, "negative_control")
            if self.negative_control
            else None,
            positive=Control.parse(self.positive_control, "positive_control")
            if self.positive_control
            else None,
            table_format=self.table_format,
            well_aggregate=self.well_aggregate,
            readout=self.readout,
        )

    def inputs(self) -> dict[str, Any]:
        """The options that choose the inputs, as run.json records them."""
        return {
            "pattern": self.pattern,
            "recursive": self.recursive,
            "metadata": self.metadata,
            "limit": self.limit,
        }


def _columns(value: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """Grouping columns: ``'folder,condition'`` or a list; None or empty: the default."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(name, str) for name in names):
        raise PipelineError(f"group by: expected column names, got {value!r}", options=("group_by",))
    columns = tuple(name.strip() for name in names if name.strip())
    if len(set(columns)) != len(columns):
        raise PipelineError(f"group by: a column comes twice in {list(columns)}", options=("group_by",))
    return columns or None
