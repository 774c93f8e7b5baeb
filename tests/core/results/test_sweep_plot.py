"""Sweeps over a folder: the grid, resume per image and parameter set, and the sweep plot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_batch_pipeline import Pipeline, run_batch
from napari_batch_pipeline.core.results.sweep_plot import default_measurement, sweep_figure, sweep_table
from napari_batch_pipeline.core.synthetic import write_nuclei_folder

SWEEP = {"blurred.sigma": [1, 2, 3], "mask.method": ["otsu", "li"]}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    write_nuclei_folder(folder, count=3, shape=(96, 96), n_nuclei=8, radius=6)
    return folder


def test_a_resumed_sweep_equals_an_uninterrupted_one(
    pipeline: Pipeline, images: Path, tmp_path: Path
) -> None:
    whole = run_batch(pipeline, images, tmp_path / "whole", sweep=SWEEP, executor="threads", workers=2)
    assert whole.exit_code == 0
    table = whole.images
    assert len(table) == 3 * 6
    assert table.groupby(["image", "blurred.sigma", "mask.method"]).size().eq(1).all()
    # interrupt a copy: forget the second half of its ledger, as if killed mid-way
    cut = tmp_path / "cut"
    run_batch(pipeline, images, cut, sweep=SWEEP, executor="serial")
    ledger = cut / ".ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:7]) + lines[7][:20])  # and tear the last line
    (cut / "images.csv").unlink()
    resumed = run_batch(pipeline, images, cut, sweep=SWEEP, executor="processes", workers=2)
    assert resumed.skipped == 7 and resumed.done == 11
    drop = ["seconds"]
    pd.testing.assert_frame_equal(resumed.images.drop(columns=drop), whole.images.drop(columns=drop))
    pd.testing.assert_frame_equal(resumed.tables["nuclei"], whole.tables["nuclei"])
    assert list(resumed.tables["nuclei"].columns[:3]) == ["image", "blurred.sigma", "mask.method"]


def test_sweep_table_and_figure_show_the_data() -> None:
    images = pd.DataFrame(
        {
            "image": ["a.tif"] * 3 + ["b.tif"] * 3 + ["c.tif"],
            "blurred.sigma": [1.0, 2.0, 3.0] * 2 + [1.0],
            "status": ["done"] * 6 + ["failed"],
            "nuclei.count": [10, 8, 6, 12, 9, 7, np.nan],
            "nuclei.mean_area": [50.0, 60, 70, 40, 45, 50, np.nan],
        }
    )
    assert default_measurement(images) == "nuclei.count"
    table = sweep_table(images, "blurred.sigma", "nuclei.count")
    assert len(table) == 6  # the failed task is left out
    figure = sweep_figure(images, "blurred.sigma")
    axes = figure.axes[0]
    lines = {line.get_gid(): line for line in axes.get_lines()}
    np.testing.assert_array_equal(lines["image:a.tif"].get_ydata(), [10, 8, 6])
    np.testing.assert_array_equal(lines["image:b.tif"].get_xdata(), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(lines["mean"].get_ydata(), [11, 8.5, 6.5])
    assert axes.get_xlabel() == "blurred.sigma" and axes.get_ylabel() == "nuclei.count"
    with pytest.raises(ValueError, match=r"not in images\.csv"):
        sweep_table(images, "mask.method", "nuclei.count")


def test_cli_sweep_saves_a_plot(pipeline_file: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_batch_pipeline.cli",
            "run",
            str(pipeline_file),
            str(images),
            "-o",
            str(out),
            "--executor",
            "serial",
            "--sweep",
            "blurred.sigma=1,2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    png = out / "sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in done.stdout
    assert sorted((out / "labels").iterdir())[0].name == "nuclei_01__blurred.sigma=1.0.tif"
