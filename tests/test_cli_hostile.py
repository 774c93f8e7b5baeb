"""The command line against a hostile world, in subprocesses: two runs into one folder,
stale locks, starting fresh over the user's files, reserved names, patterns that leave
the input folder, a damaged run.json, names that are not UTF-8, a full disk."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.synthetic import nuclei_image

#: the pipeline files here are the DESIGN example (``pipeline_yaml``, ``pipeline_file``:
#: blurred, mask, labels saved, nuclei measured), changed where a test needs it


def _command(*args: str | Path) -> list[str]:
    script = Path(sys.executable).with_name("napari-batch-pipeline")
    start = [str(script)] if script.exists() else [sys.executable, "-m", "napari_batch_pipeline.cli"]
    return [*start, *map(str, args)]


def run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``napari-batch-pipeline ARGS`` as a user runs it; output as text."""
    return subprocess.run(_command(*args), capture_output=True, text=True, timeout=timeout)


def _refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2, one clear message with every fragment, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _images(folder: Path, count: int, shape: tuple[int, int] = (96, 96)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        image = nuclei_image(shape=shape, n_nuclei=6, radius=6, seed=number)
        tifffile.imwrite(folder / f"img{number + 1}.tif", image)
    return folder


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return _images(tmp_path / "images", 3)


def _tables_equal(left: Path, right: Path) -> None:
    pd.testing.assert_frame_equal(
        pd.read_csv(left / "images.csv").drop(columns="seconds"),
        pd.read_csv(right / "images.csv").drop(columns="seconds"),
    )
    pd.testing.assert_frame_equal(pd.read_csv(left / "nuclei.csv"), pd.read_csv(right / "nuclei.csv"))


# -- one run per output folder -----------------------------------------------------------------


#: a user stage that holds its run until the test opens the gate (a file named by $GATE)
GATED = """
import os, time

def wait_for_gate(image: "napari.types.ImageData") -> "napari.types.ImageData":
    gate = os.environ["GATE"]
    deadline = time.monotonic() + 300
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    return image
"""


def test_a_second_run_into_the_same_folder_is_refused_naming_the_first(
    tmp_path: Path, pipeline_yaml: str, pipeline_file: Path, images: Path, cli_here
) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "gated_stages.py").write_text(GATED, encoding="utf-8")
    held = tmp_path / "held.yaml"
    held.write_text(
        pipeline_yaml.replace(
            "stages:\n", 'stages:\n  - {name: held, function: "gated_stages:wait_for_gate"}\n'
        )
    )
    gate, out = tmp_path / "gate", tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(modules), "GATE": str(gate)}
    first = subprocess.Popen(
        _command("run", held, images, "-o", out, "--executor", "serial", "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / ".lock").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second could start"
        second = cli_here("run", pipeline_file, images, "-o", out, "--executor", "serial")
        _refused(second, "in use by another run", f"process {first.pid} on {socket.gethostname()}")
        fresh = run("run", pipeline_file, images, "-o", out, "--fresh")  # as a user: its own process
        _refused(fresh, "in use by another run")
        gate.touch()
        _, stderr = first.communicate(timeout=300)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, stderr
    assert not (out / ".lock").exists()
    table = pd.read_csv(out / "images.csv")  # the first run's tables, whole
    assert len(table) == 3 and set(table["status"]) == {"done"}


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path: Path, pipeline_file: Path, images: Path) -> None:
    out = tmp_path / "out"
    assert run("run", pipeline_file, images, "-o", out, "--executor", "serial").returncode == 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / ".lock").write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "token": "old"}))
    again = run("run", pipeline_file, images, "-o", out, "--executor", "serial")
    assert again.returncode == 0, again.stderr
    assert not (out / ".lock").exists()


# -- starting fresh never deletes the user's files ------------------------------------------


def test_fresh_into_a_folder_of_the_users_deletes_nothing(
    tmp_path: Path, pipeline_file: Path, images: Path
) -> None:
    out = tmp_path / "analysis"
    for relative in ("labels/drawn by hand.tif", "blurred/keep.txt", "notes.md"):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text("mine")
    result = run("run", pipeline_file, images, "-o", out, "--fresh")
    _refused(result, "holds no run", "labels/", "nothing was deleted")
    for relative in ("labels/drawn by hand.tif", "blurred/keep.txt", "notes.md"):
        assert (out / relative).read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["blurred", "labels", "notes.md"]


# -- reserved names, patterns ---------------------------------------------------------------------


