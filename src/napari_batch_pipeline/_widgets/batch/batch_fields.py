"""The fields of the *Batch processing* widget: every option of a command-line run.

:class:`BatchFields` holds one magicgui widget per option (what to read, where to
write, how to run) and turns their values into the keyword arguments of
:class:`~napari_batch_pipeline.core.batch.BatchRun`, so that the engine's
:class:`~napari_batch_pipeline.core.plan.options.BatchOptions` checks them: the widget
refuses the same mistakes, in the same words, as the command line. :func:`field_hint`
adds the widget's wording to such a message, as the command line adds its flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    SpinBox,
    TextEdit,
    Widget,
)
from qtpy.QtWidgets import QVBoxLayout, QWidget
from superqt import QCollapsible

from ...core.errors import PipelineError
from ...core.plan.estimate import parse_size
from ...core.plan.options import EXECUTORS, STRATEGIES, cpu_count
from ...core.plan.parameters import parse_sweep
from ...core.results.screen import TABLE_FORMATS
from ...core.results.wells import WELL_AGGREGATES

__all__ = ["FIELD_LABELS", "BatchFields", "field_hint"]

#: the label of the field that sets each batch option core messages speak of
FIELD_LABELS = {
    "pattern": "pattern",
    "recursive": "recursive",
    "metadata": "metadata pattern",
    "executor": "executor",
    "workers": "workers",
    "scheduler": "scheduler",
    "strategy": "strategy",
    "sweep": "sweep",
    "memory_budget": "memory budget",
    "limit": "limit",
    "fresh": "start fresh",
    "params": "parameter table",
    "group_by": "group by",
    "task_timeout": "task timeout",
    "annotations": "plate map",
    "negative_control": "negative control",
    "positive_control": "positive control",
    "table_format": "table format",
    "well_aggregate": "well aggregate",
}


def field_hint(error: PipelineError) -> str:
    """The error's message with the fields it speaks of: ``'... (field: memory budget)'``."""
    labels = [FIELD_LABELS[name] for name in error.options if name in FIELD_LABELS]
    hint = f" (field{'s' if len(labels) > 1 else ''}: {', '.join(labels)})" if labels else ""
    return f"{error}{hint}"


