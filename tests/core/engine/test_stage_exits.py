"""A stage that calls sys.exit or raises KeyboardInterrupt fails its image, not the run.

In this process (serial and threads executors); worker processes, which also die of
segfaults and time limits, are tested through the command line in test_cli_crashes.py.
A KeyboardInterrupt where Python turns Ctrl-C into one (the main thread, default handler)
is taken as Ctrl-C: the run is cancelled with its tables written, and the interrupt goes on.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.pipeline.model import Pipeline

EXITING = """
import sys
import numpy as np

def leave(image: "napari.types.ImageData") -> "napari.types.ImageData":
    fate = int(np.asarray(image).flat[0])
    if fate == 1:
        sys.exit(5)
    if fate == 2:
        raise KeyboardInterrupt
    return image
"""

PIPELINE = """
version: 1
name: exits
stages:
  - {name: checked, function: "exiting_stages:leave"}
  - {name: mask, function: threshold}
  - {name: labels, function: label}
  - {name: nuclei, function: measure, params: {properties: [area]}}
"""


@pytest.fixture
def exiting(user_module: Callable[[str, str], str], tmp_path: Path) -> tuple[Pipeline, Path]:
    user_module("exiting_stages", EXITING)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, fate in [("a_fine", 0), ("b_exit", 1), ("c_fine", 0), ("d_interrupt", 2), ("e_fine", 0)]:
        image = (rng.random((48, 48)) * 200).astype(np.uint8)
        image[10:20, 10:20] = 250
        image.flat[0] = fate
        tifffile.imwrite(folder / f"{name}.tif", image)
    return Pipeline.from_text(PIPELINE), folder


@pytest.fixture
def cancel_handler() -> Iterator[None]:
    """Ctrl-C handled as the command line handles it: a handler that cancels, no exception."""
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("executor", ["serial", "threads", "auto"])
def test_sys_exit_and_keyboard_interrupt_in_a_stage_fail_one_task(
    executor: str, exiting: tuple[Pipeline, Path], tmp_path: Path, cancel_handler: None
) -> None:
    pipeline, folder = exiting
    report = run_batch(pipeline, folder, tmp_path / "out", executor=executor, workers=2)
    table = pd.read_csv(tmp_path / "out" / "images.csv").set_index("image")
    assert table["status"].to_dict() == {
        "a_fine.tif": "done",
        "b_exit.tif": "failed",
        "c_fine.tif": "done",
        "d_interrupt.tif": "failed",
        "e_fine.tif": "done",
    }
    assert (
        "'checked'" in table.loc["b_exit.tif", "error"]
        and "SystemExit: 5" in table.loc["b_exit.tif", "error"]
    )
    assert "KeyboardInterrupt" in table.loc["d_interrupt.tif", "error"]
    assert not report.cancelled and report.failed == 2


def test_a_threads_run_takes_a_stage_keyboard_interrupt_as_a_failure_even_without_a_handler(
    exiting: tuple[Pipeline, Path], tmp_path: Path
) -> None:
    pipeline, folder = exiting
    report = run_batch(pipeline, folder, tmp_path / "out", executor="threads", workers=2)
    assert report.failed == 2 and report.done == 3  # worker threads never get Ctrl-C


def test_ctrl_c_in_a_serial_run_cancels_with_the_tables_written(
    exiting: tuple[Pipeline, Path], tmp_path: Path
) -> None:
    pipeline, folder = exiting
    # Python's own Ctrl-C handler, as in a terminal (a shell's background job ignores SIGINT)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_batch(pipeline, folder, tmp_path / "out", executor="serial")
    finally:
        signal.signal(signal.SIGINT, inherited)
    table = pd.read_csv(tmp_path / "out" / "images.csv").set_index("image")
    assert len(table) == 5  # every input has a row
    assert table.loc["a_fine.tif", "status"] == "done"
    assert table.loc["e_fine.tif", "status"] == "pending"
    info = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    assert info["status"] == "cancelled"
    # resumed later, with the interrupt handled: every task ends with a row of its own
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        report = run_batch(pipeline, folder, tmp_path / "out", executor="serial")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert report.done + report.skipped == 3 and report.failed == 2
