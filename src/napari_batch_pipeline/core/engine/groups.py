"""Group stages in a run: the passes before each image's chain can go on.

A group stage (see DESIGN, "Group stages") needs the output of its input stage for
every image of its group. Whatever the strategy and executor, a run with group stages
makes three passes:

A. :func:`prepare_member`: for every image of every group still needed, the group
   stage's input is computed and kept on disk as a content-keyed intermediate (the
   horizontal strategy's, so that strategy reuses it), images in parallel;
B. :func:`compute_group`: each group's result, once, from those intermediates read in
   image order (the mean streams, the median reads chunks of rows), groups in parallel,
   saved as ``<stage>/<group>.tif`` with the pixel size of its first image;
C. the rest of each image's chain, by the strategy, with the group results given
   (:attr:`TaskJob.groups`).

A group's key hashes the identity and content stamps of the members it learnt from, the
keys of everything upstream and the stage's parameters; ``groups.csv`` records it (and
the images left out), so that a resumed run reuses a result whose key did not change, and
a task's ledger fingerprint holds the keys of its groups, so that a replaced member
re-runs its group's tasks and nothing else. A result learnt without some members (their
upstream failed) has the key of those it learnt from, not the planned one: a later run
retries the missing members and, once one is done, learns the group again and runs its
tasks again; while they still fail, the saved result is kept.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path
from ..images.fields import read_field, spacing_of
from ..pipeline.model import Pipeline
from ..plan.groups import Group
from ..plan.tasks import Task
from ..run_folder.groups import (
    GROUP,
    GROUP_KEY,
    GROUP_LEFT_OUT,
    GROUP_STAGE,
    join_left_out,
    read_groups,
    split_left_out,
    write_groups,
)
from ..run_folder.layout import RunLayout
from ..run_folder.outputs import save_image
from ..run_folder.records import TaskRecord, format_traceback
from ..stages.illumination import ImagesOnDisk
from .events import StageProgress
from .executors import Executor
from .horizontal import UnitResult, intermediate_path
from .jobs import TaskJob, failure_message, load_pipeline

__all__ = [
    "GroupJob",
    "GroupPasses",
    "GroupResult",
    "MemberJob",
    "compute_group",
    "member_path",
    "prepare_member",
]


@dataclass(frozen=True)
class MemberJob:
    """Pass A for one image of a group: the group stage's input, computed to disk."""

    stage: str
    task: TaskJob


@dataclass(frozen=True)
class GroupJob:
    """Pass B for one group: its usable members, in image order."""

    stage: str
    name: str
    members: tuple[TaskJob, ...]


@dataclass(frozen=True)
class GroupResult:
    """What pass B reports for a group."""

    done: bool
    seconds: float
    error: str = ""
    traceback: str | None = None


def member_path(task: TaskJob, pipeline: Pipeline, stage: str) -> Path:
    """Where the input of group stage ``stage`` for ``task``'s image is kept: the
    horizontal intermediate of the stage it takes, or for a loaded image, one keyed alike."""
    source = pipeline[stage].inputs[pipeline[stage].spec.main_arg]
    if source in pipeline.input_names:
        field = f"{task.field_stem}__{task.stamp}" if task.stamp else task.field_stem
        return task.layout.intermediate(source, pipeline.source_key(source), field, table=False)
    return intermediate_path(task, pipeline, source)


def prepare_member(job: MemberJob) -> UnitResult:
    """Pass A: compute the group stage's input for one image (the stages it needs only)."""
    try:
        pipeline = load_pipeline(job.task)
        target = member_path(job.task, pipeline, job.stage)
        if not target.exists():
            _write_member(job.task, pipeline, job.stage, target)
    except Exception as error:
        return UnitResult(False, failure_message(error), format_traceback(error))
    return UnitResult(True)


def _write_member(task: TaskJob, pipeline: Pipeline, stage: str, target: Path) -> None:
    loaded = read_field(task.input)
    needed = pipeline.upstream(stage)
    available = pipeline.images_of(loaded.images)
    for name in pipeline.stage_names:
        if name in needed:
            available[name] = pipeline.run_stage(name, available, spacing=loaded.spacing)
    config = pipeline[stage]
    result = np.asarray(available[config.inputs[config.spec.main_arg]])
    with atomic_path(target) as temporary, temporary.open("wb") as handle:
        np.save(handle, result, allow_pickle=False)


