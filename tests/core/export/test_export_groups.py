"""The exported script makes the engine's group passes: the same tables, group results and groups.csv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.export.script import script_text
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image

PIPELINE = """\
version: 1
stages:
  - name: blurred
    function: gaussian
    params: {sigma: 1}
  - {name: illum, function: illumination, group_by: [plate], params: {statistic: median, smoothing: 5}}
  - {name: flat, function: correct_illumination, inputs: {image: input, illumination: illum}}
  - {name: foreground, function: threshold, params: {method: li}}
  - {name: objects, function: label}
  - name: cells
    function: measure
    inputs: {labels: objects, intensity: flat}
    params: {properties: [area, intensity_mean, centroid]}
"""
METADATA = r"(?P<plate>p\d)_\d+"


@pytest.fixture
def plates(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rows, cols = np.indices((64, 64))
    vignetting = 1 - 0.5 * ((rows - 31.5) ** 2 + (cols - 31.5) ** 2) / (2 * 31.5**2)
    for plate in range(2):
        for index in range(3):
            image = nuclei_image((64, 64), n_nuclei=6, radius=5.0, seed=10 * plate + index)
            tifffile.imwrite(folder / f"p{plate + 1}_{index}.tif", (image * vignetting).astype(np.uint16))
    (folder / "p1_7.tif").write_bytes(b"not a tiff")  # left out of p1, counted
    return folder


def test_the_script_learns_the_groups_the_engine_learns(plates: Path, tmp_path: Path) -> None:
    pipeline = Pipeline.from_text(PIPELINE)
    run_batch(pipeline, plates, tmp_path / "engine", metadata=METADATA)
    script = tmp_path / "script.py"
    script.write_text(script_text(pipeline), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(plates), str(tmp_path / "script"), "--metadata", METADATA],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # the broken file's task failed
    engine, exported = tmp_path / "engine", tmp_path / "script"
    pd.testing.assert_frame_equal(
        pd.read_csv(engine / "images.csv").drop(columns="seconds"),
        pd.read_csv(exported / "images.csv").drop(columns="seconds"),
    )
    assert (engine / "cells.csv").read_text() == (exported / "cells.csv").read_text()
    pd.testing.assert_frame_equal(
        pd.read_csv(engine / "groups.csv").drop(columns=["seconds", "key"]),
        pd.read_csv(exported / "groups.csv").drop(columns=["seconds", "key"]),
    )
    for name in ("p1.tif", "p2.tif"):
        np.testing.assert_array_equal(
            tifffile.imread(engine / "illum" / name), tifffile.imread(exported / "illum" / name)
        )
    assert not (exported / "intermediate").exists()
