"""Horizontal intermediates are keyed by content: a replaced input is computed again.

Before, an intermediate was named by the image alone, so a re-run after an input file was
replaced (resumed, or even started fresh) served the old image's intermediate and reported
the old image's objects for the new one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image


@pytest.mark.parametrize("fresh", [False, True], ids=["resumed", "fresh"])
@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_a_replaced_input_is_never_served_a_stale_intermediate(
    fresh: bool, executor: str, pipeline: Pipeline, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for number in range(2):
        tifffile.imwrite(folder / f"img{number}.tif", nuclei_image(shape=(128, 128), n_nuclei=4, seed=number))
    out = tmp_path / "out"
    options = {"strategy": "horizontal", "executor": executor, "workers": 2 if executor != "serial" else None}
    run_batch(pipeline, folder, out, **options)
    before = pd.read_csv(out / "images.csv").set_index("image")["nuclei.count"]

    replaced = folder / "img0.tif"
    tifffile.imwrite(replaced, nuclei_image(shape=(128, 128), n_nuclei=12, seed=7))
    stat = replaced.stat()
    os.utime(replaced, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    run_batch(pipeline, folder, out, fresh=fresh, **options)
    after = pd.read_csv(out / "images.csv").set_index("image")["nuclei.count"]

    clean = tmp_path / "clean"
    run_batch(pipeline, folder, clean, **options)
    expected = pd.read_csv(clean / "images.csv").set_index("image")["nuclei.count"]
    assert after.to_dict() == expected.to_dict()
    assert after["img0.tif"] != before["img0.tif"]  # the new image's own objects
    assert after["img1.tif"] == before["img1.tif"]
    objects = pd.read_csv(out / "nuclei.csv")
    assert (objects["image"] == "img0.tif").sum() == expected["img0.tif"]


_USER_STAGE = """
def scaled(image: "napari.types.ImageData") -> "napari.types.ImageData":
    return image * {factor}
"""

_USER_PIPELINE = """\
version: 1
name: scaled
stages:
  - {name: scaled, function: "lab_stages:scaled"}
  - {name: mask, function: threshold, params: {method: otsu}}
  - {name: labels, function: label}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: scaled}
    params: {properties: [intensity_mean]}
"""


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_a_user_stage_whose_code_changed_is_never_served_a_stale_intermediate(
    executor: str, tmp_path: Path
) -> None:
    # Before, a stage's key held its name and parameters, not its code: after the user's
    # function changed, the horizontal strategy served the old function's intermediates,
    # even when started fresh (97.99 reported where a vertical run gave 293.98).
    import subprocess
    import sys

    folder = tmp_path / "images"
    folder.mkdir()
    for number in range(2):
        tifffile.imwrite(folder / f"img{number}.tif", nuclei_image(shape=(96, 96), n_nuclei=4, seed=number))
    modules = tmp_path / "modules"
    modules.mkdir()
    (tmp_path / "scaled.yaml").write_text(_USER_PIPELINE, encoding="utf-8")
    path = os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}

    def run(factor: int, out: str, strategy: str, *extra: str) -> pd.Series:
        (modules / "lab_stages.py").write_text(_USER_STAGE.format(factor=factor), encoding="utf-8")
        argv = [sys.executable, "-m", "napari_batch_pipeline.cli", "run", "scaled.yaml", "images"]
        argv += ["-o", out, "--strategy", strategy, "--executor", executor, "--workers", "2", *extra]
        result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return pd.read_csv(tmp_path / out / "images.csv").set_index("image")["nuclei.mean_intensity_mean"]

    first = run(1, "out", "horizontal")
    changed = run(3, "out", "horizontal", "--fresh")
    vertical = run(3, "vertical", "vertical")
    pd.testing.assert_series_equal(changed, vertical)
    assert (changed / first).round(6).eq(3).all()