def compute_group(job: GroupJob) -> GroupResult:
    """Pass B: one group's result from its members' intermediates, saved as a TIFF."""
    start = time.perf_counter()
    try:
        first = job.members[0]
        pipeline = load_pipeline(first)
        paths = [member_path(m, load_pipeline(m), job.stage) for m in job.members]
        result = np.asarray(pipeline.run_group(job.stage, ImagesOnDisk(paths)))
        spacing = spacing_of(first.input.pixel_size, result.ndim)
        save_image(first.layout.group_result(job.stage, job.name), result, spacing)
    except Exception as error:
        seconds = round(time.perf_counter() - start, 4)
        return GroupResult(False, seconds, failure_message(error), format_traceback(error))
    return GroupResult(True, round(time.perf_counter() - start, 4))


@dataclass
class _Planned:
    """A group of the plan with its key, its members' jobs and its tasks' keys."""

    group: Group
    #: the stage's key (its parameters and everything upstream)
    stage_key: str
    members: list[TaskJob]
    #: per member: what identifies its input to the statistic (name, content, upstream)
    identities: list[list[str]]
    #: the group's tasks: key -> field (image, scene, time point)
    tasks: dict[str, str]

    @property
    def key(self) -> str:
        """The key of a result learnt from every member."""
        return self.key_of(self.members)

    def key_of(self, members: Sequence[TaskJob]) -> str:
        """The key of a result learnt from ``members`` (a part of the group, in order)."""
        used = {id(m) for m in members}
        parts: list[Any] = [self.stage_key]
        parts += [i for m, i in zip(self.members, self.identities, strict=True) if id(m) in used]
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

    def usable(self, failed: dict[tuple[str, str], str]) -> tuple[TaskJob, ...]:
        """The members whose pass A did not fail, in image order."""
        fields = [task.field for task in self.group.members]
        stage = self.group.stage
        return tuple(m for m, f in zip(self.members, fields, strict=True) if (stage, f) not in failed)

    def left_out(self, failed: dict[tuple[str, str], str]) -> list[str]:
        """The fields of the members whose pass A failed, in image order."""
        stage = self.group.stage
        return [task.field for task in self.group.members if (stage, task.field) in failed]


