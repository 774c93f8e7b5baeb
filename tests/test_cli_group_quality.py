"""Quality rules before a group stage: a group learns from its unflagged members only.

The command line in subprocesses, the run folder read back with pandas. Plate ``p1`` holds
one over-bright image (``p1_2``) that the rule ``quality.intensity_mean max`` flags; the
illumination function of ``p1`` must be the one learnt from the other two images (a run
on the folder without ``p1_2``), on every executor and both strategies, on resume, and in
the exported script run with the package unimportable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.synthetic import nuclei_image

STAGES = """\
version: 1
stages:
  - {name: quality, function: image_quality}
  - name: illum
    function: illumination
    group_by: [plate]
    inputs: {images: input}
    params: {statistic: mean, smoothing: 4}
  - name: flat
    function: correct_illumination
    inputs: {image: input, illumination: illum}
  - {name: mask, function: threshold, inputs: {image: flat}}
  - {name: labels, function: label}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: flat}
"""
#: flags the over-bright image only
RULES = "quality:\n  - {measure: quality.intensity_mean, max: 5000}\n"
#: flags nothing
LOOSE = "quality:\n  - {measure: quality.intensity_mean, max: 60000}\n"
METADATA = r"(?P<plate>p\d)_\d+"
BRIGHT = "p1_2.tif"
#: (executor, strategy): every executor, both strategies
RUNS = [("serial", "vertical"), ("threads", "horizontal"), ("processes", "vertical"), ("dask", "horizontal")]


@pytest.fixture(scope="module")
def screen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Pipeline files (with the rule, a loose rule, none), the input folder, the same folder
    without the bright image, and the illumination learnt there (the expected result)."""
    root = tmp_path_factory.mktemp("group_quality")
    files = {}
    for name, text in (("ruled", STAGES + RULES), ("loose", STAGES + LOOSE), ("plain", STAGES)):
        files[name] = root / f"{name}.yaml"
        files[name].write_text(text, encoding="utf-8")
    folder, without = root / "in", root / "without"
    folder.mkdir()
    without.mkdir()
    rows, cols = np.indices((64, 64), dtype=np.float64)
    light = 1 - 0.5 * ((rows - 31.5) ** 2 + (cols - 31.5) ** 2) / (2 * 31.5**2)
    for plate_number, plate in enumerate(("p1", "p2")):
        for index in range(3):
            image = nuclei_image((64, 64), n_nuclei=6, radius=5.0, seed=10 * plate_number + index) * light
            name = f"{plate}_{index}.tif"
            if name == BRIGHT:
                image = image + 20000 * light[::-1]  # bright, and lit from elsewhere
            tifffile.imwrite(folder / name, image.astype(np.uint16))
            if name != BRIGHT:
                tifffile.imwrite(without / name, image.astype(np.uint16))
    reference, baseline = root / "reference", root / "baseline"
    done = _run(files["plain"], without, "-o", reference, "--executor", "serial")
    assert done.returncode == 0, done.stderr
    done = _run(files["ruled"], folder, "-o", baseline, "--executor", "serial", "--strategy", "horizontal")
    assert done.returncode == 0, done.stderr
    return {**files, "in": folder, "reference": reference, "baseline": baseline}


def _run(*args: str | Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "napari_batch_pipeline.cli", "run", *map(str, args), "--quiet"]
    argv += ["--metadata", METADATA]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def _groups(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "groups.csv", keep_default_na=False).set_index("group")


def _illumination(out: Path, group: str) -> np.ndarray:
    return tifffile.imread(out / "illum" / f"{group}.tif")


