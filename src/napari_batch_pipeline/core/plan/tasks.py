"""Tasks: every field of the input folder with every parameter set, and their names."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import PipelineError
from ..images.fields import field_columns, pixel_columns
from ..images.sources import Source
from ..run_folder.layout import output_stem, param_label
from ..run_folder.tables import FOLDER

__all__ = ["Task", "check_output_names", "make_tasks", "task_label"]


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
