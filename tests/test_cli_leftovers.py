"""Nothing left looking like a current result: the command line in subprocesses, the run
folder read back with pandas.

- an input deleted (or a sweep value dropped) between runs: its saved outputs, table parts
  and ledger lines go, and every table is a fresh run's (and the input, back again, is
  computed again);
- ``--fresh``: the previous run's intermediates (``intermediate/``) go too, the user's
  files there stay, and nothing is deleted through a link;
- the conclusions failing at the end of a run: ``run.json`` says failed with the error,
  the command exits 1 with a message, and a re-run or ``summarize`` completes them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.synthetic import nuclei_image

PLAIN = """\
version: 1
stages:
  - {name: blurred, function: gaussian, params: {sigma: 1}, save: true}
  - {name: mask, function: threshold}
  - {name: labels, function: label, save: true}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: input}
"""

GROUPED = """\
version: 1
stages:
  - name: illum
    function: illumination
    group_by: [plate]
    params: {statistic: mean, smoothing: 4}
  - name: flat
    function: correct_illumination
    inputs: {image: input, illumination: illum}
  - {name: mask, function: threshold}
  - {name: labels, function: label, save: true}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: flat}
"""

METADATA = r"(?P<plate>p\d)_\d+"
#: (executor, strategy): every executor, both strategies
RUNS = [("serial", "vertical"), ("threads", "horizontal"), ("processes", "vertical"), ("dask", "horizontal")]


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Two plates of three 64 x 64 images under uneven light."""
    folder = tmp_path / "in"
    folder.mkdir()
    rows, cols = np.indices((64, 64), dtype=np.float64)
    light = 1 - 0.5 * ((rows - 31.5) ** 2 + (cols - 31.5) ** 2) / (2 * 31.5**2)
    for plate_number, plate in enumerate(("p1", "p2")):
        for index in range(3):
            image = nuclei_image((64, 64), n_nuclei=6, radius=5.0, seed=10 * plate_number + index) * light
            tifffile.imwrite(folder / f"{plate}_{index}.tif", image.astype(np.uint16))
    return folder


def _pipeline(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "napari_batch_pipeline.cli", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)


def _run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return _cli("run", *args, "--quiet", env=env)


def _tables(out: Path, *names: str) -> dict[str, pd.DataFrame]:
    found = {
        "images": pd.read_csv(out / "images.csv").drop(columns="seconds"),
        "nuclei": pd.read_csv(out / "nuclei.csv"),
        "summary": pd.read_csv(out / "summary.csv"),
    }
    for name in names:
        found[name] = pd.read_csv(out / f"{name}.csv", keep_default_na=False).drop(columns="seconds")
    return found


def _files(folder: Path) -> list[str]:
    """The plain files under ``folder`` (links neither listed nor followed)."""
    found = []
    for parent, _, names in os.walk(folder):
        found += [Path(parent, n) for n in names if not Path(parent, n).is_symlink()]
    return sorted(p.relative_to(folder).as_posix() for p in found)


# -- an input no longer in the run ------------------------------------------------------


