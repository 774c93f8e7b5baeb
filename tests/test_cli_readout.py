"""The readout of a screen: the measurement its plate figures show and its printed Z' is of.

Named by the pipeline file's ``screen: {readout: ...}`` or ``--readout`` (on run, kept by
rerun from run.json, changed by summarize); an unknown name is refused before any task
runs, naming the measurements; without one the figures show the first measurement and
say so. Real runs on the command line, tables and figures read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_batch_pipeline.core.results.plate_map import plate_figures
from napari_batch_pipeline.core.results.screen import Control, ScreenSettings, per_image_measurements
from napari_batch_pipeline.core.run_folder.reader import RunResults

CONTROLS = ("--negative-control", "control=negative", "--positive-control", "control=positive")
READOUT = "nuclei.mean_intensity_mean"


def _run(cli_here, screen, output: Path, *more: str | Path):
    return cli_here(
        "run",
        screen.pipeline,
        screen.images,
        "-o",
        output,
        "--executor",
        "serial",
        "--metadata",
        screen.metadata,
        "--annotations",
        screen.annotations,
        *CONTROLS,
        "--quiet",
        *more,
    )


def _screen_record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())["screen"]


def _figures(run: Path, named: str | None) -> dict:
    results = RunResults(run)
    images = results.images
    settings = ScreenSettings(
        negative=Control("control", "negative"), positive=Control("control", "positive")
    )
    return plate_figures(images, per_image_measurements(images, results.table_stages), named, settings)


def test_the_plate_figures_show_the_pipelines_readout_per_well(tmp_path: Path, screen, cli_here) -> None:
    assert f"readout: {READOUT}" in screen.pipeline.read_text()  # the demo's pipeline names one
    run = tmp_path / "run"
    result = _run(cli_here, screen, run)
    assert result.returncode == 0, result.stderr
    assert _screen_record(run)["readout_shown"] == READOUT
    assert f"readout: {READOUT} (the screen's readout)" in result.stderr
    wells = pd.read_csv(run / "wells.csv")
    figures = _figures(run, READOUT)
    assert sorted(figures) == ["P1", "P2"]
    for plate, figure in figures.items():
        axes = figure.axes[0]
        assert axes.get_title().startswith(f"plate {plate}: {READOUT}\nthe screen's readout")
        (shown,) = [image for image in axes.images if image.get_gid() == "wells"]
        data = np.ma.filled(shown.get_array().astype(float), np.nan)
        expected = np.full((8, 12), np.nan)
        usable = wells[(wells["plate"] == plate) & (wells["fields_flagged"] == 0)]
        for letter, column, value in zip(usable["row"], usable["column"], usable[READOUT], strict=True):
            expected["ABCDEFGH".index(letter), column - 1] = value
        np.testing.assert_allclose(data, expected)


def test_the_readout_option_wins_and_is_kept_by_rerun_and_summarize(tmp_path: Path, screen, cli_here) -> None:
    run, again = tmp_path / "run", tmp_path / "again"
    assert _run(cli_here, screen, run, "--readout", "nuclei.mean_area").returncode == 0
    assert _screen_record(run)["readout"] == "nuclei.mean_area"
    assert _screen_record(run)["readout_shown"] == "nuclei.mean_area"
    rerun = cli_here("rerun", run, "-o", again, "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    assert _screen_record(again)["readout_shown"] == "nuclei.mean_area"
    assert cli_here("summarize", run, "--readout", "nuclei.count").returncode == 0
    assert _screen_record(run)["readout_shown"] == "nuclei.count"
    assert cli_here("summarize", run).returncode == 0  # the choice recorded is kept
    assert _screen_record(run)["readout_shown"] == "nuclei.count"

    refused = cli_here("summarize", run, "--readout", "nuclei.mean_brightness")
    assert refused.returncode == 2
    assert "readout 'nuclei.mean_brightness': not a measurement of this run" in refused.stderr
    assert READOUT in refused.stderr and "(command line: --readout)" in refused.stderr
    assert _screen_record(run)["readout_shown"] == "nuclei.count"  # nothing was written


@pytest.mark.parametrize("where", ["option", "pipeline"])
def test_an_unknown_readout_is_refused_before_any_task_runs(
    tmp_path: Path, screen, cli_here, where: str
) -> None:
    run = tmp_path / "run"
    if where == "option":
        result = _run(cli_here, screen, run, "--readout", "nuclei.mean_brightness")
    else:
        text = screen.pipeline.read_text().replace(f"readout: {READOUT}", "readout: nuclei.mean_brightness")
        screen.pipeline.write_text(text)
        result = _run(cli_here, screen, run)
    assert result.returncode == 2
    assert "'nuclei.mean_brightness': not a measurement of the pipeline; expected one of" in result.stderr
    assert "nuclei.mean_intensity_mean" in result.stderr and "quality.mean_focus_score" in result.stderr
    assert not (run / "images.csv").exists()


def test_without_a_readout_the_figures_show_the_first_measurement_and_say_so(
    tmp_path: Path, screen, cli_here
) -> None:
    screen.pipeline.write_text(screen.pipeline.read_text().replace(f"screen:\n  readout: {READOUT}\n", ""))
    run = tmp_path / "run"
    result = _run(cli_here, screen, run)
    assert result.returncode == 0, result.stderr
    first = "nuclei.mean_area"  # the first mean measurement of images.csv
    assert _screen_record(run)["readout_shown"] == first
    assert f"readout: {first} (no readout named" in result.stderr
    title = _figures(run, None)["P1"].axes[0].get_title()
    assert title.startswith(f"plate P1: {first}\nno readout named (screen: readout, or the readout option)")


def test_the_exported_script_shows_the_pipelines_readout(tmp_path: Path, screen, cli_here) -> None:
    from matplotlib.image import imread

    engine, other, exported = tmp_path / "engine", tmp_path / "other", tmp_path / "script"
    assert _run(cli_here, screen, engine).returncode == 0
    assert _run(cli_here, screen, other, "--readout", "nuclei.mean_area").returncode == 0
    script = tmp_path / "screen.py"
    assert cli_here("export-script", screen.pipeline, "-o", script).returncode == 0
    assert f"READOUT = {READOUT!r}" in script.read_text()
    argv = [sys.executable, script, screen.images, exported, "--metadata", screen.metadata]
    argv += ["--annotations", screen.annotations, *CONTROLS]
    done = subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for plate in ("P1", "P2"):
        shown = imread(exported / f"plate_{plate}.png")
        np.testing.assert_array_equal(shown, imread(engine / f"plate_{plate}.png"))
        assert not np.array_equal(shown, imread(other / f"plate_{plate}.png"))
