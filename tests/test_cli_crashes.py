"""A crash costs one row: dying workers, stages that exit or hang, SIGTERM and Ctrl-C.

Each image carries its fate in its first pixel (see ``HOSTILE``): a user stage crashes
its process with a segfault, ends it with ``os._exit``, calls ``sys.exit``, raises
KeyboardInterrupt or hangs. The command line runs in a subprocess, as a user or a
cluster scheduler runs it, and the run folder is read back with pandas.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import tifffile
from skimage.filters import threshold_otsu
from skimage.measure import label

from napari_batch_pipeline.core.synthetic import nuclei_image

HOSTILE = """
import ctypes, os, sys, time
import numpy as np

def misbehave(image: "napari.types.ImageData") -> "napari.types.ImageData":
    fate = int(np.asarray(image).flat[0])
    if fate == 1:
        ctypes.string_at(0)  # a segfault in compiled code
    elif fate == 2:
        os._exit(3)
    elif fate == 3:
        sys.exit(4)
    elif fate == 4:
        raise KeyboardInterrupt
    elif fate == 5:
        time.sleep(600)
    return image
"""

PIPELINE = """\
version: 1
name: hostile
stages:
  - {name: checked, function: "hostile_stages:misbehave"}
  - {name: mask, function: threshold, params: {method: otsu}}
  - {name: labels, function: label, save: true}
  - {name: nuclei, function: measure, params: {properties: [area]}}
"""

FINE, SEGFAULT, EXIT, SYS_EXIT, INTERRUPT, HANG = range(6)


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The pipeline file, and an environment whose Python finds the hostile stage."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "hostile_stages.py").write_text(HOSTILE, encoding="utf-8")
    pipeline = tmp_path / "hostile.yaml"
    pipeline.write_text(PIPELINE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(modules), os.environ.get("PYTHONPATH", "")])}
    return pipeline, env


def image_of(fate: int, seed: int = 0) -> np.ndarray:
    image = (nuclei_image(shape=(96, 96), n_nuclei=6, radius=6, seed=seed) // 256).astype(np.uint8)
    image.flat[0] = fate
    return image


def folder_of(path: Path, fates: list[int]) -> Path:
    """Images named ``<letter>_<fate>.tif``, in the order given (the first is first)."""
    path.mkdir()
    for number, fate in enumerate(fates):
        tifffile.imwrite(path / f"{'abcdefghijklmnop'[number]}_{fate}.tif", image_of(fate, seed=number))
    return path


def command(*args: str | Path) -> list[str]:
    script = Path(sys.executable).with_name("napari-batch-pipeline")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "napari_batch_pipeline.cli"]
    return [*base, *map(str, args)]


def expected_count(image: np.ndarray) -> int:
    """scikit-image called directly: the objects the pipeline finds in ``image``."""
    return int(label(image > threshold_otsu(image)).max())


@pytest.mark.parametrize("executor", ["processes", "dask", "auto"])
def test_each_dying_worker_costs_its_own_row_and_the_run_goes_on(
    executor: str, hostile: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    pipeline, env = hostile
    fates = [SEGFAULT, FINE, EXIT, FINE, SYS_EXIT, INTERRUPT, FINE]  # the first task crashes
    folder = folder_of(tmp_path / "images", fates)
    out = tmp_path / "out"
    done = subprocess.run(
        command("run", pipeline, folder, "-o", out, "--executor", executor, "--workers", "2", "--quiet"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # finished, with failed tasks
    assert "Traceback" not in done.stderr
    table = pd.read_csv(out / "images.csv").set_index("image")
    assert len(table) == len(fates)
    status = table["status"].to_dict()
    assert [status[f"{'abcdefg'[n]}_{fate}.tif"] for n, fate in enumerate(fates)] == [
        "done" if fate == FINE else "failed" for fate in fates
    ]
    errors = table["error"].fillna("").to_dict()
    assert "worker" in errors["a_1.tif"] and "died" in errors["a_1.tif"]
    assert "worker" in errors["c_2.tif"] and "died" in errors["c_2.tif"]
    if executor in ("processes", "auto"):  # the pool tells the worker's fate
        assert "Fatal Python error" not in done.stderr  # no crash report over the progress
        assert "SIGSEGV" in errors["a_1.tif"] and "twice" in errors["a_1.tif"]
        assert "exit status 3" in errors["c_2.tif"]
    assert "SystemExit: 4" in errors["e_3.tif"] and "'checked'" in errors["e_3.tif"]
    assert "KeyboardInterrupt" in errors["f_4.tif"]
    for number, fate in enumerate(fates):
        if fate == FINE:
            name = f"{'abcdefg'[number]}_{fate}.tif"
            assert table.loc[name, "nuclei.count"] == expected_count(image_of(fate, seed=number))
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["status"] == "finished"
    assert info["counts"] == {"tasks": 7, "done": 3, "failed": 4, "skipped": 0, "pending": 0}
    if executor == "auto":  # a user's code runs in worker processes, and the log says why
        assert info["executor"] == "processes" and "hostile_stages" in info["executor_reason"]


@pytest.mark.parametrize("executor", ["processes", "dask", "auto"])
def test_task_timeout_fails_the_stuck_task_alone(
    executor: str, hostile: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    pipeline, env = hostile
    folder = folder_of(tmp_path / "images", [FINE, HANG, FINE])
    out = tmp_path / "out"
    started = time.monotonic()
    done = subprocess.run(
        [
            *command("run", pipeline, folder, "-o", out, "--executor", executor, "--workers", "2"),
            "--task-timeout",
            "3",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 240  # not the 600 s the stage sleeps
    table = pd.read_csv(out / "images.csv").set_index("image")
    assert table["status"].to_dict() == {"a_0.tif": "done", "b_5.tif": "failed", "c_0.tif": "done"}
    assert "task timeout of 3 s" in table.loc["b_5.tif", "error"]
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["task_timeout"] == 3


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_task_timeout_needs_worker_processes(
    executor: str, hostile: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    pipeline, env = hostile
    folder = folder_of(tmp_path / "images", [FINE])
    done = subprocess.run(
        [
            *command("run", pipeline, folder, "-o", tmp_path / "out", "--executor", executor),
            "--task-timeout",
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert (
        "task timeout" in done.stderr and "--task-timeout" in done.stderr and "Traceback" not in done.stderr
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("executor", ["processes", "dask", "auto"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_cancels_promptly_writes_the_tables_and_leaves_no_worker(
    executor: str, signum: int, hostile: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    pipeline, env = hostile
    fates = [FINE, FINE, HANG, HANG, HANG, HANG, FINE, FINE]
    folder = folder_of(tmp_path / "images", fates)
    out = tmp_path / "out"
    argv = command("run", pipeline, folder, "-o", out, "--executor", executor, "--workers", "2", "--quiet")
    process = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        ledger = out / ".ledger.jsonl"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            if ledger.exists() and ledger.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.05)
        time.sleep(1)  # the hanging tasks are in flight
        assert process.poll() is None, "the run ended before the signal"
        workers = psutil.Process(process.pid).children(recursive=True)
        assert workers
        sent = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(process.pid, signum)  # as a terminal does: the whole process group
        else:
            process.send_signal(signum)  # as a scheduler or `timeout` does: the command
        _stdout, stderr = process.communicate(timeout=90)
        waited = time.monotonic() - sent
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert waited < 60, f"cancel took {waited:.1f} s"  # about 5 s on 2 quiet cores
    assert "Traceback" not in stderr
    table = pd.read_csv(out / "images.csv")
    assert len(table) == len(fates)  # every input has a row
    assert (table["status"] == "done").sum() >= 2
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["status"] == "cancelled"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(worker) for worker in workers):
        time.sleep(0.2)
    assert not [worker.pid for worker in workers if _alive(worker)], "a worker outlived the run"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


_CRASHING = """
import os
import signal
import time


