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

Where quality rules judge the members first (:func:`..pipeline.quality.rules_before`),
pass A also computes the tables of those rules' stages (kept as horizontal intermediates)
and reports each member's measurements; a member that breaks a rule is left out of its
group's statistic and counted (``images_flagged``, ``flagged_left_out``). The key then
also holds the rules, their stages' keys and the flagged members' identities: other rules,
or a flagged image replaced, learn the group again; the same ones reuse it without pass A.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..images.fields import spacing_of
from ..pipeline.quality import QualityRule, rules_before
from ..plan.groups import Group
from ..plan.tasks import Task
from ..results.screen import flag_measured
from ..run_folder.groups import (
    FLAGGED_LEFT_OUT,
    GROUP,
    GROUP_KEY,
    GROUP_LEFT_OUT,
    GROUP_STAGE,
    IMAGES_FLAGGED,
    join_left_out,
    read_groups,
    remove_group_results,
    split_left_out,
    write_groups,
)
from ..run_folder.layout import RunLayout
from ..run_folder.links import behind_link
from ..run_folder.outputs import save_image
from ..run_folder.records import TaskRecord, format_traceback
from ..stages.illumination import ImagesOnDisk
from .events import StageProgress
from .executors import Executor
from .horizontal import MemberJob, MemberResult, intermediate_path, judged_stages, member_path, prepare_member
from .jobs import TaskJob, failure_message, load_pipeline

