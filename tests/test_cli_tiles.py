"""Images larger than memory from the command line: a run killed with SIGKILL mid-image
resumes and ends equal to an uninterrupted run; --fresh removes the OME-Zarr stores; the
large demo runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import zarr
from skimage import filters

PIPELINE = """\
version: 1
name: slide
stages:
  - {name: blurred, function: gaussian, params: {sigma: 2}}
  - {name: mask, function: threshold, params: {method: otsu}}
  - {name: labels, function: label, save: true}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: blurred}
    params: {properties: [area, centroid, bbox, intensity_mean, eccentricity]}
"""


def _command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "napari_batch_pipeline.cli", *map(str, args)]


def _slide(folder: Path, side: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    smooth = filters.gaussian(rng.random((side, side)), 5)
    image = ((smooth - smooth.min()) / np.ptp(smooth) * 50000).astype(np.uint16)
    tifffile.imwrite(folder / "slide.tif", image, tile=(256, 256), compression="zlib")
    return folder


def test_killed_mid_image_then_resumed_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    images = _slide(tmp_path / "images", 1500)
    pipeline = tmp_path / "slide.yaml"
    pipeline.write_text(PIPELINE)
    run = [
        "run",
        pipeline,
        images,
        "-o",
        tmp_path / "out",
        "--tile",
        "128",
        "--executor",
        "serial",
        "--quiet",
    ]
    process = subprocess.Popen(_command(*run), start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    work = tmp_path / "out" / "intermediate" / "tiles"
    while time.monotonic() < deadline and not list(work.glob("*/tile_30.npz")):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list(work.glob("*/tile_*.npz")))
    assert 30 < finished < 144  # killed mid-image
    resumed = subprocess.run(_command(*run), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    whole = subprocess.run(
        _command("run", pipeline, images, "-o", tmp_path / "whole", "--tile", "none", "--quiet"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert whole.returncode == 0, whole.stderr
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "out" / "nuclei.csv"),
        pd.read_csv(tmp_path / "whole" / "nuclei.csv"),
        check_exact=True,
    )
    store = zarr.open_group(str(tmp_path / "out" / "labels" / "slide.ome.zarr"), mode="r")
    np.testing.assert_array_equal(
        np.asarray(store["0"]), tifffile.imread(tmp_path / "whole" / "labels" / "slide.tif")
    )
    assert store.attrs["multiscales"][0]["axes"][-1]["name"] == "x" and "image-label" in store.attrs
    images_table = pd.read_csv(tmp_path / "out" / "images.csv")
    assert list(images_table["status"]) == ["done"]
    assert not (tmp_path / "out" / "intermediate").exists()

    # --fresh with another pipeline removes the stores the previous run wrote, nothing else
    other = tmp_path / "other.yaml"
    other.write_text(PIPELINE.replace("sigma: 2", "sigma: 1"))
    keep = tmp_path / "out" / "labels" / "mine.txt"
    keep.write_text("not the run's")
    fresh = subprocess.run(
        _command("run", other, images, "-o", tmp_path / "out", "--tile", "none", "--fresh", "--quiet"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert not (tmp_path / "out" / "labels" / "slide.ome.zarr").exists()
    assert (tmp_path / "out" / "labels" / "slide.tif").is_file() and keep.read_text() == "not the run's"


def test_the_large_demo_runs_tiled_and_says_time_and_memory(tmp_path: Path) -> None:
    done = subprocess.run(
        _command("demo", "--large", tmp_path / "demo", "--side", "1500", "--quiet"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "tiled at 1024 px:" in done.stdout and "peak memory" in done.stdout
    images = pd.read_csv(tmp_path / "demo" / "results" / "images.csv")
    assert images["status"].tolist() == ["done"] and images["nuclei.count"].iloc[0] > 500
    assert (tmp_path / "demo" / "results" / "labels" / "slide.ome.zarr" / "0").is_dir()
