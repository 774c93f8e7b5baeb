"""The groups of a group stage: which tasks learn one result together, and its name.

A group stage (see DESIGN, "Group stages") has ``group_by`` key columns: ``folder``,
``image``, metadata fields, parameter-table key columns. The tasks whose values of
those columns agree, and that run the group stage and everything upstream of it with
the same swept parameters, form one group; each group gets one result, named by its
values (``all`` for a single group; ``top`` for the images at the top of the input
folder when grouped by folder). Without ``group_by`` in the pipeline file a group stage
groups by ``folder``: one group per folder of a recursive run, one group (``all``) in a
run of one folder. Everything here is checked before any image is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PipelineError
from ..pipeline.model import Pipeline
from ..run_folder.layout import param_label
from ..run_folder.tables import FOLDER, IMAGE
from .tasks import Task

__all__ = ["Group", "plan_groups"]

#: the name of the one group of every image
ALL = "all"
#: the ``folder`` of images at the top of the input folder, and its group's name
TOP, TOP_NAME = ".", "top"


@dataclass(frozen=True)
class Group:
    """The tasks of one group of one group stage.

    Attributes
    ----------
    stage : str
        The group stage.
    name : str
        The group's file stem: its values joined by ``__`` (``all`` without columns),
        then the swept parameters that reach the stage, if any.
    columns : dict
        The ``group_by`` columns and their values.
    tasks : list of Task
        The group's tasks, in plan order.
    """

    stage: str
    name: str
    columns: dict[str, Any]
    tasks: tuple[Task, ...]

    @property
    def members(self) -> list[Task]:
        """One task per image of the group (its first), in image order: whose output of
        the stages upstream the group's statistic takes."""
        seen: dict[str, Task] = {}
        for task in self.tasks:
            seen.setdefault(task.field, task)
        return list(seen.values())


def plan_groups(pipeline: Pipeline, tasks: Sequence[Task]) -> list[Group]:
    """Every group of every group stage of ``pipeline`` over ``tasks``.

    Raises
    ------
    PipelineError
        If a ``group_by`` column is not a column of the tasks, the parameter table gives
        a group stage's parameters different values within one group, or two groups
        would share a file name.
    """
    groups: list[Group] = []
    for stage in pipeline.group_stages:
        columns = pipeline[stage].group_by or ()
        if FOLDER in columns and all(task.folder == TOP for task in tasks):
            columns = tuple(c for c in columns if c != FOLDER)  # one folder: no group apart
        reaching = {stage, *pipeline.upstream(stage)}
        found: dict[tuple[Any, ...], list[Task]] = {}
        for task in tasks:
            values = _columns(task)
            missing = [c for c in columns if c not in values]
            if missing:
                raise PipelineError(
                    f"group_by names {missing[0]!r}, which is not a column of the images; "
                    f"expected one of {', '.join(sorted(values))}",
                    stage=stage,
                    key="group_by",
                )
            swept = {k: v for k, v in task.params.items() if k.partition(".")[0] in reaching}
            identity = (*(values[c] for c in columns), param_label(swept))
            found.setdefault(identity, []).append(task)
        names: dict[str, tuple[Any, ...]] = {}
        for identity, grouped in found.items():
            _check_same_params(stage, grouped)
            *keys, label = identity
            name = "__".join(TOP_NAME if v == TOP else _safe(v) for v in keys) or ALL
            name += f"__{_safe(label)}" if label else ""
            if names.setdefault(name.casefold(), identity) != identity:
                raise PipelineError(
                    f"two groups would both be saved as {stage}/{name}.tif (values that print "
                    "alike); rename the values or group by other columns",
                    stage=stage,
                    key="group_by",
                )
            groups.append(Group(stage, name, dict(zip(columns, keys, strict=True)), tuple(grouped)))
    return groups


def _columns(task: Task) -> dict[str, Any]:
    """The values a task can be grouped by."""
    return {IMAGE: task.image, FOLDER: task.folder, **task.metadata}


def _check_same_params(stage: str, tasks: Sequence[Task]) -> None:
    """Refuse a parameter table that sets the group stage's parameters apart in one group."""
    first = {k: v for k, v in tasks[0].table_params.items() if k.partition(".")[0] == stage}
    for task in tasks[1:]:
        mine = {k: v for k, v in task.table_params.items() if k.partition(".")[0] == stage}
        if mine != first:
            raise PipelineError(
                f"the parameter table gives one group different values ({param_label(first) or 'none'} "
                f"for {tasks[0].image!r}, {param_label(mine) or 'none'} for {task.image!r}); a group "
                "learns one result, so give its images the same values or group them apart",
                stage=stage,
                key="params",
            )


def _safe(value: Any) -> str:
    """A file-name friendly form of a group value."""
    text = str(value)
    return "".join(c if c.isalnum() or c in ".-_=," else "-" for c in text)
