"""The dask path as users run it on a cluster: a scheduler and workers started on their
own (``dask scheduler`` / ``dask worker``), the command line given the scheduler's address,
inputs and outputs on a filesystem every process sees, and a worker killed mid-task.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import tifffile
from skimage.filters import threshold_otsu
from skimage.measure import label

from napari_batch_pipeline.core.synthetic import nuclei_image

SLOW = """
import time

def slow(image: "napari.types.ImageData", seconds: float = 1.0) -> "napari.types.ImageData":
    time.sleep(seconds)
    return image
"""

PIPELINE = """\
version: 1
name: slow on a cluster
stages:
  - {name: waited, function: "cluster_stages:slow", params: {seconds: 1.5}}
  - {name: mask, function: threshold, params: {method: otsu}}
  - {name: labels, function: label, save: true}
  - {name: nuclei, function: measure, params: {properties: [area]}}
"""


#: any free port, no dashboard clash; two worker processes of one thread each
QUIET_PORTS = ["--port", "0", "--dashboard-address", ":0"]
TWO_SINGLE_THREADED = ["--nworkers", "2", "--nthreads", "1", "--dashboard-address", ":0"]


def _dask() -> list[str]:
    script = Path(sys.executable).with_name("dask")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dask"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], list[subprocess.Popen]]]:
    """A scheduler and two single-threaded workers, each started as its own command."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "cluster_stages.py").write_text(SLOW, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(modules), os.environ.get("PYTHONPATH", "")])}
    scheduler_file = tmp_path / "scheduler.json"
    started = [
        subprocess.Popen(
            [*_dask(), "scheduler", "--scheduler-file", str(scheduler_file), *QUIET_PORTS],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        address = None  # the file may exist a moment before the address is in it
        while address is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                address = json.loads(scheduler_file.read_text(encoding="utf-8"))["address"]
            time.sleep(0 if address else 0.2)
        assert address, "the scheduler wrote no address within 60 s"
        started.append(
            subprocess.Popen(
                [*_dask(), "worker", "--scheduler-file", str(scheduler_file), *TWO_SINGLE_THREADED],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        yield address, env, started
    finally:
        for process in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _cli(*args: str | Path) -> list[str]:
    script = Path(sys.executable).with_name("napari-batch-pipeline")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "napari_batch_pipeline.cli"]
    return [*base, *map(str, args)]


def test_a_run_on_a_separately_started_cluster_survives_a_killed_worker(
    cluster: tuple[str, dict[str, str], list[subprocess.Popen]], tmp_path: Path
) -> None:
    address, env, (_, workers) = cluster
    folder = tmp_path / "shared" / "images"
    folder.mkdir(parents=True)
    images = {}
    for number in range(8):
        image = (nuclei_image(shape=(96, 96), n_nuclei=5, radius=6, seed=number) // 256).astype(np.uint8)
        images[f"img{number}.tif"] = image
        tifffile.imwrite(folder / f"img{number}.tif", image)
    pipeline = tmp_path / "slow.yaml"
    pipeline.write_text(PIPELINE, encoding="utf-8")
    out = tmp_path / "shared" / "out"
    run = subprocess.Popen(
        _cli("run", pipeline, folder, "-o", out, "--executor", "dask", "--scheduler", address, "--quiet"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # once tasks are under way, kill one worker process (not its nanny) mid-task
        ledger = out / ".ledger.jsonl"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and run.poll() is None:
            if ledger.exists() and ledger.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        victims = [
            child for child in psutil.Process(workers.pid).children(recursive=True) if child.is_running()
        ]
        assert victims, "no worker process to kill"
        victims[-1].kill()
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, stderr
    table = pd.read_csv(out / "images.csv").set_index("image")
    assert (table["status"] == "done").all() and len(table) == 8  # the killed task was run again
    for name, image in images.items():
        assert table.loc[name, "nuclei.count"] == label(image > threshold_otsu(image)).max()
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["executor"] == "dask" and info["scheduler"] == address
    assert len(list((out / "labels").iterdir())) == 8