class BatchFields:
    """One widget per batch option; set ``.value`` from Python.

    Attributes
    ----------
    input_dir, output_dir : FileEdit
        The folders (None: not chosen).
    pattern : LineEdit
        Glob on file names; empty: every image file.
    recursive : CheckBox
        Also look in subfolders (tables gain a ``folder`` column).
    metadata : LineEdit
        A regular expression on the relative path whose named groups become columns.
    limit : SpinBox
        Only the first N images; 0: all of them.
    pipeline : FileEdit
        The pipeline file; None: the Pipeline builder's pipeline.
    params : FileEdit
        A parameter table (CSV) of per-dataset values; None: none.
    group_by : LineEdit
        Columns that group the summary, ``folder,condition``; empty: the default.
    annotations : FileEdit
        A plate map (CSV): key columns and annotation columns joined into every table.
    negative_control, positive_control : LineEdit
        ``COLUMN=VALUE``: a screen's control images; empty: none.
    table_format : ComboBox
        ``csv``, or ``parquet`` (every table also as Parquet).
    well_aggregate : ComboBox
        ``median`` or ``mean``: how the fields of a well become its row of wells.csv.
    executor, workers, scheduler, strategy, memory_budget, task_timeout, sweep, fresh
        How the batch runs: the scheduler address is for the dask executor, the memory
        budget a size such as ``4G`` (empty: half the free memory), the task timeout in
        seconds (processes and dask executors; 0: no limit), the sweep one
        ``stage.param=v1,v2,...`` per line.
    """

    def __init__(self) -> None:
        cpus = cpu_count()
        self.input_dir = FileEdit(mode=FileDialogMode.EXISTING_DIRECTORY, nullable=True, label="input folder")
        self.pattern = LineEdit(label="pattern", tooltip="glob on file names (*.tif); empty: every image")
        self.recursive = CheckBox(text="also look in subfolders (a folder column in the tables)")
        self.metadata = LineEdit(
            label="metadata pattern",
            tooltip="optional regular expression on each image's relative path; its named groups "
            r"become columns, e.g. (?P<well>[A-H]\d+)_",
        )
        self.limit = SpinBox(
            value=0, min=0, max=10**9, label="limit", tooltip="only the first N images; 0: all of them"
        )
        self.output_dir = FileEdit(
            mode=FileDialogMode.EXISTING_DIRECTORY, nullable=True, label="output folder"
        )
        self.pipeline = FileEdit(
            mode=FileDialogMode.EXISTING_FILE,
            filter="*.yaml *.yml",
            nullable=True,
            label="pipeline",
            tooltip="a pipeline file; empty: the current pipeline of an open Pipeline builder",
        )
        self.params = _csv_file(
            "parameter table",
            "optional CSV of per-dataset values: key columns (folder, image, metadata groups) "
            "and stage.param columns",
        )
        self.group_by = LineEdit(
            label="group by",
            tooltip="columns that group summary.csv, e.g. folder,condition; "
            "empty: folder, else the metadata columns, else the parameters",
        )
        self.annotations = _csv_file(
            "plate map",
            "optional CSV of annotations (compound, dose, control...): key columns (folder, image, "
            "metadata groups such as plate and well) and annotation columns",
        )
        self.negative_control = LineEdit(
            label="negative control", tooltip="COLUMN=VALUE, e.g. control=negative: z-scores per plate"
        )
        self.positive_control = LineEdit(
            label="positive control", tooltip="COLUMN=VALUE, e.g. control=positive: Z' per plate"
        )
        self.table_format = ComboBox(choices=TABLE_FORMATS, value="csv", label="table format")
        self.well_aggregate = ComboBox(
            choices=WELL_AGGREGATES,
            value=WELL_AGGREGATES[0],
            label="well aggregate",
            tooltip="how the fields of a well become its row of wells.csv, the replicates a screen scores",
        )
        self.executor = ComboBox(
            choices=EXECUTORS,
            value="auto",
            label="executor",
            tooltip="auto: niced worker processes beside the viewer (a dask scheduler address: dask)",
        )
        self.workers = SpinBox(value=min(4, cpus), min=1, max=max(64, cpus), label="workers")
        self.scheduler = LineEdit(
            label="scheduler",
            tooltip="dask executor only: the address of a running scheduler (tcp://host:8786); "
            "empty: a local cluster",
        )
        self.strategy = ComboBox(choices=STRATEGIES, value="vertical", label="strategy")
        self.memory_budget = LineEdit(
            label="memory budget",
            tooltip="what the batch may hold at once, e.g. 4G; empty: half the free memory",
        )
        self.task_timeout = FloatSpinBox(
            value=0,
            min=0,
            max=10**7,
            step=1,
            label="task timeout",
            tooltip="seconds one task may run before its worker process is stopped and the task "
            "fails (processes or dask executor); 0: no limit",
        )
        self.sweep = TextEdit(
            label="sweep",
            tooltip="optional, one per line: stage.param=v1,v2,... (several lines form a grid)",
        )
        self.fresh = CheckBox(text="start fresh (replace a run of another pipeline there)")
        self.sweep.native.setMaximumHeight(60)

    def form(self) -> QWidget:
        """The fields laid out: what to read and where to write, then the options of a run
        (every other field) under *More options*, folded at first so that the table and
        the buttons stay in view."""
        basic = [self.input_dir, self.pattern, self.output_dir, self.pipeline]
        more = Container(widgets=[w for w in self.widgets if w not in basic])
        self.more_options = QCollapsible("More options")
        self.more_options.addWidget(more.native)
        self.more_options.layout().setContentsMargins(0, 0, 0, 0)
        form = QWidget()
        layout = QVBoxLayout(form)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(Container(widgets=basic).native)
        layout.addWidget(self.more_options)
        return form

    @property
    def widgets(self) -> list[Widget]:
        """The fields in the order the form shows them."""
        return [
            self.input_dir,
            self.pattern,
            self.recursive,
            self.metadata,
            self.limit,
            self.output_dir,
            self.pipeline,
            self.params,
            self.group_by,
            self.annotations,
            self.negative_control,
            self.positive_control,
            self.table_format,
            self.well_aggregate,
            self.executor,
            self.workers,
            self.scheduler,
            self.strategy,
            self.memory_budget,
            self.task_timeout,
            self.sweep,
            self.fresh,
        ]

    def folders(self) -> tuple[Path, Path]:
        """The input and output folders.

        Raises
        ------
        PipelineError
            If either is not chosen.
        """
        input_dir, output_dir = path_of(self.input_dir), path_of(self.output_dir)
        if not input_dir:
            raise PipelineError("choose an input folder")
        if not output_dir:
            raise PipelineError("choose an output folder")
        return input_dir, output_dir

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``BatchRun`` (see ``BatchOptions``): empty text is None.

        Raises
        ------
        PipelineError
            For a sweep or memory budget that cannot be read, naming the field.
        """
        budget = _text(self.memory_budget)
        try:
            memory_budget = parse_size(budget) if budget else None
        except PipelineError as error:
            raise PipelineError(str(error), options=("memory_budget",)) from None
        return {
            "pattern": _text(self.pattern),
            "recursive": bool(self.recursive.value),
            "metadata": _text(self.metadata),
            "limit": int(self.limit.value) or None,
            "params": path_of(self.params),
            "group_by": _text(self.group_by),
            "executor": self.executor.value,
            "workers": self.workers.value,
            "scheduler": _text(self.scheduler),
            "strategy": self.strategy.value,
            "memory_budget": memory_budget,
            "sweep": parse_sweep(_lines(self.sweep.value)),
            "fresh": bool(self.fresh.value),
            "task_timeout": float(self.task_timeout.value) or None,
            "annotations": path_of(self.annotations),
            "negative_control": _text(self.negative_control),
            "positive_control": _text(self.positive_control),
            "table_format": self.table_format.value,
            "well_aggregate": self.well_aggregate.value,
        }


def path_of(edit: FileEdit) -> Path | None:
    """A FileEdit's path; None when it is empty."""
    value = edit.value
    return value if isinstance(value, Path) else None


def _csv_file(label: str, tooltip: str) -> FileEdit:
    """A field for an optional CSV file."""
    return FileEdit(
        mode=FileDialogMode.EXISTING_FILE, filter="*.csv", nullable=True, label=label, tooltip=tooltip
    )


def _text(edit: LineEdit) -> str | None:
    text = str(edit.value or "").strip()
    return text or None


def _lines(text: str) -> Sequence[str]:
    return [line for line in str(text).splitlines() if line.strip()]
