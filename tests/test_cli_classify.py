"""The command line with classifier stages, end to end in a new process: a small synthetic
folder, a pipeline file with its training file beside it, a run on worker processes,
and a tampered training file refused with exit status 2 before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage import filters

from napari_batch_pipeline.core.stages.training import write_training
from napari_batch_pipeline.core.synthetic import nuclei_image

PIPELINE = """\
version: 1
name: painted nuclei
stages:
  - name: nuclei
    function: pixel_classifier
    params: {{training: training/cells.npz, training_sha256: {sha}, trees: 10,
              features: {{sigma_min: 1, sigma_max: 8}}, output: mask, foreground: 2}}
    save: true
  - name: labels
    function: label
  - name: cells
    function: measure
    inputs: {{labels: labels, intensity: input}}
"""


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("napari-batch-pipeline")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "napari_batch_pipeline.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_classifier_pipeline_runs_from_the_command_line(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for number in range(3):
        tifffile.imwrite(images / f"field {number}.tif", nuclei_image((96, 96), 6, 6.0, seed=10 + number))
    trained_on = nuclei_image((96, 96), 6, 6.0, seed=0)
    truth = filters.gaussian(trained_on, 2, preserve_range=True) > filters.threshold_otsu(trained_on)
    painted = np.zeros(truth.shape, np.uint8)
    painted[::4, ::3] = np.where(truth[::4, ::3], 2, 1)
    project = tmp_path / "project"
    sha = write_training(project / "training" / "cells.npz", [{"image": trained_on, "labels": painted}])
    (project / "nuclei.yaml").write_text(PIPELINE.format(sha=sha), encoding="utf-8")

    elsewhere = tmp_path / "elsewhere"  # the training file is found beside the pipeline file
    elsewhere.mkdir()
    result = _cli(
        "run",
        project / "nuclei.yaml",
        images,
        "-o",
        tmp_path / "out",
        "--executor",
        "processes",
        "--workers",
        "2",
        "--quiet",
        cwd=elsewhere,
    )
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "out" / "images.csv")
    assert list(frame["status"]) == ["done"] * 3
    assert (frame["cells.count"] >= 4).all()  # the nuclei were found
    for number in range(3):
        mask = tifffile.imread(tmp_path / "out" / "nuclei" / f"field {number}.tif")
        image = tifffile.imread(images / f"field {number}.tif")
        reference = filters.gaussian(image, 2, preserve_range=True) > filters.threshold_otsu(image)
        iou = (mask.astype(bool) & reference).sum() / (mask.astype(bool) | reference).sum()
        assert iou > 0.8

    write_training(project / "training" / "cells.npz", [{"image": trained_on, "labels": painted[::-1]}])
    refused = _cli("run", project / "nuclei.yaml", images, "-o", tmp_path / "again", cwd=elsewhere)
    assert refused.returncode == 2
    assert "cells.npz" in refused.stderr and "does not match its hash" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "again" / "images.csv").exists()
