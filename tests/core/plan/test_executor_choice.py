"""The auto executor: threads for built-in stages, processes for a user's code or a timeout."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline import Pipeline, run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.executor_choice import (
    ExecutorChoice,
    ThreadsMeasure,
    choose_after_measure,
    choose_executor,
    measured_tasks,
)
from napari_batch_pipeline.core.plan.batch_plan import plan_batch
from napari_batch_pipeline.core.plan.options import BatchOptions
from napari_batch_pipeline.core.stages import STAGES

USER_STAGE = """
def brighter(image: "napari.types.ImageData", by: float = 1.0) -> "napari.types.ImageData":
    return image + by
"""
USER_PIPELINE = """
version: 1
name: user code
stages:
  - name: bright
    function: "{module}:brighter"
    params: {{by: 1.0}}
    save: true
"""


def _choice(pipeline: Pipeline, **options: object) -> tuple[str, str]:
    resolved = BatchOptions(**options).resolved(pipeline)  # type: ignore[arg-type]
    return resolved.executor, resolved.executor_reason


def test_built_in_stages_run_on_threads_one_per_core(pipeline: Pipeline, monkeypatch) -> None:
    monkeypatch.setattr("napari_batch_pipeline.core.plan.options.cpu_count", lambda: 4)
    options = BatchOptions().resolved(pipeline)
    assert (options.executor, options.worker_count) == ("threads", 4)
    assert "built-in stages" in options.executor_reason


def test_one_worker_or_one_core_runs_serial(pipeline: Pipeline, monkeypatch) -> None:
    assert _choice(pipeline, workers=1)[0] == "serial"
    monkeypatch.setattr("napari_batch_pipeline.core.plan.options.cpu_count", lambda: 1)
    executor, reason = _choice(pipeline)
    assert executor == "serial" and "one core" in reason


def test_user_code_a_timeout_or_a_viewer_take_processes(
    pipeline: Pipeline, user_module: Callable[[str, str], str]
) -> None:
    module = user_module("choice_stages", USER_STAGE)
    user = Pipeline.from_text(USER_PIPELINE.format(module=module))
    executor, reason = _choice(user, workers=1)  # isolation comes before one worker
    assert executor == "processes" and "choice_stages" in reason
    assert _choice(pipeline, task_timeout=5)[0] == "processes"
    assert _choice(pipeline, low_priority=True)[0] == "processes"
    assert _choice(pipeline, scheduler="tcp://host:8786") == ("dask", "a dask scheduler address was given")


def test_a_viewer_whose_workers_are_still_starting_runs_on_threads_meanwhile(
    pipeline: Pipeline, user_module: Callable[[str, str], str]
) -> None:
    executor, reason = _choice(pipeline, low_priority=True, workers=2, workers_starting=True)
    assert executor == "threads" and "still starting" in reason
    assert _choice(pipeline, low_priority=True, workers=1, workers_starting=True)[0] == "serial"
    # a crash of a user's code, or a timeout, still needs the processes: those wait
    module = user_module("starting_stages", USER_STAGE)
    user = Pipeline.from_text(USER_PIPELINE.format(module=module))
    assert _choice(user, low_priority=True, workers_starting=True)[0] == "processes"
    assert _choice(pipeline, low_priority=True, task_timeout=5, workers_starting=True)[0] == "processes"
    assert _choice(pipeline, executor="processes", low_priority=True, workers_starting=True)[0] == "processes"


def test_a_named_executor_is_kept(pipeline: Pipeline) -> None:
    for name in ("serial", "threads", "processes"):
        options = BatchOptions(executor=name).resolved(pipeline)
        assert (options.executor, options.executor_reason) == (name, "")


def test_choice_reads_only_what_it_is_given() -> None:
    class Built:
        user_code = ()
        session_functions: list[str] = []

    assert choose_executor(Built(), workers=2, cores=2).executor == "threads"
    assert choose_executor(Built(), workers=8, cores=1).executor == "serial"


def test_the_run_records_and_announces_the_choice(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path
) -> None:
    plan = plan_batch(pipeline, image_folder, tmp_path / "planned")
    assert plan.options.executor in ("threads", "serial")
    events: list = []
    report = run_batch(pipeline, image_folder, tmp_path / "out", on_event=events.append)
    assert report.failed == 0
    info = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    assert info["executor"] == plan.options.executor
    assert info["executor_reason"] == plan.options.executor_reason != ""
    assert events[0].executor_reason == info["executor_reason"]
    named = run_batch(pipeline, image_folder, tmp_path / "named", executor="serial")
    assert named.failed == 0
    assert (
        json.loads((tmp_path / "named" / "run.json").read_text(encoding="utf-8"))["executor_reason"] is None
    )


def test_warm_workers_never_run_an_older_version_of_a_users_module(
    user_module: Callable[[str, str], str], tmp_path: Path
) -> None:
    """A module edited between two runs of one session (a viewer, a notebook) is run as
    it is now: the warm workers that imported the old one are replaced."""
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.zeros((8, 8), np.float32))
    for version in (1, 2, 3):
        sys.modules.pop("versioned_stages", None)  # this process loads the edit (a new session)
        STAGES.pop("versioned_stages:brighter", None)
        module = user_module("versioned_stages", USER_STAGE.replace("image + by", f"image + by * {version}"))
        # an edit a second later, as a person makes it (a file's identity is read again
        # when its size or modification time changes)
        os.utime(tmp_path / "modules" / "versioned_stages.py", (version, version))
        user = Pipeline.from_text(USER_PIPELINE.format(module=module))
        report = run_batch(user, folder, tmp_path / f"out{version}", workers=2)
        assert report.failed == 0, report.images["error"].tolist()
        assert json.loads((tmp_path / f"out{version}" / "run.json").read_text(encoding="utf-8"))[
            "executor"
        ] == ("processes")
        saved = tifffile.imread(tmp_path / f"out{version}" / "bright" / "a.tif")
        assert float(saved.max()) == version  # 0 + 1.0 * version, computed by this version


def brighter_here(image: "napari.types.ImageData", by: float = 1.0) -> "napari.types.ImageData":
    return image + by


def test_a_function_registered_in_this_session_runs_on_threads(tmp_path: Path) -> None:
    """A notebook's own function (registered under a plain name, or in ``__main__``) is
    found by no worker process: auto keeps it in this process, and the run works."""
    from napari_batch_pipeline.core.stages import register_stage

    register_stage(brighter_here, "brighter_here")
    try:
        folder = tmp_path / "images"
        folder.mkdir()
        tifffile.imwrite(folder / "a.tif", np.zeros((8, 8), np.float32))
        pipeline = Pipeline.from_text(
            "version: 1\nname: here\nstages:\n  - name: bright\n    function: brighter_here\n    save: true\n"
        )
        assert pipeline.session_functions == ["brighter_here"]
        executor, reason = _choice(pipeline)
        assert executor == "threads" and "brighter_here" in reason and "this session only" in reason
        assert _choice(pipeline, workers=1)[0] == "serial"
        report = run_batch(pipeline, folder, tmp_path / "out")
        assert report.done == 1, report.images["error"].tolist()
        # worker processes cannot run it: refused before anything is written, by meaning
        for options in ({"executor": "processes"}, {"task_timeout": 5}):
            with pytest.raises(PipelineError, match="exist in this session only") as refused:
                run_batch(pipeline, folder, tmp_path / "refused", **options)
            assert refused.value.options == ("executor",)
            assert not (tmp_path / "refused").exists()
        assert "auto chose it" in str(refused.value)
    finally:
        STAGES.pop("brighter_here", None)


def _measure(tasks: int, seconds: float, cpu: float, foreign: float = 0.0) -> ThreadsMeasure:
    measure = ThreadsMeasure()
    measure.tasks, measure.seconds, measure.cpu_seconds, measure.foreign_cpu_seconds = (
        tasks,
        seconds,
        cpu,
        foreign,
    )
    return measure


def test_a_chain_that_holds_the_gil_moves_to_processes_when_that_pays() -> None:
    # 6 tasks timed in 0.6 s on 2 threads that kept one core busy: the GIL held them
    held = _measure(6, 0.6, 0.6)
    choice = choose_after_measure(held, 200, workers=2, cores=2)
    assert choice.executor == "processes"
    numbers = choice.numbers or {}
    assert numbers["cores_busy_on_threads"] == 1.0 and numbers["tasks_left"] == 200
    assert numbers["predicted_seconds_processes"] < numbers["predicted_seconds_threads"] == 20.0
    assert "200 left" in choice.reason and "processes" in choice.reason
    # a few tasks left do not repay starting the workers; warm workers need no start
    assert choose_after_measure(held, 12, workers=2, cores=2).executor == "threads"
    assert choose_after_measure(held, 12, workers=2, cores=2, workers_warm=True).executor == "processes"


def test_a_chain_that_releases_the_gil_stays_on_threads() -> None:
    free = _measure(6, 0.3, 0.6)  # both cores busy on threads
    choice = choose_after_measure(free, 10_000, workers=2, cores=2)
    assert choice.executor == "threads" and (choice.numbers or {})["cores_busy_on_threads"] == 2.0


def test_cores_other_programs_take_are_not_counted_for_processes() -> None:
    # one core kept busy, but the other programs took the other: processes could not do better
    held = _measure(6, 0.6, 0.6, foreign=0.6)
    choice = choose_after_measure(held, 1000, workers=2, cores=2)
    assert choice.executor == "threads" and (choice.numbers or {})["cores_used_by_other_programs"] == 1.0
    assert choose_after_measure(_measure(0, 0.0, 0.0), 50, workers=2, cores=2).executor == "threads"


@pytest.mark.parametrize("chosen", ["threads", "processes"])
def test_auto_times_the_first_tasks_then_runs_the_rest_where_it_chose(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chosen: str
) -> None:
    """Built-in stages: the first tasks on threads, timed; the rest on the executor the
    measure chose; run.json and an event say so; the tables equal a serial run's."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(14):
        tifffile.imwrite(folder / f"img{index:02d}.tif", (rng.random((48, 48)) * 1000).astype(np.uint16))
    seen: list[ThreadsMeasure] = []

    def choose(measure: ThreadsMeasure, remaining: int, **_: object) -> ExecutorChoice:
        seen.append(measure)
        return ExecutorChoice(
            chosen, f"chosen for the test: {remaining} left", numbers={"tasks_left": remaining}
        )

    monkeypatch.setattr("napari_batch_pipeline.core.engine.measured_auto.choose_after_measure", choose)
    events: list = []
    report = run_batch(pipeline, folder, tmp_path / "auto", workers=2, on_event=events.append)
    assert report.done == 14 and report.failed == 0
    timed = measured_tasks(2)
    # the measure starts once each worker finished a task: the tasks after it count
    assert len(seen) == 1 and seen[0].tasks == timed - 2 and seen[0].seconds > 0
    kinds = [type(event).__name__ for event in events]
    at = kinds.index("ExecutorChosen")
    assert kinds[1:at].count("TaskFinished") == timed and kinds[at + 1 :].count("TaskFinished") == 14 - timed
    assert events[at].executor == chosen
    info = json.loads((tmp_path / "auto" / "run.json").read_text(encoding="utf-8"))
    assert info["executor"] == chosen and info["executor_measured"] == {"tasks_left": 14 - timed}
    assert (
        "chosen for the test" in info["executor_reason"]
        and "first tasks run on threads" in info["executor_reason"]
    )
    serial = run_batch(pipeline, folder, tmp_path / "serial", executor="serial")
    for table in ("images.csv", *(f"{stage}.csv" for stage in serial.table_stages)):
        mine = pd.read_csv(tmp_path / "auto" / table).drop(columns=["seconds"], errors="ignore")
        theirs = pd.read_csv(tmp_path / "serial" / table).drop(columns=["seconds"], errors="ignore")
        pd.testing.assert_frame_equal(mine, theirs)