class GroupPasses:
    """Passes A and B of a run (see the module docstring), and what pass C needs.

    Parameters
    ----------
    groups : sequence of Group
        The plan's groups.
    job_of : callable
        The job of a task (``Runner.job``).
    layout : RunLayout
        The run folder.
    """

    def __init__(self, groups: Sequence[Group], job_of: Callable[[Task], TaskJob], layout: RunLayout):
        self.layout = layout
        self.planned = [self._plan(group, job_of) for group in groups]
        #: the jobs pass C runs, their group results given; set by :meth:`run`
        self.ready: list[TaskJob] = []
        #: the key of the result each group has now, by (stage, group); set by :meth:`run`
        self.learnt: dict[tuple[str, str], str] = {}

    @staticmethod
    def _plan(group: Group, job_of: Callable[[Task], TaskJob]) -> _Planned:
        members = [job_of(task) for task in group.members]
        pipeline = load_pipeline(members[0])
        identities = []
        for member in members:
            source = member_path(member, load_pipeline(member), group.stage)
            identities.append([member.field_stem, member.stamp, source.parent.name])
        tasks = {task.key: task.field for task in group.tasks}
        return _Planned(group, pipeline.stage_key(group.stage), members, identities, tasks)

    def fingerprint(self, task_key: str) -> list[int]:
        """Numbers that change with the keys of the task's groups (for the ledger): before
        :meth:`run`, the keys of results learnt from every member (what a task done
        earlier must have seen to be kept); after it, the keys of the results the task's
        groups hold now (what it is computed with)."""
        return [int(self.learnt.get(_id(p), p.key)[:12], 16) for p in self.planned if task_key in p.tasks]

    def left_out(self) -> list[dict[str, Any]]:
        """The groups whose result was learnt without some members, as ``run.json`` lists
        them: stage, group and the images left out (from ``groups.csv``)."""
        found = []
        for (stage, group), row in read_groups(self.layout).items():
            images = split_left_out(row)
            if images:
                found.append({"stage": stage, "group": group, "images": images})
        return found

    def run(self, pending: Sequence[TaskJob], executor: Executor) -> Iterator[StageProgress | TaskRecord]:
        """Passes A and B for the groups of ``pending`` tasks; yields progress and the
        records of tasks that cannot go on. :attr:`ready` then holds the others."""
        keys = {job.key for job in pending}
        wanted = [p for p in self.planned if keys.intersection(p.tasks)]
        current = {_id(p): p.key for p in self.planned}
        saved = read_groups(self.layout)
        rows = {k: r for k, r in saved.items() if current.get(k) == r[GROUP_KEY]}
        todo = [p for p in wanted if not (_id(p) in rows and self._result(p).is_file())]
        self.learnt = {k: r[GROUP_KEY] for k, r in rows.items()}
        failures: dict[str, str] = {}
        failed_members = yield from self._pass_a(todo, executor)
        if executor.cancelled:
            return
        for planned in todo:  # an image whose upstream failed fails its tasks of the group
            for key, field in planned.tasks.items():
                error = failed_members.get((planned.group.stage, field))
                if error is not None:
                    failures.setdefault(key, error)
        jobs = []
        for planned in todo:
            usable = planned.usable(failed_members)
            left_out = planned.left_out(failed_members)
            if not usable:  # listed, counted, never reused (no key)
                rows[_id(planned)] = self._row(planned, 0, left_out, float("nan"), key="")
                self._fail(planned, f"no usable image ({len(left_out)} failed upstream)", failures)
                continue
            learnt = planned.key_of(usable)
            before = saved.get(_id(planned))
            if before is not None and before[GROUP_KEY] == learnt and self._result(planned).is_file():
                rows[_id(planned)] = before  # the same members failed again: the same result
                self.learnt[_id(planned)] = learnt
                continue
            jobs.append((GroupJob(planned.group.stage, planned.group.name, usable), planned, left_out))
        by_job = {id(job): (planned, left_out) for job, planned, left_out in jobs}
        for done, (job, result) in enumerate(executor.map(compute_group, [j for j, _, _ in jobs]), 1):
            planned, left_out = by_job[id(job)]
            if not isinstance(result, GroupResult):
                result = GroupResult(
                    False, float("nan"), f"worker stopped: {type(result).__name__}: {result}"
                )
            key = planned.key_of(job.members) if result.done else ""
            rows[_id(planned)] = self._row(planned, len(job.members), left_out, result.seconds, key=key)
            if result.done:
                self.learnt[_id(planned)] = key
            else:
                self._fail(planned, result.error, failures)
            yield StageProgress(planned.group.stage, done, len(jobs))
        write_groups(self.layout, [rows[_id(p)] for p in self.planned if _id(p) in rows])
        yield from self._ready(pending, failures)

    def _pass_a(
        self, todo: Sequence[_Planned], executor: Executor
    ) -> Generator[StageProgress, None, dict[tuple[str, str], str]]:
        """Pass A; returns the errors of the members that failed, by (stage, field)."""
        units: dict[tuple[str, str], MemberJob] = {}
        for planned in todo:
            for task, member in zip(planned.group.members, planned.members, strict=True):
                units.setdefault((planned.group.stage, task.field), MemberJob(planned.group.stage, member))
        ids = {id(unit): unit_id for unit_id, unit in units.items()}
        failed: dict[tuple[str, str], str] = {}
        for done, (unit, result) in enumerate(executor.map(prepare_member, list(units.values())), 1):
            if not isinstance(result, UnitResult):
                result = UnitResult(False, f"worker stopped: {type(result).__name__}: {result}")
            if not result.done:
                failed[ids[id(unit)]] = result.error
            yield StageProgress(unit.stage, done, len(units))
        return failed

    def _fail(self, planned: _Planned, error: str, failures: dict[str, str]) -> None:
        message = f"group stage {planned.group.stage!r}, group {planned.group.name!r}: {error}"
        for key in planned.tasks:
            failures.setdefault(key, message)

    def _ready(self, pending: Sequence[TaskJob], failures: dict[str, str]) -> Iterator[TaskRecord]:
        """The records of pending tasks that failed; the others, their results given, ready."""
        self.ready = []
        fields: dict[str, dict[str, list[str]]] = {}
        for planned in self.planned:
            for task_key in planned.tasks:
                fields.setdefault(task_key, {})[planned.group.stage] = [
                    str(self._result(planned)),
                    self.learnt.get(_id(planned), planned.key),
                ]
        for job in pending:
            if job.key in failures:
                yield job.failure(failures[job.key], seconds=0.0)
            else:
                self.ready.append(replace(job, groups=fields.get(job.key, {})))

    def _result(self, planned: _Planned) -> Path:
        return self.layout.group_result(planned.group.stage, planned.group.name)

    @staticmethod
    def _row(
        planned: _Planned, images: int, left_out: Sequence[str], seconds: float, *, key: str
    ) -> dict[str, Any]:
        """A row of ``groups.csv``; ``key`` empty for a group that has no result."""
        group = planned.group
        return {
            GROUP_STAGE: group.stage,
            GROUP: group.name,
            **group.columns,
            "images": images,
            "images_failed": len(left_out),
            "seconds": seconds,
            GROUP_KEY: key,
            GROUP_LEFT_OUT: join_left_out(left_out),
        }


def _id(planned: _Planned) -> tuple[str, str]:
    return planned.group.stage, planned.group.name
