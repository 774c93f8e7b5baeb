"""The command line, end to end in subprocesses: run, estimate, demo, stages, exit status,
the run folder, clear errors and Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import tifffile
import yaml

from napari_batch_pipeline import cli as cli_module
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import STAGES
from napari_batch_pipeline.core.synthetic import nuclei_image

SLOW_PIPELINE = """\
version: 1
name: slow nuclei
stages:
  - {name: background, function: white_tophat, params: {radius: 20}}
  - {name: blurred, function: gaussian, params: {sigma: 1}}
  - {name: mask, function: threshold}
  - {name: labels, function: label, save: true}
  - {name: nuclei, function: measure, inputs: {labels: labels, intensity: input}}
"""


def cli(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``napari-batch-pipeline ARGS`` as a user would; output as text."""
    return subprocess.run(
        [*_command(), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def _command() -> list[str]:
    script = Path(sys.executable).with_name("napari-batch-pipeline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "napari_batch_pipeline.cli"]


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Three small synthetic images."""
    folder = tmp_path / "images"
    folder.mkdir()
    for number in range(3):
        image = nuclei_image(shape=(96, 96), n_nuclei=6, radius=6, seed=number)
        tifffile.imwrite(folder / f"cell {number + 1}.tif", image)
    return folder


# -- stages -----------------------------------------------------------------------------------


def test_stages_lists_every_built_in_stage() -> None:
    result = cli("stages")
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line and not line[0].isspace()]
    assert sorted(listed) == sorted(STAGES)
    for name in ("gaussian", "threshold", "label", "measure", "voronoi_otsu_labeling", "watershed"):
        assert name in listed
    assert "sigma = 2.0" in result.stdout
    assert "'otsu'" in result.stdout
    # each quality column with its unit and CellProfiler counterpart
    assert "-> focus_score: var / mean of the raw values; CellProfiler's FocusScore x R" in result.stdout
    assert "-> saturated_fraction: pixels at the image's maximum, a fraction; CellProfiler's" in result.stdout
    assert "PercentMaximal / 100" in result.stdout
    assert "-> power_log_log_slope: CellProfiler's PowerLogLogSlope" in result.stdout


# -- run --------------------------------------------------------------------------------------


def test_run_writes_the_run_folder(
    tmp_path: Path, pipeline_file: Path, pipeline: Pipeline, images: Path
) -> None:
    out = tmp_path / "out"
    result = cli("run", pipeline_file, images, "-o", out, "--executor", "threads", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "3 done, 0 failed" in result.stdout
    assert str(out / "images.csv") in result.stdout

    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "images.csv",
        "labels",
        "nuclei.csv",
        "pipeline.yaml",
        "run.json",
        "summary.csv",
        "summary.png",
    ]
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["cell 1.tif", "cell 2.tif", "cell 3.tif"]

    written = yaml.safe_load((out / "pipeline.yaml").read_text(encoding="utf-8"))
    assert written == pipeline.to_dict()
    assert written["stages"][1]["params"] == {"method": "otsu", "block_size": 35, "offset": 0.0}

    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    for package in ("python", "numpy", "scikit-image", "napari-batch-pipeline"):
        assert info["versions"][package][0].isdigit(), package
    assert info["command"].startswith("napari-batch-pipeline run")
    assert "--executor threads" in info["command"]
    assert (info["executor"], info["workers"], info["strategy"], info["sweep"]) == (
        "threads",
        2,
        "vertical",
        {},
    )
    assert info["started"] <= info["finished"]
    assert info["status"] == "finished"
    assert info["counts"] == {"tasks": 3, "done": 3, "failed": 0, "skipped": 0, "pending": 0}
    assert info["input_dir"] == str(images.resolve())

    table = pd.read_csv(out / "images.csv")
    assert table["image"].tolist() == ["cell 1.tif", "cell 2.tif", "cell 3.tif"]
    assert list(table.columns[:4]) == ["image", "status", "error", "seconds"]
    assert {"nuclei.count", "nuclei.mean_area", "nuclei.mean_intensity_mean"} <= set(table.columns)
    nuclei = pd.read_csv(out / "nuclei.csv")
    assert list(nuclei.columns) == ["image", "label", "area", "intensity_mean"]
    assert nuclei.groupby("image").size().tolist() == table["nuclei.count"].tolist()


def test_run_with_repeated_sweeps_is_a_grid(tmp_path: Path, pipeline_file: Path, images: Path) -> None:
    out = tmp_path / "out"
    result = cli(
        "run",
        pipeline_file,
        images,
        "-o",
        out,
        "--executor",
        "serial",
        "--limit",
        "2",
        "--sweep",
        "blurred.sigma=1,2,3",
        "--sweep",
        "mask.method=otsu,li",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "images.csv")
    assert len(table) == 2 * 3 * 2
    assert list(table.columns[:3]) == ["image", "blurred.sigma", "mask.method"]
    assert sorted(set(table["blurred.sigma"])) == [1.0, 2.0, 3.0]
    nuclei = pd.read_csv(out / "nuclei.csv")
    assert list(nuclei.columns[:3]) == ["image", "blurred.sigma", "mask.method"]
    assert (out / "labels" / "cell 1__blurred.sigma=3.0,mask.method=li.tif").exists()
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["sweep"] == {"blurred.sigma": [1, 2, 3], "mask.method": ["otsu", "li"]}


def test_run_exit_1_when_a_task_fails(tmp_path: Path, pipeline_file: Path, images: Path) -> None:
    (images / "cell 4.tif").write_bytes(b"")
    result = cli("run", pipeline_file, images, "-o", tmp_path / "out", "--executor", "serial", "--quiet")
    assert result.returncode == 1
    assert "failed cell 4.tif" in result.stdout and "zero-byte" in result.stdout
    assert "Traceback" not in result.stderr


# -- clear errors, exit 2 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        "invalid pipeline",
        "missing pipeline",
        "missing input folder",
        "bad sweep",
        "unknown sweep parameter",
        "unwritable output",
        "different pipeline",
        "zero workers",
    ],
)
def test_unusable_input_is_exit_2_with_one_clear_line(
    tmp_path: Path, pipeline_file: Path, pipeline_yaml: str, images: Path, case: str, cli_here
) -> None:
    # the installed command in a subprocess for the first case, main() in this process for
    # the others: the same code and output, without an interpreter's start-up each
    command = cli if case == "invalid pipeline" else cli_here
    pipeline, folder, out = pipeline_file, images, tmp_path / "out"
    extra: list[str] = []
    expected = ""
    if case == "invalid pipeline":
        pipeline = tmp_path / "bad.yaml"
        pipeline.write_text(pipeline_yaml.replace("sigma: 2", "sigma: two"), encoding="utf-8")
        expected = "stage 'blurred', params.sigma"
    elif case == "missing pipeline":
        pipeline = tmp_path / "nope.yaml"
        expected = "does not exist"
    elif case == "missing input folder":
        folder = tmp_path / "no such folder"
        expected = "does not exist"
    elif case == "bad sweep":
        extra = ["--sweep", "blurred.sigma"]
        expected = "STAGE.PARAM=V1,V2"
    elif case == "unknown sweep parameter":
        extra = ["--sweep", "blurred.size=1,2"]
        expected = "unknown parameter"
    elif case == "unwritable output":
        blocker = tmp_path / "a file"
        blocker.write_text("not a folder")
        out = blocker / "out"  # no folder can be made inside a regular file, even as root
        expected = "cannot be written"
    elif case == "different pipeline":
        other = tmp_path / "other.yaml"
        other.write_text(pipeline_yaml.replace("sigma: 2", "sigma: 3"), encoding="utf-8")
        first = command("run", other, folder, "-o", out, "--executor", "serial", "--quiet")
        assert first.returncode == 0, first.stderr
        expected = "different pipeline"
    elif case == "zero workers":
        extra = ["--workers", "0"]
        expected = "workers"
    before = tree(tmp_path)
    result = command("run", pipeline, folder, "-o", out, "--executor", "serial", *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert tree(tmp_path) == before  # nothing ran: nothing was written or touched


# -- options are never guessed; help with examples ---------------------------------------------


def test_an_abbreviated_option_is_refused_with_exit_2(
    tmp_path: Path, pipeline_file: Path, images: Path
) -> None:
    result = cli("run", pipeline_file, images, "-o", tmp_path / "out", "--worker", "2")
    assert result.returncode == 2
    assert "unrecognized arguments: --worker" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "p.yaml", "in", "-o", "out", "--exec", "serial"],
        ["run", "p.yaml", "in", "-o", "out", "--out", "x"],
        ["rerun", "old", "-o", "out", "--work", "2"],
        ["estimate", "p.yaml", "in", "--memory", "1G"],
        ["demo", "--image", "2"],
        ["export-script", "p.yaml", "--out", "s.py"],
        ["run", "-o", "out"],  # PIPELINE and INPUT_DIR are required
    ],
)
def test_every_command_refuses_what_it_would_have_to_guess(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        cli_module.build_parser().parse_args(argv)
    assert raised.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_run_help_shows_a_usage_line_with_the_required_arguments_and_examples(capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        cli_module.build_parser().parse_args(["run", "--help"])
    assert raised.value.code == 0
    text = capsys.readouterr().out
    usage = text.split("\n\n")[0]
    assert "PIPELINE INPUT_DIR" in usage and "[PIPELINE]" not in usage
    examples = text.split("examples:")[1]
    assert "napari-batch-pipeline run nuclei.yaml images/ -o results/" in examples
    assert "--executor dask" in examples and "--sweep" in examples
    for flag in ("--verbose", "--quiet", "--fresh", "--workers"):
        assert flag in text


def test_run_from_run_is_still_understood_as_rerun() -> None:
    parse = cli_module.build_parser().parse_args
    for argv in (["run", "--from-run", "old", "-o", "new"], ["run", "-o", "new", "--from-run=old"]):
        args = parse(cli_module._compatible(argv))
        assert (args.command, args.from_run, args.output) == ("rerun", "old", "new")


def test_rerun_repeats_a_run_into_a_new_folder(tmp_path: Path, pipeline_file: Path, images: Path) -> None:
    first = tmp_path / "first"
    done = cli(
        "run", pipeline_file, images, "-o", first, "--executor", "serial", "--sweep", "blurred.sigma=1,2"
    )
    assert done.returncode == 0, done.stderr
    again = tmp_path / "again"
    result = cli("rerun", first, "-o", again, "--quiet")
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(pd.read_csv(first / "nuclei.csv"), pd.read_csv(again / "nuclei.csv"))
    assert json.loads((again / "run.json").read_text(encoding="utf-8"))["executor"] == "serial"
    itself = cli("rerun", first, "-o", first)
    assert itself.returncode == 2 and "new output folder" in itself.stderr


# -- logs: this package's progress; other libraries only when they warn ------------------------

#: messages distributed logs at INFO for every LocalCluster (scheduler, nanny, worker, client)
DASK_INFO = (
    "Scheduler at:",
    "dashboard at:",
    "State start",
    "Start Nanny at",
    "Register worker",
    "Starting worker compute stream",
    "Starting established connection",
    "Receive client connection",
    "Remove client",
    "Closing scheduler",
    "Scheduler closing",
)


def test_dask_run_quiet_shows_progress_but_no_dask_info(
    tmp_path: Path, pipeline_file: Path, images: Path
) -> None:
    result = cli(
        "run",
        pipeline_file,
        images,
        "-o",
        tmp_path / "out",
        "--executor",
        "dask",
        "--workers",
        "1",
        "--quiet",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "3 task(s) with dask x1" in result.stderr  # this package's own log line
    assert [line for line in result.stderr.splitlines() if any(m in line for m in DASK_INFO)] == []
    assert "3 done, 0 failed" in result.stdout


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, package = logging.getLogger(), logging.getLogger(cli_module.PACKAGE_LOGGER)
    handlers, levels = list(root.handlers), (root.level, package.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    package.setLevel(levels[1])


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("verbose", [False, True])
def test_library_info_logs_show_only_with_verbose(verbose: bool, capsys) -> None:
    distributed = logging.getLogger("distributed.scheduler")
    distributed.setLevel(logging.INFO)  # as distributed sets its own loggers
    try:
        cli_module.configure_logging(verbose=verbose)
        cli_module.configure_logging(verbose=verbose)  # again: one handler, not two
        logging.getLogger("napari_batch_pipeline.core.batch").info("12 task(s) with dask x2")
        distributed.info("Scheduler at: tcp://127.0.0.1:1")
        distributed.warning("Worker process still alive")
        logging.getLogger("napari_batch_pipeline").debug("details")
    finally:
        distributed.setLevel(logging.NOTSET)
    lines = capsys.readouterr().err.splitlines()
    expected = ["12 task(s) with dask x2"]
    expected += ["Scheduler at: tcp://127.0.0.1:1"] if verbose else []
    expected += ["Worker process still alive"]
    expected += ["details"] if verbose else []
    assert lines == expected


# -- estimate ---------------------------------------------------------------------------------


def test_core_messages_get_the_flags_of_the_options_they_speak_of(
    tmp_path: Path, pipeline_file: Path, images: Path, cli_here
) -> None:
    cli = cli_here  # main() in this process: four commands without four interpreters' start-up
    out = tmp_path / "out"
    first = cli("run", pipeline_file, images, "-o", out, "--executor", "serial", "--quiet")
    assert first.returncode == 0, first.stderr
    other = tmp_path / "other.yaml"
    other.write_text(pipeline_file.read_text().replace("sigma: 2", "sigma: 3"), encoding="utf-8")
    refused = cli("run", other, images, "-o", out, "--executor", "serial", "--quiet")
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, refused.stderr
    assert "start fresh" in lines[0] and lines[0].endswith("(command line: --fresh)")
    fresh = cli("run", other, images, "-o", out, "--executor", "serial", "--quiet", "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    scheduler = cli(
        "run", other, images, "-o", out, "--scheduler", "tcp://127.0.0.1:1", "--executor", "serial"
    )
    assert scheduler.returncode == 2
    assert "dask executor" in scheduler.stderr and "--scheduler, --executor" in scheduler.stderr


def test_estimate_prints_and_writes_nothing(tmp_path: Path, pipeline_file: Path, images: Path) -> None:
    before = tree(tmp_path)
    result = cli(
        "estimate",
        pipeline_file,
        images,
        "--executor",
        "processes",
        "--workers",
        "2",
        "--sweep",
        "blurred.sigma=1,2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "3 image(s) x 2 parameter set(s)" in result.stdout
    assert "6 task(s) on 2 worker(s)" in result.stdout
    assert "memory" in result.stdout
    assert tree(tmp_path) == before

    tight = cli("estimate", pipeline_file, images, "--memory-budget", "1K", cwd=tmp_path)
    assert tight.returncode == 0
    assert "warning:" in tight.stdout and "--memory-budget" in tight.stdout
    assert tree(tmp_path) == before


# -- demo -------------------------------------------------------------------------------------


def test_demo_runs_each_dataset_with_its_parameters_and_summarizes(tmp_path: Path) -> None:
    from napari_batch_pipeline.core.demo import DATASETS

    out = tmp_path / "demo"
    result = cli("demo", out, "--images", "2", "--executor", "serial", "--quiet")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.split()[:2] == ["image", "status"])
    assert "nuclei.count" in header and "labels.spot_sigma" in header
    assert result.stdout.count("nuclei_0") >= 6 and "done" in result.stdout
    assert "finished: 6 done, 0 failed" in result.stdout
    table = pd.read_csv(out / "results" / "images.csv")
    assert table["status"].tolist() == ["done"] * 6
    assert (table["nuclei.count"] > 10).all()
    for folder, (_, values) in DATASETS.items():
        rows = table[table["folder"] == folder]
        assert len(rows) == 2
        for column, value in values.items():
            assert (rows[column] == value).all(), (folder, column)
    assert (out / "nuclei.yaml").exists() and (out / "params.csv").exists()
    # the per-dataset summary, printed and written
    summary = pd.read_csv(out / "results" / "summary.csv")
    assert sorted(summary["folder"]) == sorted(DATASETS)
    assert "summary by group" in result.stdout and "nuclei.area.mean" in result.stdout
    assert (out / "results" / "summary.png").read_bytes().startswith(b"\x89PNG")
    area = summary.set_index("folder")["nuclei.area.mean"]
    assert area["small_dim"] < area["medium"] < area["large_bright"]


def test_the_illumination_demo_corrects_each_plate_and_plots_before_and_after(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = cli("demo", out, "--illumination", "--images", "3", "--executor", "serial", "--quiet")
    assert result.returncode == 0, result.stderr
    groups = pd.read_csv(out / "results" / "groups.csv")
    assert groups["group"].tolist() == ["plate_1", "plate_2"] and groups["images"].tolist() == [3, 3]
    assert sorted(p.name for p in (out / "results" / "illum").iterdir()) == ["plate_1.tif", "plate_2.tif"]
    assert (out / "illumination.png").read_bytes().startswith(b"\x89PNG")
    assert "before and after" in result.stdout


# -- Ctrl-C -----------------------------------------------------------------------------------


@pytest.fixture
def slow_run(tmp_path: Path) -> tuple[Path, Path]:
    """A pipeline file and 24 images that take a few seconds together."""
    folder = tmp_path / "slow images"
    folder.mkdir()
    for number in range(24):
        image = nuclei_image(shape=(128, 128), n_nuclei=8, radius=6, seed=number)
        tifffile.imwrite(folder / f"img{number + 1}.tif", image)
    pipeline = tmp_path / "slow.yaml"
    pipeline.write_text(SLOW_PIPELINE, encoding="utf-8")
    return pipeline, folder


def test_ctrl_c_cancels_cleanly_and_a_rerun_completes(tmp_path: Path, slow_run: tuple[Path, Path]) -> None:
    pipeline, folder = slow_run
    out = tmp_path / "out"
    argv = [
        *_command(),
        "run",
        str(pipeline),
        str(folder),
        "-o",
        str(out),
        "--executor",
        "processes",
        "--workers",
        "2",
        "--quiet",
    ]
    process = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ledger = out / ".ledger.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if ledger.exists() and ledger.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before Ctrl-C"
        os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole process group
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "cancelled:" in stdout
    assert not [p for p in out.rglob("*") if ".part." in p.name or p.name.endswith(".part")]
    table = pd.read_csv(out / "images.csv")
    assert len(table) == 24
    assert (table["status"] == "pending").sum() >= 12
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["status"] == "cancelled"

    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    table = pd.read_csv(out / "images.csv")
    assert (table["status"] == "done").all()
    nuclei = pd.read_csv(out / "nuclei.csv")
    assert nuclei.groupby("image", sort=False).size().to_dict() == dict(
        zip(table["image"], table["nuclei.count"], strict=True)
    )
    assert len(list((out / "labels").iterdir())) == 24