__all__ = [
    "GroupJob",
    "GroupPasses",
    "GroupResult",
    "compute_group",
]


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
    #: the quality rules that judge the members first, and the keys of their stages
    rules: tuple[QualityRule, ...] = ()
    judged_by: list[Any] = field(default_factory=list)

    @functools.cached_property
    def key(self) -> str:
        """The key of a result learnt from every member."""
        return self.key_of(self.members)

    def key_of(self, members: Sequence[TaskJob], flagged: Sequence[str] = ()) -> str:
        """The key of a result learnt from ``members`` (a part of the group, in order);
        with quality rules, also of the rules and of the members they flagged (``flagged``,
        their fields)."""
        used = {id(m) for m in members}
        parts: list[Any] = [self.stage_key]
        parts += [i for m, i in zip(self.members, self.identities, strict=True) if id(m) in used]
        if self.rules:
            fields = [task.field for task in self.group.members]
            out = [i for f, i in zip(fields, self.identities, strict=True) if f in set(flagged)]
            parts.append(["judged", self.judged_by, out])
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

    def expected(self, saved: dict[str, Any] | None) -> str:
        """The key a result holds when nothing changed since the row ``saved`` (None: no
        row): the same members, content, rules and stages flag the same members."""
        if not self.rules or saved is None:
            return self.key
        flagged = split_left_out(saved, FLAGGED_LEFT_OUT)
        fields = [task.field for task in self.group.members]
        kept = [m for m, f in zip(self.members, fields, strict=True) if f not in flagged]
        return self.key_of(kept, flagged)

    def usable(
        self, failed: dict[tuple[str, str], str], flagged: dict[tuple[str, str], str]
    ) -> tuple[TaskJob, ...]:
        """The members whose pass A did not fail, and that no rule flagged, in image order."""
        fields = [task.field for task in self.group.members]
        stage = self.group.stage
        return tuple(
            m
            for m, f in zip(self.members, fields, strict=True)
            if (stage, f) not in failed and not flagged.get((stage, f))
        )

    def flagged(self, flags: dict[tuple[str, str], str]) -> list[str]:
        """The fields of the members a rule flagged, in image order."""
        stage = self.group.stage
        return [task.field for task in self.group.members if flags.get((stage, task.field))]

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
        self._saved: dict[tuple[str, str], dict[str, Any]] | None = None  # groups.csv, once

    @staticmethod
    def _plan(group: Group, job_of: Callable[[Task], TaskJob]) -> _Planned:
        members = [job_of(task) for task in group.members]
        pipeline = load_pipeline(members[0])
        identities = []
        for member in members:
            source = member_path(member, load_pipeline(member), group.stage)
            identities.append([member.field_stem, member.stamp, source.parent.name])
        tasks = {task.key: task.field for task in group.tasks}
        rules = rules_before(pipeline.quality, pipeline.stages, group.stage)
        judged_by = [
            [r.to_dict() for r in rules],
            [pipeline.stage_key(s) for s in judged_stages(pipeline, group.stage)],
        ]
        return _Planned(group, pipeline.stage_key(group.stage), members, identities, tasks, rules, judged_by)

    def fingerprint(self, task_key: str) -> list[int]:
        """Numbers that change with the keys of the task's groups (for the ledger): before
        :meth:`run`, the keys of results learnt from every member (what a task done
        earlier must have seen to be kept); after it, the keys of the results the task's
        groups hold now (what it is computed with)."""
        if self._saved is None:
            self._saved = read_groups(self.layout)
        expected = {_id(p): p.expected(self._saved.get(_id(p))) for p in self.planned if task_key in p.tasks}
        return [int(self.learnt.get(k, key)[:12], 16) for k, key in expected.items()]

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
        saved = read_groups(self.layout)
        current = {_id(p): p.expected(saved.get(_id(p))) for p in self.planned}
        rows = {k: r for k, r in saved.items() if current.get(k) == r[GROUP_KEY]}
        todo = [p for p in wanted if not (_id(p) in rows and self._result(p).is_file())]
        self.learnt = {k: r[GROUP_KEY] for k, r in rows.items()}
        failures: dict[str, str] = {}
        failed_members, flags = yield from self._pass_a(todo, executor)
        if executor.cancelled:
            return
        for planned in todo:  # an image whose upstream failed fails its tasks of the group
            for key, name in planned.tasks.items():
                error = failed_members.get((planned.group.stage, name))
                if error is not None:
                    failures.setdefault(key, error)
        jobs = []
        for planned in todo:
            usable = planned.usable(failed_members, flags)
            left_out, flagged = planned.left_out(failed_members), planned.flagged(flags)
            if not usable:  # listed, counted, never reused (no key)
                rows[_id(planned)] = self._row(planned, 0, left_out, flagged, float("nan"), key="")
                why = f"{len(left_out)} failed upstream" + (f", {len(flagged)} flagged" if flagged else "")
                self._fail(planned, f"no usable image ({why})", failures)
                continue
            learnt = planned.key_of(usable, flagged)
            before = saved.get(_id(planned))
            if before is not None and before[GROUP_KEY] == learnt and self._result(planned).is_file():
                rows[_id(planned)] = before  # the same members failed again: the same result
                self.learnt[_id(planned)] = learnt
                continue
            job = GroupJob(planned.group.stage, planned.group.name, usable)
            jobs.append((job, planned, left_out, flagged))
        by_job = {id(job): (planned, left_out, flagged) for job, planned, left_out, flagged in jobs}
        for done, (job, result) in enumerate(executor.map(compute_group, [j[0] for j in jobs]), 1):
            planned, left_out, flagged = by_job[id(job)]
            if not isinstance(result, GroupResult):
                result = GroupResult(
                    False, float("nan"), f"worker stopped: {type(result).__name__}: {result}"
                )
            key = planned.key_of(job.members, flagged) if result.done else ""
            row = self._row(planned, len(job.members), left_out, flagged, result.seconds, key=key)
            rows[_id(planned)] = row
            if result.done:
                self.learnt[_id(planned)] = key
            else:
                self._fail(planned, result.error, failures)
            yield StageProgress(planned.group.stage, done, len(jobs))
        # groups no longer in the run (another grouping, images gone): their results go with
        # their rows, so that no result outlives the groups.csv row that names it
        in_run = {_id(p) for p in self.planned}
        stale = [k for k in saved if k not in in_run]
        if stale:
            remove_group_results(self.layout, {p.group.stage for p in self.planned}, stale)
        write_groups(self.layout, [rows[_id(p)] for p in self.planned if _id(p) in rows])
        yield from self._ready(pending, failures)

    def discard_members(self) -> None:
        """Delete the members' inputs pass A kept on disk (for the vertical strategy, which
        keeps no intermediates); empty folders under ``intermediate/`` go too."""
        root = self.layout.intermediate_dir
        for planned in self.planned:
            for member in planned.members:
                pipeline, stage = load_pipeline(member), planned.group.stage
                paths = [member_path(member, pipeline, stage)]
                paths += [
                    intermediate_path(member, pipeline, name) for name in judged_stages(pipeline, stage)
                ]
                for path in paths:
                    if not path.is_file() or behind_link(path, self.layout.root):
                        continue
                    path.unlink(missing_ok=True)
                    folder = path.parent
                    while folder != root and root in folder.parents:
                        try:
                            folder.rmdir()
                        except OSError:
                            break
                        folder = folder.parent
        with contextlib.suppress(OSError):
            root.rmdir()

    def _pass_a(
        self, todo: Sequence[_Planned], executor: Executor
    ) -> Generator[StageProgress, None, tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]]:
        """Pass A; returns the errors of the members that failed, and the rules each
        member breaks (empty: none), by (stage, field)."""
        units: dict[tuple[str, str], MemberJob] = {}
        rules: dict[tuple[str, str], tuple[QualityRule, ...]] = {}
        for planned in todo:
            for task, member in zip(planned.group.members, planned.members, strict=True):
                units.setdefault((planned.group.stage, task.field), MemberJob(planned.group.stage, member))
                rules[planned.group.stage, task.field] = planned.rules
        ids = {id(unit): unit_id for unit_id, unit in units.items()}
        failed: dict[tuple[str, str], str] = {}
        flags: dict[tuple[str, str], str] = {}
        for done, (unit, result) in enumerate(executor.map(prepare_member, list(units.values())), 1):
            if not isinstance(result, MemberResult):
                result = MemberResult(False, f"worker stopped: {type(result).__name__}: {result}")
            if not result.done:
                failed[ids[id(unit)]] = result.error
            elif rules[ids[id(unit)]]:
                flags[ids[id(unit)]] = flag_measured(result.measured, rules[ids[id(unit)]])
            yield StageProgress(unit.stage, done, len(units))
        return failed, flags

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
                self.ready.append(replace(job, groups=fields.get(job.key, {}), tables=_judged_tables(job)))

    def _result(self, planned: _Planned) -> Path:
        return self.layout.group_result(planned.group.stage, planned.group.name)

    @staticmethod
    def _row(
        planned: _Planned,
        images: int,
        left_out: Sequence[str],
        flagged: Sequence[str],
        seconds: float,
        *,
        key: str,
    ) -> dict[str, Any]:
        """A row of ``groups.csv``; ``key`` empty for a group that has no result."""
        group = planned.group
        return {
            GROUP_STAGE: group.stage,
            GROUP: group.name,
            **group.columns,
            "images": images,
            "images_failed": len(left_out),
            IMAGES_FLAGGED: len(flagged),
            "seconds": seconds,
            GROUP_KEY: key,
            GROUP_LEFT_OUT: join_left_out(left_out),
            FLAGGED_LEFT_OUT: join_left_out(flagged),
        }


def _judged_tables(job: TaskJob) -> dict[str, str]:
    """The tables pass A kept for ``job``'s image (quality stages that judge its groups), by
    stage, as the horizontal strategy reads them: the vertical one reads them too."""
    pipeline = load_pipeline(job)
    tables = {}
    for name in {n for stage in pipeline.group_stages for n in judged_stages(pipeline, stage)}:
        path = intermediate_path(job, pipeline, name)
        if path.is_file():
            tables[name] = str(path)
    return tables


def _id(planned: _Planned) -> tuple[str, str]:
    return planned.group.stage, planned.group.name