def test_a_stage_named_images_is_refused(tmp_path: Path, pipeline_yaml: str, images: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(pipeline_yaml.replace("- name: nuclei", "- name: images"))
    result = run("run", pipeline, images, "-o", tmp_path / "out")  # in a subprocess, as a user

    _refused(result, "stage 'images'", "uses for its own files")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("group", ["image", "status", "error", "seconds"])
def test_a_metadata_group_named_like_a_bookkeeping_column_is_refused(
    tmp_path: Path, pipeline_file: Path, images: Path, group: str, cli_here
) -> None:
    result = cli_here(
        "run", pipeline_file, images, "-o", tmp_path / "out", "--metadata", rf"img(?P<{group}>\d+)"
    )
    _refused(result, f"group name '{group}'", "--metadata")


@pytest.mark.parametrize("pattern", ["/etc/*.tif", "../*.tif"])
def test_a_pattern_outside_the_input_folder_is_refused(
    tmp_path: Path, pipeline_file: Path, images: Path, pattern: str, cli_here
) -> None:
    _refused(
        cli_here("run", pipeline_file, images, "-o", tmp_path / "out", "--pattern", pattern), "--pattern"
    )


# -- a damaged run.json -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda info: "{not json", "cannot be read as JSON"),
        (lambda info: json.dumps([info]), "expected a mapping"),
        (lambda info: json.dumps({**info, "input_dir": 5}), "input_dir"),
        (lambda info: json.dumps({k: v for k, v in info.items() if k != "input_dir"}), "input_dir"),
        (lambda info: json.dumps({**info, "sweep": "blurred.sigma=1"}), "sweep"),
        (lambda info: json.dumps({**info, "sweep": {"blurred.sigma": 3}}), "sweep"),
        (lambda info: json.dumps({**info, "workers": "many"}), "workers"),
        (lambda info: json.dumps({**info, "recursive": "yes"}), "recursive"),
        (lambda info: json.dumps({**info, "params": ["x"]}), "params"),
        (lambda info: json.dumps({**info, "group_by": {"a": 1}}), "group_by"),
    ],
)
def test_a_damaged_run_json_gives_a_message_on_rerun(
    tmp_path: Path, pipeline_file: Path, images: Path, damage, fragment: str, cli_here
) -> None:
    out = tmp_path / "out"
    assert cli_here("run", pipeline_file, images, "-o", out, "--executor", "serial").returncode == 0
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(damage(info))
    _refused(cli_here("rerun", out, "-o", tmp_path / "again"), fragment, "run.json")
    _refused(cli_here("run", "--from-run", out, "-o", tmp_path / "again"), fragment)
    assert not (tmp_path / "again").exists()


def test_a_damaged_run_json_is_refused_by_the_installed_command(
    tmp_path: Path, pipeline_file: Path, images: Path, cli_here
) -> None:
    out = tmp_path / "out"
    assert cli_here("run", pipeline_file, images, "-o", out, "--executor", "serial").returncode == 0
    (out / "run.json").write_text("{not json")
    _refused(run("rerun", out, "-o", tmp_path / "again"), "cannot be read as JSON", "run.json")
    assert not (tmp_path / "again").exists()


# -- names that are not UTF-8 -------------------------------------------------------------------


def test_names_that_are_not_utf8_are_escaped_in_the_tables(
    tmp_path: Path, pipeline_file: Path, images: Path
) -> None:
    os.rename(images / "img2.tif", os.fsencode(images) + b"/bad\xff.tif")
    (Path(os.fsdecode(os.fsencode(images) + b"/worse\xfe.tif"))).write_bytes(b"not an image")
    out = tmp_path / "out"
    result = run("run", pipeline_file, images, "-o", out, "--executor", "serial")
    assert result.returncode == 1, result.stderr  # the garbage file fails alone
    assert "Traceback" not in result.stderr
    table = pd.read_csv(out / "images.csv").set_index("image")
    assert table.loc["bad\\xff.tif", "status"] == "done"
    assert table.loc["worse\\xfe.tif", "status"] == "failed"
    assert "worse" in table.loc["worse\\xfe.tif", "error"]
    assert (pd.read_csv(out / "nuclei.csv")["image"] == "bad\\xff.tif").any()
    assert os.listdir(os.fsencode(out / "labels")).count(b"bad\\xff.tif") == 1


# -- a full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at ``tmp_path / 'disk'``; grown to 64 MiB by ``grow(path)``."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a small disk needs a tmpfs mount, which needs Linux and root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _grow(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_a_full_disk_stops_the_run_and_a_rerun_completes_it(
    tmp_path: Path, pipeline_file: Path, small_disk: Path, executor: str
) -> None:
    folder = _images(tmp_path / "big", 24, shape=(192, 192))  # 24 x 288 KiB of labels: over 2 MiB
    whole = tmp_path / "whole"
    assert run("run", pipeline_file, folder, "-o", whole, "--executor", "serial").returncode == 0
    out = small_disk / "out"
    full = run("run", pipeline_file, folder, "-o", out, "--executor", executor, "--workers", "2")
    _refused(full, "is full", "No space left on device", "run the same command again")
    assert full.stderr.count("is full") == 1
    lines = (out / ".ledger.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # not one torn line
    assert 0 < len(records) < 24
    assert all(r["status"] == "done" for r in records)
    assert not (out / ".lock").exists()
    _grow(small_disk)
    again = run("run", pipeline_file, folder, "-o", out, "--executor", executor, "--workers", "2")
    assert again.returncode == 0, again.stderr
    _tables_equal(out, whole)
    assert len(list((out / "labels").glob("*.tif"))) == 24