@pytest.mark.parametrize(("executor", "strategy"), RUNS)
def test_the_outputs_of_a_deleted_input_go_on_resume(
    images: Path, tmp_path: Path, executor: str, strategy: str
) -> None:
    pipeline = _pipeline(tmp_path, GROUPED)
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    options = ["--metadata", METADATA, "--executor", executor, "--workers", "2", "--strategy", strategy]
    assert _run(pipeline, images, "-o", out, *options).returncode == 0
    assert (out / "labels" / "p1_1.tif").is_file()
    mine = out / "labels" / "notes.tif"
    mine.write_bytes(b"a user's file")
    kept = tmp_path / "p1_1.tif"
    shutil.move(images / "p1_1.tif", kept)  # mtime kept: the same input if it comes back

    again = _run(pipeline, images, "-o", out, *options)
    assert again.returncode == 0, again.stderr
    assert not (out / "labels" / "p1_1.tif").exists()
    assert mine.read_bytes() == b"a user's file"
    assert _run(pipeline, images, "-o", fresh, *options).returncode == 0
    resumed, expected = _tables(out, "groups"), _tables(fresh, "groups")
    for name in expected:
        pd.testing.assert_frame_equal(resumed[name], expected[name], obj=name)
    assert "p1_1.tif" not in set(resumed["images"]["image"]) | set(resumed["nuclei"]["image"])
    assert _files(out / "labels") == sorted([*_files(fresh / "labels"), mine.name])
    for line in (out / ".ledger.jsonl").read_text().splitlines():
        assert json.loads(line)["image"] != "p1_1.tif"
    assert json.loads((out / "run.json").read_text())["forgotten"] == ["p1_1.tif"]

    # back again, unchanged: computed again, its outputs made again
    shutil.move(kept, images / "p1_1.tif")
    back = _run(pipeline, images, "-o", out, *options)
    assert back.returncode == 0, back.stderr
    assert (out / "labels" / "p1_1.tif").is_file()
    images_table = pd.read_csv(out / "images.csv")
    assert list(images_table["status"]) == ["done"] * 6
    assert "p1_1.tif" in set(pd.read_csv(out / "nuclei.csv")["image"])


def test_a_dropped_sweep_value_takes_its_outputs_with_it(images: Path, tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, PLAIN)
    out = tmp_path / "out"
    first = _run(pipeline, images, "-o", out, "--executor", "serial", "--sweep", "blurred.sigma=1,2")
    assert first.returncode == 0, first.stderr
    assert len(list((out / "labels").glob("*blurred.sigma=2*"))) == 6
    again = _run(pipeline, images, "-o", out, "--executor", "serial", "--sweep", "blurred.sigma=1")
    assert again.returncode == 0, again.stderr
    assert not list(out.rglob("*blurred.sigma=2*"))
    assert len(list((out / "labels").glob("*blurred.sigma=1*"))) == 6
    assert set(pd.read_csv(out / "nuclei.csv")["blurred.sigma"]) == {1}


def test_outputs_of_a_deleted_input_are_never_deleted_through_a_link(images: Path, tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, PLAIN)
    out = tmp_path / "out"
    assert _run(pipeline, images, "-o", out, "--executor", "serial").returncode == 0
    # a received folder: the ledger names p1_1's outputs, the folder of one is a link
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / "p1_1.tif"
    precious.write_bytes(b"precious")
    (out / "labels" / "sub").symlink_to(elsewhere)
    ledger = out / ".ledger.jsonl"
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    for line in lines:
        if line["image"] == "p1_1.tif":
            line["outputs"].append("labels/sub/p1_1.tif")
    ledger.write_text("".join(json.dumps(line) + "\n" for line in lines))
    (images / "p1_1.tif").unlink()
    again = _run(pipeline, images, "-o", out, "--executor", "serial")
    assert again.returncode == 0, again.stderr
    assert precious.read_bytes() == b"precious"
    assert not (out / "labels" / "p1_1.tif").exists()


# -- --fresh and intermediates ------------------------------------------------------------


