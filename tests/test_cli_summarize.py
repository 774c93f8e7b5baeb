"""``summarize`` from the command line, in subprocesses: it never races a run, and it checks
every option before it writes anything. Values a run would refuse only after its tasks
(a ``well`` field that holds no wells, Parquet without pyarrow) are refused before the
first task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.synthetic import nuclei_image

CONTROLS = ("--negative-control", "control=negative", "--positive-control", "control=positive")

#: a user stage that holds its run until the test opens the gate (a file named by $GATE)
GATED = """
import os, time

def wait_for_gate(image: "napari.types.ImageData") -> "napari.types.ImageData":
    open(os.environ["GATE"] + ".reached", "w").close()
    deadline = time.monotonic() + 300
    while not os.path.exists(os.environ["GATE"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return image
"""


def _command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "napari_batch_pipeline.cli", *map(str, args)]


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command in its own interpreter, as a user runs it."""
    return subprocess.run(_command(*args), capture_output=True, text=True, timeout=300, env=env)


def _refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _contents(out: Path) -> dict[str, bytes]:
    """Every file of the run folder but the lock, by name."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_summarize_is_refused_while_a_run_writes_the_folder(
    tmp_path: Path, pipeline_yaml: str, executor: str
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for number in range(3):
        tifffile.imwrite(
            images / f"img{number}.tif", nuclei_image((64, 64), n_nuclei=4, radius=5.0, seed=number)
        )
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
    path = os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "GATE": str(gate)}
    gate.touch()
    assert cli("run", held, images, "-o", out, "--executor", executor, env=env).returncode == 0
    gate.unlink()
    for number in range(3, 6):  # a resume with three more images, held at its first
        tifffile.imwrite(
            images / f"img{number}.tif", nuclei_image((64, 64), n_nuclei=4, radius=5.0, seed=number)
        )
    resume = subprocess.Popen(
        _command("run", held, images, "-o", out, "--executor", executor, "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        reached = Path(f"{gate}.reached")
        reached.unlink(missing_ok=True)
        while not reached.exists() and resume.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert resume.poll() is None, "the resume ended before summarize could start"
        before = _contents(out)
        summarize = cli("summarize", out, "--group-by", "image", env=env)
        _refused(summarize, "in use by another run", f"process {resume.pid}")
        assert _contents(out) == before  # nothing read back and written over the run's tables
        gate.touch()
        _, stderr = resume.communicate(timeout=300)
    finally:
        resume.kill()
        resume.wait()
    assert resume.returncode == 0, stderr
    images_table = pd.read_csv(out / "images.csv")
    assert len(images_table) == 6 and set(images_table["status"]) == {"done"}
    objects = pd.read_csv(out / "nuclei.csv")
    assert objects["image"].nunique() == 6
    after = cli("summarize", out, "--group-by", "image", env=env)  # the run has ended: it may
    assert after.returncode == 0, after.stderr
    assert not (out / ".lock").exists()
    assert len(pd.read_csv(out / "summary.csv")) == 6


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--group-by", "bogus"], "group by 'bogus': not a column of this run's tables"),
        (["--negative-control", "compound=none"], "negative control compound=none matches no image"),
        (["--table-format", "parquet"], "the Parquet table format needs pyarrow: pip install pyarrow"),
    ],
)
def test_summarize_checks_every_option_before_it_writes_anything(
    tmp_path: Path, screen, options: list[str], message: str
) -> None:
    out = tmp_path / "out"
    run = cli(
        "run", screen.pipeline, screen.images, "-o", out, "--executor", "serial",
        "--metadata", screen.metadata, "--annotations", screen.annotations, *CONTROLS, "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    other_map = tmp_path / "map2.csv"
    pd.read_csv(screen.annotations, dtype=str, keep_default_na=False).assign(dose="1").to_csv(
        other_map, index=False
    )
    before = _contents(out)
    no_pyarrow = tmp_path / "no_pyarrow"
    (no_pyarrow / "pyarrow").mkdir(parents=True)
    (no_pyarrow / "pyarrow" / "__init__.py").write_text("raise ImportError('No module named pyarrow')\n")
    path = os.pathsep.join(filter(None, [str(no_pyarrow), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    refused = cli("summarize", out, "--annotations", other_map, *options, env=env)
    _refused(refused, message)
    assert _contents(out) == before  # neither the tables nor run.json took map2
    again = cli("summarize", out, "--annotations", other_map)  # and map2 can still be applied
    assert again.returncode == 0, again.stderr
    assert set(pd.read_csv(out / "images.csv")["dose"]) == {1}
    assert json.loads((out / "run.json").read_text())["screen"]["annotations"] == str(other_map)


def test_a_well_field_that_holds_no_wells_is_refused_before_the_first_task(
    tmp_path: Path, pipeline_file: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for number in range(2):
        tifffile.imwrite(images / f"well0{number + 1}.tif", nuclei_image((64, 64), n_nuclei=4, seed=number))
    out = tmp_path / "out"
    result = cli(
        "run", pipeline_file, images, "-o", out, "--metadata", r"(?P<well>well\d+)", "--executor", "serial"
    )
    _refused(result, "well 'well01': expected a well written A01, A1 or r01c01", "--metadata")
    assert "--annotations" not in result.stderr
    assert not (out / "images.csv").exists() and not (out / ".ledger.jsonl").exists()


def test_parquet_without_pyarrow_is_refused_before_the_first_task(
    tmp_path: Path, pipeline_file: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "a.tif", nuclei_image((64, 64), n_nuclei=4, seed=0))
    no_pyarrow = tmp_path / "no_pyarrow"
    (no_pyarrow / "pyarrow").mkdir(parents=True)
    (no_pyarrow / "pyarrow" / "__init__.py").write_text("raise ImportError('No module named pyarrow')\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(no_pyarrow), os.environ.get("PYTHONPATH")])),
    }
    out = tmp_path / "out"
    result = cli(
        "run", pipeline_file, images, "-o", out, "--table-format", "parquet", "--executor", "serial", env=env
    )
    _refused(result, "the Parquet table format needs pyarrow: pip install pyarrow", "--table-format")
    assert not (out / "images.csv").exists() and not (out / ".ledger.jsonl").exists()
