"""The run folder's guards, through the Python API: one run at a time (the lock), ledger
records that name their pipeline, starting fresh without deleting what a run did not
write, reserved names, absurd parameter values, hostile file names, a torn ledger."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from napari_batch_pipeline.core.batch import BatchRun, run_batch
from napari_batch_pipeline.core.engine.events import TaskFinished
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.run_folder.layout import LEDGER, LOCK_FILE
from napari_batch_pipeline.core.run_folder.lock import RunLock

# -- one run at a time --------------------------------------------------------------------


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_second_run_into_a_folder_being_written_is_refused_naming_the_holder(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    out = tmp_path / "run"
    first = BatchRun(pipeline, image_folder, out, executor="serial")
    events = first.events()
    assert next(events) is not None  # first run started: it holds the folder
    assert (out / LOCK_FILE).exists()
    holder = json.loads((out / LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with pytest.raises(PipelineError, match="in use by another run") as refused:
        run_batch(pipeline, image_folder, out, executor="serial")
    assert str(out) in str(refused.value)
    with pytest.raises(PipelineError, match="in use by another run"):
        BatchRun(pipeline, image_folder, out, executor="serial", fresh=True)
    finished = list(events)
    assert first.report is not None and first.report.done == 4
    assert sum(isinstance(e, TaskFinished) for e in finished) >= 3
    assert not (out / LOCK_FILE).exists()  # released at the end
    assert run_batch(pipeline, image_folder, out, executor="serial").skipped == 4


def test_the_lock_is_released_when_the_run_is_abandoned_or_fails(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    out = tmp_path / "run"
    events = BatchRun(pipeline, image_folder, out, executor="serial").events()
    next(events)
    assert (out / LOCK_FILE).exists()
    events.close()  # a caller that stops listening (a widget closed, an exception)
    assert not (out / LOCK_FILE).exists()
    other = Pipeline.from_text(pipeline.to_yaml().replace("sigma: 2.0", "sigma: 3.0"))
    with pytest.raises(PipelineError, match="different pipeline"):
        run_batch(other, image_folder, out, executor="serial")
    assert not (out / LOCK_FILE).exists()
    assert run_batch(pipeline, image_folder, out, executor="serial").exit_code == 0


def test_a_stale_lock_of_a_dead_process_is_taken_over(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "started": "earlier", "token": "x"}
    (out / LOCK_FILE).write_text(json.dumps(stale))
    report = run_batch(pipeline, image_folder, out, executor="serial")
    assert report.exit_code == 0 and report.done == 4
    assert not (out / LOCK_FILE).exists()


def test_a_damaged_lock_file_is_stale(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_bytes(b'{"pid": ')
    lock = RunLock(tmp_path / LOCK_FILE, tmp_path)
    lock.acquire()
    assert lock.held and json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_held_by_a_live_process_or_another_host_is_respected(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        with pytest.raises(PipelineError, match=f"process {sleeper.pid} on {socket.gethostname()}"):
            RunLock(tmp_path / LOCK_FILE, tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(PipelineError, match=r"on elsewhere\.example") as refused:
        RunLock(tmp_path / LOCK_FILE, tmp_path).acquire()
    assert "delete" in str(refused.value) and LOCK_FILE in str(refused.value)


# -- ledger records name their pipeline ----------------------------------------------------


def test_a_resume_never_takes_another_pipelines_records_as_its_own(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    """Run A's ledger with run B's pipeline.yaml beside it (two runs at once, before the
    lock): B's resume recomputes every task instead of reporting A's numbers."""
    out = tmp_path / "run"
    run_batch(pipeline, image_folder, out, executor="serial")
    other = Pipeline.from_text(pipeline.to_yaml().replace("sigma: 2.0", "sigma: 4.0"))
    other.save(out / "pipeline.yaml")
    lines = [json.loads(line) for line in (out / LEDGER).read_text().splitlines()]
    assert {line["pipeline"] for line in lines} == {pipeline.hash}
    report = run_batch(other, image_folder, out, executor="serial")
    assert report.skipped == 0 and report.done == 4
    alone = run_batch(other, image_folder, tmp_path / "alone", executor="serial")
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "nuclei.csv"), pd.read_csv(alone.output_dir / "nuclei.csv")
    )


# -- starting fresh deletes only what a run wrote ----------------------------------------------


def test_fresh_into_a_folder_that_holds_no_run_deletes_nothing(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    out = tmp_path / "mine"
    (out / "labels").mkdir(parents=True)
    (out / "labels" / "hand-drawn.tif").write_bytes(b"mine")
    (out / "blurred").mkdir()
    (out / "blurred" / "notes.txt").write_text("mine")
    (out / "nuclei.csv").write_text("mine\n")
    for fresh in (True, False):
        with pytest.raises(PipelineError, match="holds no run") as refused:
            run_batch(pipeline, image_folder, out, executor="serial", fresh=fresh)
        assert "labels/" in str(refused.value) and "nuclei.csv" in str(refused.value)
    assert (out / "labels" / "hand-drawn.tif").read_bytes() == b"mine"
    assert (out / "blurred" / "notes.txt").read_text() == "mine"
    assert (out / "nuclei.csv").read_text() == "mine\n"
    assert not (out / "pipeline.yaml").exists() and not (out / LOCK_FILE).exists()


def test_fresh_in_a_run_folder_deletes_the_runs_files_and_keeps_the_users(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    out = tmp_path / "run"
    run_batch(pipeline, image_folder, out, executor="serial")
    (out / "labels" / "my notes.txt").write_text("mine")
    (out / "labels" / "mine").mkdir()
    (out / "labels" / "mine" / "drawn.tif").write_bytes(b"mine")
    (out / "README.md").write_text("mine")
    written = {p.name for p in (out / "labels").glob("*.tif")}
    assert written == {"img1.tif", "img2.tif", "img3.tif", "img10.tif"}
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    (image_folder / "img1.tif").rename(fewer / "img1.tif")
    report = run_batch(pipeline, fewer, out, executor="serial", fresh=True)
    assert report.done == 1
    assert {p.name for p in (out / "labels").glob("*.tif")} == {"img1.tif"}  # the old ones went
    assert (out / "labels" / "my notes.txt").read_text() == "mine"
    assert (out / "labels" / "mine" / "drawn.tif").read_bytes() == b"mine"
    assert (out / "README.md").read_text() == "mine"


# -- reserved names --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images", "summary", "pipeline", "run", "errors", "intermediate", "Images"])
def test_stage_names_the_run_folder_uses_are_refused(tmp_path: Path, image_folder: Path, name: str) -> None:
    text = f"version: 1\nstages:\n  - {{name: {name}, function: gaussian, save: true}}\n"
    with pytest.raises(PipelineError, match="uses for its own files") as refused:
        run_batch(Pipeline.from_text(text), image_folder, tmp_path / "run", executor="serial")
    assert refused.value.stage == name
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("group", ["image", "status", "error", "seconds", "label", "objects"])
def test_metadata_groups_named_like_bookkeeping_columns_are_refused(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path, group: str
) -> None:
    with pytest.raises(PipelineError, match=f"group name '{group}'") as refused:
        run_batch(pipeline, image_folder, tmp_path / "run", metadata=rf"img(?P<{group}>\d+)")
    assert refused.value.options == ("metadata",)
    assert not (tmp_path / "run").exists()


# -- absurd parameter values ---------------------------------------------------------------------

MASK = "{name: m, function: threshold}, "


@pytest.mark.parametrize(
    ("stage", "problem"),
    [
        ("{name: a, function: median, params: {radius: 100000000000000000000000000000000000}}", "magnitude"),
        ("{name: a, function: gaussian, params: {sigma: .inf}}", "finite"),
        ("{name: a, function: gaussian, params: {sigma: .nan}}", "finite"),
        ("{name: a, function: gaussian, params: {sigma: 50000}}", "length in pixels"),
        ("{name: a, function: voronoi_otsu_labeling, params: {spot_sigma: -2}}", "0 or more"),
        ("{name: a, function: rescale_intensity, params: {in_range: [1, .inf]}}", "finite"),
        (
            MASK + "{name: a, function: remove_small_objects, params: {min_size: -5}}",
            "0 or more",
        ),
        (
            "{name: m, function: threshold}, {name: a, function: fill_holes, params: {max_size: -1}}",
            "0 or more",
        ),
        (
            MASK + "{name: l, function: label}, {name: a, function: expand_labels, params: {distance: -1}}",
            "0 or more",
        ),
    ],
)
def test_absurd_parameter_values_are_refused_at_load(stage: str, problem: str) -> None:
    with pytest.raises(PipelineError, match=problem) as refused:
        Pipeline.from_text(f"version: 1\nstages: [{stage}]\n")
    assert refused.value.stage == "a"


def test_an_absurd_swept_value_is_refused_before_anything_runs(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    with pytest.raises(PipelineError, match="magnitude"):
        BatchRun(pipeline, image_folder, tmp_path / "run", sweep={"blurred.sigma": [1, 1e35]})


# -- hostile file names ----------------------------------------------------------------------------


def test_names_that_are_not_utf8_are_read_and_escaped_in_the_tables(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    bad = os.fsencode(image_folder) + b"/bad\xff name.tif"
    os.rename(image_folder / "img2.tif", bad)
    report = run_batch(pipeline, image_folder, tmp_path / "run", executor="serial")
    assert report.exit_code == 0 and report.done == 4
    images = pd.read_csv(tmp_path / "run" / "images.csv")
    assert "bad\\xff name.tif" in set(images["image"])
    assert (images["status"] == "done").all()
    nuclei = pd.read_csv(tmp_path / "run" / "nuclei.csv")
    assert (nuclei["image"] == "bad\\xff name.tif").sum() > 0


def test_folders_named_like_images_and_broken_links_get_a_row(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    (image_folder / "folder.tif").mkdir()
    (image_folder / "gone.tif").symlink_to(tmp_path / "nowhere.tif")
    (image_folder / "plate").mkdir()  # an ordinary folder is no input
    report = run_batch(pipeline, image_folder, tmp_path / "run", executor="serial")
    assert report.done == 4 and report.failed == 2
    images = pd.read_csv(tmp_path / "run" / "images.csv").set_index("image")
    assert "is a folder" in images.loc["folder.tif", "error"]
    assert "broken link" in images.loc["gone.tif", "error"]
    assert "plate" not in images.index


def test_an_output_folder_inside_the_input_folder_is_never_read(
    pipeline: Pipeline, image_folder: Path
) -> None:
    for _ in range(2):
        report = run_batch(
            pipeline, image_folder, image_folder / "results", recursive=True, executor="serial"
        )
        assert report.total == 4
    images = pd.read_csv(image_folder / "results" / "images.csv")
    assert not images["image"].str.startswith("results").any()


def test_another_run_folder_inside_the_input_folder_is_never_read(
    pipeline: Pipeline, image_folder: Path
) -> None:
    # A previous run's folder in the input folder was read as input with recursive (its
    # summary.png and labels became tasks, and one stopped the new run).
    run_batch(pipeline, image_folder, image_folder / "old results", recursive=True, executor="serial")
    report = run_batch(
        pipeline, image_folder, image_folder / "new results", recursive=True, executor="serial"
    )
    assert report.total == 4 and report.exit_code == 0
    assert not report.images["image"].str.startswith("old results").any()
    (image_folder / "sub").mkdir()
    (image_folder / "sub" / "img5.tif").write_bytes((image_folder / "img1.tif").read_bytes())
    again = run_batch(pipeline, image_folder, image_folder / "new results", recursive=True, executor="serial")
    assert again.total == 5  # a plain subfolder is still read


@pytest.mark.parametrize("pattern", ["/etc/*.tif", "../*.tif", "sub/../../*.tif", "~/x.tif"])
def test_a_pattern_that_leaves_the_input_folder_is_refused(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path, pattern: str
) -> None:
    with pytest.raises(PipelineError, match="inside the input folder") as refused:
        BatchRun(pipeline, image_folder, tmp_path / "run", pattern=pattern)
    assert refused.value.options == ("pattern",)


# -- the ledger is never left torn ---------------------------------------------------------------


def test_a_torn_last_ledger_line_does_not_swallow_the_next(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    out = tmp_path / "run"
    run_batch(pipeline, image_folder, out, executor="serial", limit=2)
    with (out / LEDGER).open("a") as ledger:
        ledger.write('{"key": "img3.tif", "ind')  # killed in the middle of a write
    run_batch(pipeline, image_folder, out, executor="serial", limit=3)
    report = run_batch(pipeline, image_folder, out, executor="serial")
    assert report.skipped == 3 and report.done == 1


def _forge_ledger(out: Path, names: list[str]) -> None:
    """Append ``names`` to the outputs the first ledger line lists, as a received run
    folder could."""
    ledger = out / LEDGER
    lines = ledger.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["outputs"] = [*first["outputs"], *names]
    ledger.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")


def test_fresh_deletes_no_file_a_forged_ledger_names_that_the_run_never_writes(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    out = tmp_path / "run"
    run_batch(pipeline, image_folder, out, executor="serial")
    (out / "notes.txt").write_text("mine")
    (out / "labels" / "thesis.docx").write_text("mine")
    (out / "labels" / "img1.tif.bak").write_text("mine")
    _forge_ledger(out, ["notes.txt", "labels/thesis.docx", "labels/img1.tif.bak", "nuclei.csv/x.tif"])
    report = run_batch(pipeline, image_folder, out, executor="serial", fresh=True)
    assert report.done == 4
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "labels" / "thesis.docx").read_text() == "mine"
    assert (out / "labels" / "img1.tif.bak").read_text() == "mine"


def test_fresh_never_deletes_or_writes_through_a_link_in_the_run_folder(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path
) -> None:
    out = tmp_path / "run"
    run_batch(pipeline, image_folder, out, executor="serial")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "thesis.docx").write_text("mine")
    (elsewhere / "img1.tif").write_text("mine")
    (out / "labels").rename(tmp_path / "old labels")
    (out / "labels").symlink_to(elsewhere, target_is_directory=True)
    _forge_ledger(out, ["labels/thesis.docx"])
    with pytest.raises(PipelineError, match="'labels' is a link"):
        run_batch(pipeline, image_folder, out, executor="serial", fresh=True)
    assert (elsewhere / "thesis.docx").read_text() == "mine"
    assert (elsewhere / "img1.tif").read_text() == "mine"  # listed by the ledger, behind the link
    assert sorted(p.name for p in elsewhere.iterdir()) == ["img1.tif", "thesis.docx"]
    with pytest.raises(PipelineError, match="'labels' is a link"):  # nor resumed into it
        run_batch(pipeline, image_folder, out, executor="serial")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["img1.tif", "thesis.docx"]


def test_a_pipeline_version_gets_its_own_folder_beside_the_output(tmp_path: Path) -> None:
    from napari_batch_pipeline.core.run_folder.layout import RunLayout

    first = RunLayout.version_folder(tmp_path / "out", "1a2b3c4d" * 5)
    assert first == tmp_path / "out-1a2b3c4d"
    # a version's folder gives the next version's beside it, not inside or appended
    assert RunLayout.version_folder(first, "5e6f7a8b" * 5) == tmp_path / "out-5e6f7a8b"
    assert RunLayout.version_folder(tmp_path / "out-final", "5e6f7a8b" * 5) == tmp_path / "out-final-5e6f7a8b"