def test_fresh_removes_the_previous_runs_intermediates(images: Path, tmp_path: Path) -> None:
    grouped, plain = _pipeline(tmp_path, GROUPED), _pipeline(tmp_path, PLAIN, "plain.yaml")
    out = tmp_path / "out"
    options = ["--executor", "serial", "--strategy", "horizontal"]
    assert _run(grouped, images, "-o", out, "--metadata", METADATA, *options).returncode == 0
    kept = _files(out / "intermediate")
    assert any(p.startswith("input/") for p in kept) and any(p.startswith("flat/") for p in kept)
    mine = [out / "intermediate" / "mine" / "keep.npy", out / "intermediate" / "flat" / "notes.txt"]
    for path in mine:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"a user's file")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "0123456789abcdef").mkdir(parents=True)
    (elsewhere / "0123456789abcdef" / "p1_0.npy").write_bytes(b"precious")
    # links where only the previous pipeline wrote (the new one refuses links where it writes)
    (out / "intermediate" / "flat" / "fedcba9876543210").symlink_to(elsewhere / "0123456789abcdef")
    (out / "intermediate" / "illum").symlink_to(elsewhere)

    again = _run(plain, images, "-o", out, "--fresh", *options)
    assert again.returncode == 0, again.stderr
    after = _files(out / "intermediate")
    assert not set(kept) & set(after)  # the plain pipeline's stages have other keys
    assert {"flat/notes.txt", "mine/keep.npy"} <= set(after)
    assert (out / "intermediate" / "flat" / "fedcba9876543210").is_symlink()
    assert (elsewhere / "0123456789abcdef" / "p1_0.npy").read_bytes() == b"precious"
    assert not (out / "illum").exists() and not (out / "groups.csv").exists()


def test_fresh_after_a_cancelled_vertical_group_run_leaves_no_member_copies(
    images: Path, tmp_path: Path
) -> None:
    pipeline = _pipeline(tmp_path, GROUPED)
    out = tmp_path / "out"
    options = ["--metadata", METADATA, "--executor", "serial"]
    assert _run(pipeline, images, "-o", out, "--strategy", "horizontal", *options).returncode == 0
    assert list((out / "intermediate").rglob("*.npy"))  # what a cancelled run would leave
    again = _run(pipeline, images, "-o", out, "--fresh", "--strategy", "vertical", *options)
    assert again.returncode == 0, again.stderr
    assert not (out / "intermediate").exists()


# -- conclusions failing ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "summarize"])
def test_conclusions_that_fail_leave_a_failed_run_that_a_rerun_completes(
    images: Path, tmp_path: Path, command: str
) -> None:
    pipeline = _pipeline(tmp_path, PLAIN)
    out = tmp_path / "out"
    assert _run(pipeline, images, "-o", out, "--executor", "serial").returncode == 0
    expected = pd.read_csv(out / "summary.csv")
    (out / "summary.csv").unlink()
    (out / "summary.csv").mkdir()  # the summary cannot be written
    (out / "summary.csv" / "x").write_text("")

    broken = _run(pipeline, images, "-o", out, "--executor", "serial")
    assert broken.returncode == 1, broken.stderr
    assert "summary" in broken.stderr and "Traceback" not in broken.stderr
    recorded = json.loads((out / "run.json").read_text())
    assert recorded["status"] == "failed"
    assert "summary.csv" in recorded["error"]
    assert recorded["finished"]
    assert len(pd.read_csv(out / "images.csv")) == 6  # the tables are written

    shutil.rmtree(out / "summary.csv")
    if command == "run":
        done = _run(pipeline, images, "-o", out, "--executor", "serial")
    else:
        done = _cli("summarize", out)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), expected)
    assert (out / "summary.png").is_file()
    recorded = json.loads((out / "run.json").read_text())
    assert recorded["status"] == "finished" and recorded.get("error") is None


def test_fresh_after_a_metadata_change_leaves_no_orphaned_group_result(images: Path, tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, GROUPED)
    out = tmp_path / "out"
    assert _run(pipeline, images, "-o", out, "--metadata", METADATA, "--executor", "serial").returncode == 0
    assert _files(out / "illum") == ["p1.tif", "p2.tif"]
    # another pattern: one plate 'p' for every image
    again = _run(
        pipeline, images, "-o", out, "--metadata", r"(?P<plate>p)\d_\d+", "--executor", "serial", "--fresh"
    )
    assert again.returncode == 0, again.stderr
    assert _files(out / "illum") == ["p.tif"]
    assert list(pd.read_csv(out / "groups.csv")["group"]) == ["p"]
