"""The auto executor: threads for built-in stages, processes for a user's code or a timeout."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_batch_pipeline import Pipeline, run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.executor_choice import choose_executor
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
