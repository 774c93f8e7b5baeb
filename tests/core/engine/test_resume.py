"""Resuming: finished tasks are skipped, a killed run completes with identical tables, and a
run folder never mixes two pipelines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.engine.report import Report
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.run_folder.layout import LEDGER


def ledger_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / LEDGER).read_text(encoding="utf-8").splitlines()]


def snapshot(run: Path) -> dict[str, bytes]:
    """The tables of a run folder, byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(run.glob("*.csv"))}


def test_rerun_skips_finished_tasks_and_gives_identical_tables(
    finished_run: Report, pipeline: Pipeline, image_folder: Path
) -> None:
    run = finished_run.output_dir
    before = snapshot(run)
    labels_mtime = (run / "labels" / "img1.tif").stat().st_mtime_ns
    again = run_batch(pipeline, image_folder, run)
    assert (again.skipped, again.done, again.failed, again.exit_code) == (4, 0, 0, 0)
    assert snapshot(run) == before  # seconds too: they come from the ledger
    assert (run / "labels" / "img1.tif").stat().st_mtime_ns == labels_mtime
    assert len(ledger_lines(run)) == 4  # nothing appended


def test_rerun_does_only_the_tasks_missing_from_the_ledger(
    finished_run: Report, pipeline: Pipeline, image_folder: Path, assert_same_tables: Callable
) -> None:
    run = finished_run.output_dir
    whole = snapshot(run)
    lines = (run / LEDGER).read_text(encoding="utf-8").splitlines(keepends=True)
    # as if killed while writing the third line: two whole lines, a torn one
    (run / LEDGER).write_text("".join(lines[:2]) + lines[2][:25], encoding="utf-8")
    (run / "images.csv").unlink()
    again = run_batch(pipeline, image_folder, run)
    assert (again.skipped, again.done, again.exit_code) == (2, 2, 0)
    assert snapshot(run)["nuclei.csv"] == whole["nuclei.csv"]
    images = again.images
    assert images["image"].tolist() == ["img1.tif", "img2.tif", "img3.tif", "img10.tif"]
    assert (images["status"] == "done").all()


def test_a_task_twice_in_the_ledger_gives_one_row(
    finished_run: Report, pipeline: Pipeline, image_folder: Path
) -> None:
    run = finished_run.output_dir
    before = snapshot(run)
    with (run / LEDGER).open("a", encoding="utf-8") as ledger:
        ledger.write((run / LEDGER).read_text(encoding="utf-8"))
    again = run_batch(pipeline, image_folder, run)
    assert again.skipped == 4
    assert snapshot(run) == before


def test_leftover_partial_files_are_removed_on_resume(
    finished_run: Report, pipeline: Pipeline, image_folder: Path, partial_files: Callable
) -> None:
    run = finished_run.output_dir
    (run / "labels" / ".img3.x1y2z3.part.tif").write_bytes(b"half an image")
    (run / ".images.q9.part.csv").write_text("image,sta")
    assert len(partial_files(run)) == 2
    run_batch(pipeline, image_folder, run)
    assert partial_files(run) == []
    assert len(list((run / "labels").iterdir())) == 4


def test_failed_tasks_are_retried_and_new_images_added(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path, write_images: Callable
) -> None:
    broken = image_folder / "img4.tif"
    broken.write_bytes(b"")
    run = tmp_path / "run"
    first = run_batch(pipeline, image_folder, run)
    assert (first.done, first.failed, first.exit_code) == (4, 1, 1)

    broken.unlink()
    write_images(image_folder, ["img4.tif", "img5.tif"], seed=40)
    second = run_batch(pipeline, image_folder, run)
    assert (second.skipped, second.done, second.failed, second.exit_code) == (4, 2, 0, 0)
    images = second.images
    assert images["image"].tolist() == [f"img{n}.tif" for n in (1, 2, 3, 4, 5, 10)]
    assert (images["status"] == "done").all()
    assert set(second.tables["nuclei"]["image"]) == set(images["image"])


def test_a_different_pipeline_is_refused_unless_fresh(
    finished_run: Report, pipeline_yaml: str, image_folder: Path
) -> None:
    run = finished_run.output_dir
    before = snapshot(run)
    other = Pipeline.from_text(
        pipeline_yaml.replace("name: labels", "name: objects").replace("labels: labels", "labels: objects")
    )
    with pytest.raises(PipelineError, match="different pipeline") as excinfo:
        run_batch(other, image_folder, run)
    assert "start fresh" in str(excinfo.value) and excinfo.value.options == ("fresh",)
    assert snapshot(run) == before  # refused before anything was touched
    assert Pipeline.from_yaml(run / "pipeline.yaml").stage_names == ["blurred", "mask", "labels", "nuclei"]

    report = run_batch(other, image_folder, run, fresh=True)
    assert (report.skipped, report.done, report.exit_code) == (0, 4, 0)
    assert not (run / "labels").exists()  # the old run's outputs are gone
    assert len(list((run / "objects").iterdir())) == 4
    assert Pipeline.from_yaml(run / "pipeline.yaml") == other
    assert len(ledger_lines(run)) == 4


