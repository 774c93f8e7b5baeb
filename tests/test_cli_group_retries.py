"""A group member that failed, retried: the command line in subprocesses, the run folder read
back with pandas.

One image of plate ``p1`` fails upstream of the group stage while ``$FLAKY`` is set (its
first pixel marks it, see ``FLAKY``); the run is started again without it, as a user
re-runs after a crash or with a larger ``--task-timeout``. The resumed folder must equal a
fresh run's: the group learns again from every member, and its tasks run again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.synthetic import nuclei_image

FLAKY = """
import os
import numpy as np

def flaky(image: "napari.types.ImageData") -> "napari.types.ImageData":
    if os.environ.get("FLAKY") and int(np.asarray(image).flat[0]) == 7:
        raise RuntimeError("a flaky failure")
    return image
"""

PIPELINE = """\
version: 1
stages:
  - {name: checked, function: "flaky_stages:flaky"}
  - name: illum
    function: illumination
    group_by: [plate]
    params: {statistic: mean, smoothing: 4}
  - name: flat
    function: correct_illumination
    inputs: {image: checked, illumination: illum}
  - {name: mask, function: threshold}
  - {name: labels, function: label}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: flat}
"""

METADATA = r"(?P<plate>p\d)_\d+"
#: (executor, strategy): every executor, both strategies
RUNS = [("serial", "vertical"), ("threads", "horizontal"), ("processes", "vertical"), ("dask", "horizontal")]


@pytest.fixture
def flaky(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """The input folder (two plates of three images; ``p1_1`` the flaky one), the pipeline
    file, and an environment whose Python finds the flaky stage."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "flaky_stages.py").write_text(FLAKY, encoding="utf-8")
    pipeline = tmp_path / "flaky.yaml"
    pipeline.write_text(PIPELINE, encoding="utf-8")
    folder = tmp_path / "in"
    folder.mkdir()
    rows, cols = np.indices((64, 64), dtype=np.float64)
    light = 1 - 0.5 * ((rows - 31.5) ** 2 + (cols - 31.5) ** 2) / (2 * 31.5**2)
    for plate_number, plate in enumerate(("p1", "p2")):
        for index in range(3):
            image = nuclei_image((64, 64), n_nuclei=6, radius=5.0, seed=10 * plate_number + index) * light
            image = image.astype(np.uint16)
            image.flat[0] = 7 if (plate, index) == ("p1", 1) else 1
            tifffile.imwrite(folder / f"{plate}_{index}.tif", image)
    path = os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")]))
    return folder, pipeline, {**os.environ, "PYTHONPATH": path}


def _run(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "napari_batch_pipeline.cli", "run", *map(str, args), "--quiet"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    return {
        "images": pd.read_csv(out / "images.csv").drop(columns="seconds"),
        "nuclei": pd.read_csv(out / "nuclei.csv"),
        "summary": pd.read_csv(out / "summary.csv"),
        "groups": pd.read_csv(out / "groups.csv", keep_default_na=False).drop(columns="seconds"),
    }


@pytest.mark.parametrize(("executor", "strategy"), RUNS)
def test_a_group_learnt_without_a_failed_member_learns_again_once_it_is_done(
    flaky: tuple[Path, Path, dict[str, str]], tmp_path: Path, executor: str, strategy: str
) -> None:
    folder, pipeline, env = flaky
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    options = ["--metadata", METADATA, "--executor", executor, "--workers", "2", "--strategy", strategy]
    first = _run(pipeline, folder, "-o", out, *options, env={**env, "FLAKY": "1"})
    assert first.returncode == 1, first.stderr
    groups = pd.read_csv(out / "groups.csv", keep_default_na=False).set_index("group")
    assert (groups.loc["p1", "images"], groups.loc["p1", "images_failed"]) == (2, 1)
    assert groups.loc["p1", "images_left_out"] == "p1_1.tif" and groups.loc["p2", "images_left_out"] == ""
    recorded = json.loads((out / "run.json").read_text())["groups_left_out"]
    assert recorded == [{"stage": "illum", "group": "p1", "images": ["p1_1.tif"]}]
    partial = tifffile.imread(out / "illum" / "p1.tif")
    kept = (out / "illum" / "p2.tif").stat().st_mtime_ns

    again = _run(pipeline, folder, "-o", out, *options, env=env)  # the failure has gone
    assert again.returncode == 0, again.stderr
    assert _run(pipeline, folder, "-o", fresh, *options, env=env).returncode == 0
    resumed, expected = _tables(out), _tables(fresh)
    for name in expected:
        pd.testing.assert_frame_equal(resumed[name], expected[name], obj=name)
    assert list(resumed["groups"]["images_left_out"]) == ["", ""]
    assert json.loads((out / "run.json").read_text())["groups_left_out"] == []
    learnt = tifffile.imread(out / "illum" / "p1.tif")
    np.testing.assert_array_equal(learnt, tifffile.imread(fresh / "illum" / "p1.tif"))
    assert not np.array_equal(learnt, partial)
    assert (out / "illum" / "p2.tif").stat().st_mtime_ns == kept  # the other group is kept


def test_a_member_that_fails_again_keeps_the_result_learnt_without_it(
    flaky: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, pipeline, env = flaky
    out = tmp_path / "out"
    options = ["--metadata", METADATA, "--executor", "serial"]
    assert _run(pipeline, folder, "-o", out, *options, env={**env, "FLAKY": "1"}).returncode == 1
    first = _tables(out)
    learnt = (out / "illum" / "p1.tif").stat().st_mtime_ns
    assert _run(pipeline, folder, "-o", out, *options, env={**env, "FLAKY": "1"}).returncode == 1
    assert (out / "illum" / "p1.tif").stat().st_mtime_ns == learnt
    again = _tables(out)
    for name in first:
        pd.testing.assert_frame_equal(again[name], first[name], obj=name)
