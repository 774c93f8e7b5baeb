"""The command's start: worker processes started before the engine's imports, when the
run will want them, and no more of them than the folder's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_batch_pipeline import cli
from napari_batch_pipeline.core.engine import process_pool

BUILT_IN = "version: 1\nname: b\nstages:\n  - name: blurred\n    function: gaussian\n"
USERS = 'version: 1\nname: u\nstages:\n  - name: mine\n    function: "mylab.stages:denoise"\n'


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The worker counts ``prestart`` was called with (nothing is started)."""
    calls: list[int] = []
    monkeypatch.setattr(process_pool, "prestart", lambda workers, modules, **_: calls.append(workers))
    return calls


def _args(tmp_path: Path, pipeline: str, files: int, *options: str):
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for number in range(files):
        (folder / f"f{number}.tif").touch()
    (folder / ".hidden.tif").touch()
    (tmp_path / "p.yaml").write_text(pipeline, encoding="utf-8")
    argv = ["run", str(tmp_path / "p.yaml"), str(folder), "-o", str(tmp_path / "out"), *options]
    return cli.build_parser().parse_args(argv)


def test_built_in_stages_on_auto_start_no_worker(tmp_path: Path, started: list[int]) -> None:
    cli._start_workers_early(_args(tmp_path, BUILT_IN, 5))
    cli._start_workers_early(_args(tmp_path, USERS, 5, "--executor", "threads"))
    cli._start_workers_early(_args(tmp_path, USERS, 5, "--scheduler", "tcp://host:1"))
    assert started == []


@pytest.mark.parametrize(
    ("pipeline", "files", "options", "workers"),
    [
        (USERS, 5, ("--workers", "2"), 2),  # a user's function: auto takes processes
        (USERS, 1, ("--workers", "2"), 1),  # one image: one worker
        (BUILT_IN, 5, ("--executor", "processes", "--workers", "3"), 3),
        (BUILT_IN, 5, ("--task-timeout", "9", "--workers", "2"), 2),
        (USERS, 5, ("--workers", "4", "--pattern", "f1*"), 1),  # the pattern counts
        (USERS, 1, ("--workers", "2", "--recursive"), 2),  # subfolders: not counted
        (USERS, 1, ("--workers", "2", "--sweep", "mine.level=1,2"), 2),  # a sweep: more tasks
    ],
)
def test_a_run_that_wants_worker_processes_starts_them_first(
    tmp_path: Path, started: list[int], pipeline: str, files: int, options: tuple[str, ...], workers: int
) -> None:
    cli._start_workers_early(_args(tmp_path, pipeline, files, *options))
    assert started == [workers]


def test_starting_workers_imports_no_stage_and_no_array_library() -> None:
    # the pool's module imported the stop flag of tiled runs, whose package imported the
    # stages (scikit-image, scipy, pandas): 0.9 s before the first worker could start,
    # while the command's own imports waited behind it
    import subprocess
    import sys

    code = (
        "import sys; from napari_batch_pipeline.core.engine import process_pool; "
        "print(sorted(m for m in ('skimage', 'scipy', 'pandas', 'napari_batch_pipeline.core.stages') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("executor", "expected"),
    [
        ("auto", "0 True False"),  # one image: serial, the figure process imports matplotlib
        # the command's own process idles while the worker computes: it imports matplotlib
        # itself, rather than start a third process beside the worker's start-up
        ("processes", "0 False True"),
    ],
)
def test_the_command_draws_summary_png_by_the_figure_process_unless_workers_compute(
    tmp_path: Path, executor: str, expected: str
) -> None:
    import subprocess
    import sys

    import numpy as np
    import tifffile

    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint16))
    (tmp_path / "p.yaml").write_text(
        BUILT_IN + "  - name: mask\n    function: threshold\n  - name: labels\n    function: label\n"
        "  - name: nuclei\n    function: measure\n    inputs: {labels: labels, intensity: input}\n",
        encoding="utf-8",
    )
    code = (
        "import sys; from napari_batch_pipeline import cli; "
        "from napari_batch_pipeline.core.results import figure_process as f; "
        f"status = cli.main(['run', {str(tmp_path / 'p.yaml')!r}, {str(folder)!r}, '-o', "
        f"{str(tmp_path / 'out')!r}, '--executor', {executor!r}]); "
        "print(status, f._process is not None, 'matplotlib' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == expected, done.stderr
    assert (tmp_path / "out" / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