def test_the_same_pipeline_written_differently_resumes(
    finished_run: Report, pipeline: Pipeline, image_folder: Path, tmp_path: Path
) -> None:
    # defaults spelled out and a new name: the same computation
    same = Pipeline.from_text(pipeline.to_yaml().replace("name: nuclei\n", "name: renamed\n", 1))
    again = run_batch(same, image_folder, finished_run.output_dir)
    assert again.skipped == 4


# -- killed at any moment ---------------------------------------------------------------------


def _command() -> list[str]:
    script = Path(sys.executable).with_name("napari-batch-pipeline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "napari_batch_pipeline.cli"]


@pytest.mark.parametrize(
    ("executor", "workers"),
    # one worker: a stalled test process still sees the run mid-way; auto: two threads
    [("processes", "1"), ("auto", "2")],
)
def test_killed_run_completes_with_identical_tables(
    tmp_path: Path,
    slow_case: Any,
    assert_same_tables: Callable,
    partial_files: Callable,
    executor: str,
    workers: str,
) -> None:
    killed = tmp_path / "killed"
    argv = [
        *_command(),
        "run",
        str(slow_case.pipeline_file),
        str(slow_case.folder),
        "-o",
        str(killed),
        "--executor",
        executor,
        "--workers",
        workers,
        "--quiet",
    ]
    process = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        ledger = killed / LEDGER
        deadline = time.monotonic() + 300  # a loaded CI machine starts a command slowly
        while time.monotonic() < deadline and process.poll() is None:
            if ledger.exists() and len(ledger.read_bytes().splitlines()) >= 3:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)  # the command and its worker processes
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    # killed after its third task, at the latest after its last and before its tables
    assert 3 <= len(ledger_lines(killed)) <= 24
    assert not (killed / "images.csv").exists() or len(pd.read_csv(killed / "images.csv")) == 24

    resumed = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout

    # identical to an uninterrupted run: no row missing, none twice
    assert_same_tables(killed, slow_case.whole)
    assert partial_files(killed) == []
    assert sorted(p.name for p in (killed / "labels").iterdir()) == sorted(
        p.name for p in (slow_case.whole / "labels").iterdir()
    )


def test_a_changed_input_file_is_computed_again(pipeline, tmp_path) -> None:
    from napari_batch_pipeline import run_batch
    from napari_batch_pipeline.core.synthetic import nuclei_image, write_nuclei_folder

    images = tmp_path / "changing"
    write_nuclei_folder(images, count=3, shape=(96, 96), n_nuclei=8, radius=6)
    first = run_batch(pipeline, images, tmp_path / "run")
    assert first.done == 3
    before = first.images.set_index("image")["nuclei.mean_area"]  # read now: the file is rewritten
    changed = images / "nuclei_02.tif"
    import tifffile

    tifffile.imwrite(changed, nuclei_image(shape=(96, 96), n_nuclei=3, radius=6, seed=42))
    again = run_batch(pipeline, images, tmp_path / "run")
    assert (again.skipped, again.done) == (2, 1)
    after = again.images.set_index("image")["nuclei.mean_area"]
    assert after["nuclei_02.tif"] != before["nuclei_02.tif"]
    assert after["nuclei_01.tif"] == before["nuclei_01.tif"]


@pytest.mark.parametrize("executor", ["serial", "processes"])
@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"metadata": r"(?P<plate>img\d)"}, {"metadata": r"(?P<plate>img)(?P<site>\d+)"}),
        ({"recursive": False}, {"recursive": True}),
    ],
    ids=["metadata", "recursive"],
)
def test_a_resume_with_other_metadata_or_folders_gives_a_fresh_runs_tables(
    pipeline, tmp_path, executor: str, first: dict, then: dict
) -> None:
    # Before, the per-object rows of resumed tasks kept the metadata of the run that made
    # them (old plate values, or an empty folder column), so a resumed table differed
    # from a fresh run's.
    from napari_batch_pipeline.core.synthetic import write_nuclei_folder

    folder = tmp_path / "images"
    write_nuclei_folder(folder, 3, shape=(96, 96))
    (folder / "sub").mkdir()
    write_nuclei_folder(folder / "sub", 1, shape=(96, 96), seed=5)
    options = {"executor": executor, "workers": 2}
    run_batch(pipeline, folder, tmp_path / "resumed", **options, **first)
    report = run_batch(pipeline, folder, tmp_path / "resumed", **options, **then)
    assert report.skipped >= 3
    run_batch(pipeline, folder, tmp_path / "fresh", **options, **then)
    for table in ("images.csv", "nuclei.csv"):
        resumed = pd.read_csv(tmp_path / "resumed" / table, dtype=str).drop(
            columns="seconds", errors="ignore"
        )
        fresh = pd.read_csv(tmp_path / "fresh" / table, dtype=str).drop(columns="seconds", errors="ignore")
        pd.testing.assert_frame_equal(resumed, fresh)
