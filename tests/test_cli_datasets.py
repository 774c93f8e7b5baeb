"""Many datasets from the command line, end to end in subprocesses: a run over dataset
folders with a parameter table and a grouping, ``summarize`` on the finished run folder,
and a bad table refused with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.synthetic import nuclei_image


def cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``napari-batch-pipeline ARGS`` as a user would; output as text."""
    script = Path(sys.executable).with_name("napari-batch-pipeline")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "napari_batch_pipeline.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    """Two dataset folders of two small images each, and one image at the top."""
    folder = tmp_path / "datasets"
    for number, name in enumerate(
        ["plate A/a1.tif", "plate A/a2.tif", "plate B/b1.tif", "plate B/b2.tif", "c.tif"]
    ):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / name, nuclei_image(shape=(96, 96), n_nuclei=6, radius=6, seed=number))
    return folder


def test_run_with_a_table_then_summarize(tmp_path: Path, pipeline_file: Path, datasets: Path) -> None:
    table = tmp_path / "params.csv"
    table.write_text("folder,blurred.sigma,mask.method\nplate A,1,li\nplate B,3,otsu\n", encoding="utf-8")
    out = tmp_path / "run"
    result = cli(
        "run", pipeline_file, datasets, "-o", out, "--recursive", "--params", table,
        "--executor", "serial", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 task(s) keep the pipeline's values" in result.stderr
    assert "summary.csv" in result.stdout and "summary.png" in result.stdout
    images = pd.read_csv(out / "images.csv").set_index("image")
    assert images.loc["plate A/a1.tif", ["folder", "blurred.sigma", "mask.method"]].tolist() == [
        "plate A",
        1.0,
        "li",
    ]
    assert images.loc["c.tif", ["folder", "blurred.sigma", "mask.method"]].tolist() == [".", 2.0, "otsu"]
    assert json.loads((out / "run.json").read_text())["params"]["unmatched_tasks"] == 1
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert summary["folder"].tolist() == [".", "plate A", "plate B"]  # c.tif comes first
    assert summary["tasks_done"].tolist() == [1, 2, 2]
    assert (out / "summary.png").read_bytes().startswith(b"\x89PNG")
    # the summary printed at the end
    assert "plate A" in result.stdout and "nuclei.area.mean" in result.stdout

    regrouped = cli("summarize", out, "--group-by", "mask.method")
    assert regrouped.returncode == 0, regrouped.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert summary["mask.method"].tolist() == ["otsu", "li"]
    assert summary["tasks_done"].tolist() == [3, 2]
    expected = images.groupby("mask.method")["nuclei.mean_area"].median()
    assert summary["nuclei.area.median"].tolist() == pytest.approx(expected[["otsu", "li"]].tolist())

    unknown = cli("summarize", out, "--group-by", "condition")
    assert unknown.returncode == 2
    assert "'condition'" in unknown.stderr and "--group-by" in unknown.stderr
    assert cli("summarize", tmp_path).returncode == 2  # not a run folder


def test_a_bad_table_is_refused_with_status_2(tmp_path: Path, pipeline_file: Path, datasets: Path) -> None:
    table = tmp_path / "params.csv"
    table.write_text("folder,blurred.sigma\nplate A,1\nplate B,wide\n", encoding="utf-8")
    out = tmp_path / "run"
    result = cli("run", pipeline_file, datasets, "-o", out, "--recursive", "--params", table)
    assert result.returncode == 2
    assert "row 2" in result.stderr and "'blurred.sigma'" in result.stderr and "--params" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