@pytest.mark.parametrize(("executor", "strategy"), RUNS)
def test_a_group_learns_from_its_unflagged_members_only(
    screen: dict[str, Path], tmp_path: Path, executor: str, strategy: str
) -> None:
    out = tmp_path / "out"
    options = ["--executor", executor, "--workers", "2", "--strategy", strategy]
    done = _run(screen["ruled"], screen["in"], "-o", out, *options)
    assert done.returncode == 0, done.stderr
    images = pd.read_csv(out / "images.csv", keep_default_na=False).set_index("image")
    assert images.loc[BRIGHT, "flagged"].startswith("quality.intensity_mean")
    assert (images.drop(index=BRIGHT)["flagged"] == "").all()
    groups = _groups(out)
    assert list(groups.loc[["p1", "p2"], "images"]) == [2, 3]
    assert list(groups.loc[["p1", "p2"], "images_flagged"]) == [1, 0]
    assert list(groups.loc[["p1", "p2"], "images_failed"]) == [0, 0]
    reference = screen["reference"]
    for group in ("p1", "p2"):
        np.testing.assert_array_equal(_illumination(out, group), _illumination(reference, group))
    # the flagged image's own task is still corrected, with its group's (unflagged) result
    assert images.loc[BRIGHT, "status"] == "done"
    for table in ("images.csv", "quality.csv", "nuclei.csv"):  # whatever the executor and strategy
        found, expected = pd.read_csv(out / table), pd.read_csv(screen["baseline"] / table)
        dropped = [c for c in ("seconds",) if c in expected.columns]
        pd.testing.assert_frame_equal(found.drop(columns=dropped), expected.drop(columns=dropped), obj=table)
    if strategy == "vertical":
        assert not (out / "intermediate").exists()  # the quality tables of pass A go too


def test_changing_the_rules_learns_the_groups_again_and_the_same_rules_reuse_them(
    screen: dict[str, Path], tmp_path: Path
) -> None:
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    options = ["--executor", "serial"]
    assert _run(screen["plain"], screen["in"], "-o", out, *options).returncode == 0
    everything = _illumination(out, "p1")
    assert not np.array_equal(everything, _illumination(screen["reference"], "p1"))  # the bright one in
    assert list(_groups(out)["images_flagged"]) == [0, 0]
    kept = _illumination(out, "p2")

    again = _run(screen["ruled"], screen["in"], "-o", out, *options)  # the rule now flags p1_2
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(_illumination(out, "p1"), _illumination(screen["reference"], "p1"))
    np.testing.assert_array_equal(_illumination(out, "p2"), kept)  # judged again, nothing flagged
    assert _run(screen["ruled"], screen["in"], "-o", fresh, *options).returncode == 0
    for table in ("images.csv", "nuclei.csv", "groups.csv"):
        resumed, expected = pd.read_csv(out / table), pd.read_csv(fresh / table)
        dropped = [c for c in ("seconds", "key") if c in expected.columns]
        pd.testing.assert_frame_equal(
            resumed.drop(columns=dropped), expected.drop(columns=dropped), obj=table
        )
    learnt = {group: (out / "illum" / f"{group}.tif").stat().st_mtime_ns for group in ("p1", "p2")}

    same = _run(screen["ruled"], screen["in"], "-o", out, *options)  # nothing changed
    assert same.returncode == 0, same.stderr
    assert {group: (out / "illum" / f"{group}.tif").stat().st_mtime_ns for group in ("p1", "p2")} == learnt
    assert "6 already done (resuming)" in same.stderr  # no task runs again, the flagged one kept out
    assert _run(screen["loose"], screen["in"], "-o", out, *options).returncode == 0  # it flags nothing
    np.testing.assert_array_equal(_illumination(out, "p1"), everything)
    assert list(_groups(out)["images_flagged"]) == [0, 0]


def test_the_exported_script_leaves_the_flagged_images_out_of_their_group(
    screen: dict[str, Path], tmp_path: Path
) -> None:
    engine, exported = tmp_path / "engine", tmp_path / "script"
    assert _run(screen["ruled"], screen["in"], "-o", engine, "--executor", "serial").returncode == 0
    script = tmp_path / "screen.py"
    argv = [sys.executable, "-m", "napari_batch_pipeline.cli", "export-script", screen["ruled"], "-o", script]
    written = subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    blocker = tmp_path / "blocker" / "napari_batch_pipeline"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('the script must not import me')\n")
    done = subprocess.run(
        [sys.executable, str(script), str(screen["in"]), str(exported), "--metadata", METADATA],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(blocker.parent)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for group in ("p1", "p2"):
        np.testing.assert_array_equal(_illumination(exported, group), _illumination(engine, group))
    pd.testing.assert_frame_equal(
        pd.read_csv(engine / "groups.csv").drop(columns=["seconds", "key"]),
        pd.read_csv(exported / "groups.csv").drop(columns=["seconds", "key"]),
    )
    assert (engine / "nuclei.csv").read_text() == (exported / "nuclei.csv").read_text()