def test_a_batch_no_larger_than_the_measure_is_not_measured(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path
) -> None:
    events: list = []
    run_batch(pipeline, image_folder, tmp_path / "out", workers=2, on_event=events.append)
    assert not any(type(event).__name__ == "ExecutorChosen" for event in events)
    assert "executor_measured" not in json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))


def test_auto_runs_a_batch_of_one_task_serial(pipeline: Pipeline, tmp_path: Path) -> None:
    # one image ran on a pool of two threads, one of them idle, and a tiled image was
    # given half the memory budget for a second worker that never came
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "only.tif", np.full((32, 32), 7, np.uint16))
    run_batch(pipeline, folder, tmp_path / "one", workers=2)
    info = json.loads((tmp_path / "one" / "run.json").read_text(encoding="utf-8"))
    assert info["executor"] == "serial" and info["executor_reason"] == "built-in stages only, and one task"
    plan = plan_batch(pipeline, folder, options=BatchOptions(workers=2, memory_budget=2**30))
    assert plan.options.worker_count == 1 and plan.options.tiling().budget == 2**30
    tifffile.imwrite(folder / "second.tif", np.full((32, 32), 9, np.uint16))
    two = plan_batch(pipeline, folder, options=BatchOptions(workers=2))
    assert two.options.executor == "threads" and two.options.executor_measure
    named = plan_batch(pipeline, folder, options=BatchOptions(executor="threads", workers=2, limit=1))
    assert named.options.executor == "threads"  # a named executor is kept