def crash(image: "napari.types.ImageData") -> "napari.types.ImageData":
    os.kill(os.getpid(), signal.SIGSEGV)
    return image


def hang(image: "napari.types.ImageData") -> "napari.types.ImageData":
    time.sleep(600)
    return image
"""


@pytest.mark.parametrize("stage", ["crash", "hang"])
def test_estimate_and_a_memory_budget_measure_the_first_image_in_a_worker(tmp_path: Path, stage: str) -> None:
    # The first image ran in the command's own process: a segfaulting stage ended the run
    # with exit status 139 and nothing written (and killed napari, for the widget's
    # Estimate); a hanging one ignored the task timeout.
    import tifffile

    from napari_batch_pipeline.core.synthetic import nuclei_image

    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "bad_stages.py").write_text(_CRASHING, encoding="utf-8")
    (tmp_path / "images").mkdir()
    for number in range(2):
        tifffile.imwrite(tmp_path / "images" / f"img{number}.tif", nuclei_image(shape=(64, 64), seed=number))
    (tmp_path / "bad.yaml").write_text(
        f'version: 1\nstages:\n  - {{name: bad, function: "bad_stages:{stage}"}}\n', encoding="utf-8"
    )
    path = os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    common = ["bad.yaml", "images", "--executor", "processes", "--workers", "2", "--task-timeout", "3"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "napari_batch_pipeline.cli", *args]
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)

    started = time.monotonic()
    estimate = cli("estimate", *common)
    assert estimate.returncode == 2, estimate.stderr
    assert "could not be measured" in estimate.stderr and "Traceback" not in estimate.stderr
    assert time.monotonic() - started < 120
    run = cli("run", *common, "-o", "out", "--memory-budget", "4G")
    assert run.returncode == 1, run.stderr  # every task failed alone; the tables are written
    assert (tmp_path / "out" / "images.csv").read_text().count("failed") == 2
