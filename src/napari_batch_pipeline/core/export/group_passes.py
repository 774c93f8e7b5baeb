"""The group stages' passes of an exported script, as the engine makes them.

Copied into the script with :mod:`.runtime` (so it may use only what that module may).
For every group of every group stage (:func:`~..plan.groups.plan_groups`), in stage
order: each image's input of the group stage is computed and kept as a ``.npy`` file,
then the group's result is computed once from those files, in image order, and saved as
``<stage>/<group>.tif`` with its pixel size; ``groups.csv`` lists the groups. The files
of the first pass are removed once the group's result is written. Serial and without
resume, as the rest of the script. As in the engine, the quality rules on stages listed
before a group stage that need no group's result (:func:`..pipeline.quality.rules_before`)
judge each member first: a flagged one is left out of its group and counted.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.jobs import failure_message
from ..images.fields import read_field, spacing_of
from ..pipeline.quality import QualityRule, rules_before
from ..plan.groups import Group, plan_groups
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
    write_groups,
)
from ..run_folder.layout import RunLayout
from ..run_folder.outputs import save_image
from ..run_folder.tables import summarize
from ..stages.illumination import ImagesOnDisk

__all__ = ["learn_groups"]


def learn_groups(
    pipeline: Any,
    tasks: Sequence[Task],
    layout: RunLayout,
    process: Callable[..., dict[str, Any]],
    functions: Mapping[str, Callable[..., Any]],
    quality: Sequence[tuple[str, str, float | None, float | None]] = (),
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every group's result, and the tasks that cannot go on.

    Parameters
    ----------
    pipeline : ExportedPipeline
        The stages (``group_stages``, ``upstream``, each stage's ``inputs`` and
        ``group_by``).
    tasks : sequence of Task
        The script's tasks.
    layout : RunLayout
        The output folder.
    process : callable
        ``process(images, spacing, values, given, until)``: the chain on one field, up
        to the group stage ``until``.
    functions : mapping
        Each group stage's ``function(outputs, values)``, by stage.
    quality : sequence of (stage, measurement, min, max)
        The pipeline's quality rules.

    Returns
    -------
    given : dict
        Task key -> {group stage: its group's result}.
    failures : dict
        Task key -> the message of a task whose image failed before its group stage, or
        whose group has no result.
    """
    given: dict[str, dict[str, Any]] = {task.key: {} for task in tasks}
    failures: dict[str, str] = {}
    rows = []
    rules = [QualityRule(*rule) for rule in quality]
    for group in plan_groups(pipeline, tasks):
        judged = rules_before(rules, pipeline.stages, group.stage)
        learnt = _learn(pipeline, group, layout, process, functions[group.stage], judged, given, failures)
        rows.append(learnt)
    if rows:
        write_groups(layout, rows)
    for stage in pipeline.group_stages:  # the first pass's folders, emptied group by group
        scratch = _scratch(layout, stage, "-").parent
        for folder in (scratch, scratch.parent, scratch.parent.parent):
            with contextlib.suppress(OSError):
                folder.rmdir()
    return given, failures


def _scratch(layout: RunLayout, stage: str, group: str) -> Path:
    """Where the first pass keeps a group's images: ``intermediate/<stage>/export/<group>/``."""
    return layout.intermediate(stage, "export", group, table=False).with_suffix("")


def _learn(
    pipeline: Any,
    group: Group,
    layout: RunLayout,
    process: Callable[..., dict[str, Any]],
    function: Callable[..., Any],
    rules: Sequence[QualityRule],
    given: dict[str, dict[str, Any]],
    failures: dict[str, str],
) -> dict[str, Any]:
    """One group: its members' inputs to disk (those ``rules`` flag left out), its result
    from them; its groups.csv row."""
    stage = group.stage
    source = next(iter(pipeline[stage].inputs.values()))
    folder = _scratch(layout, stage, group.name)
    paths: list[Path] = []
    usable: list[Task] = []
    flagged: list[str] = []
    for index, member in enumerate(group.members):
        try:
            if member.key in failures:  # failed before an earlier group stage
                raise RuntimeError(failures[member.key])
            loaded = read_field(member.source)
            outputs = process(loaded.images, loaded.spacing, member.values, given[member.key], stage)
            measured: dict[str, Any] = {}
            for name in dict.fromkeys(rule.stage for rule in rules):
                measured.update(summarize(name, outputs[name]))
            if rules and flag_measured(measured, rules):
                flagged.append(member.field)
                continue
            paths.append(folder / f"{index}.npy")
            paths[-1].parent.mkdir(parents=True, exist_ok=True)
            np.save(paths[-1], np.asarray(outputs[source]), allow_pickle=False)
            usable.append(member)
        except Exception as error:
            message = failures.get(member.key) or failure_message(error)
            for task in group.tasks:
                if task.field == member.field:
                    failures.setdefault(task.key, message)
    left_out = len(group.members) - len(usable) - len(flagged)
    row = {GROUP_STAGE: stage, GROUP: group.name, **group.columns, "images": len(usable)}
    row |= {"images_failed": left_out, IMAGES_FLAGGED: len(flagged), "seconds": float("nan"), GROUP_KEY: ""}
    kept = {task.field for task in usable} | set(flagged)
    row[GROUP_LEFT_OUT] = join_left_out(t.field for t in group.members if t.field not in kept)
    row[FLAGGED_LEFT_OUT] = join_left_out(flagged)
    if not usable:
        row["images"] = 0
        why = f"{left_out} failed upstream" + (f", {len(flagged)} flagged" if flagged else "")
        _fail(group, f"no usable image ({why})", failures)
        return row
    start = time.perf_counter()
    try:
        result = np.asarray(function({source: ImagesOnDisk(paths)}, usable[0].values))
        save_image(
            layout.group_result(stage, group.name),
            result,
            spacing_of(usable[0].source.pixel_size, result.ndim),
        )
    except Exception as error:
        _fail(group, failure_message(error), failures)
        return row
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    row["seconds"] = round(time.perf_counter() - start, 4)
    for task in group.tasks:
        given[task.key][stage] = result
    return row


def _fail(group: Group, error: str, failures: dict[str, str]) -> None:
    message = f"group stage {group.stage!r}, group {group.name!r}: {error}"
    for task in group.tasks:
        failures.setdefault(task.key, message)
