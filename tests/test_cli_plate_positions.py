"""Wells placed by numbers, from the command line: a plate map whose ``row`` and ``column``
are numbers, and Opera-style names read as ``r(?P<row>\\d+)c(?P<column>\\d+)``, give the
same plate heat maps and assay as lettered wells; a row or column that places no well is
refused before anything runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from napari_batch_pipeline.core.results.annotations import row_number

CONTROLS = ("--negative-control", "control=negative", "--positive-control", "control=positive")


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "napari_batch_pipeline.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _assay(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "assay.csv")


@pytest.fixture
def lettered(tmp_path: Path, screen) -> Path:
    """The screen run with its lettered wells: what numbered wells must give."""
    out = tmp_path / "lettered"
    result = cli(
        "run", screen.pipeline, screen.images, "-o", out, "--executor", "serial", "--quiet",
        "--metadata", screen.metadata, "--annotations", screen.annotations, *CONTROLS,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_a_plate_map_with_numbered_rows_and_columns_gives_the_lettered_runs_plates(
    tmp_path: Path, screen, lettered: Path
) -> None:
    plate_map = pd.read_csv(screen.annotations, dtype=str, keep_default_na=False)
    plate_map.insert(2, "row", [str(row_number(w[0])) for w in plate_map["well"]])
    plate_map.insert(3, "column", [str(int(w[1:])) for w in plate_map["well"]])
    numbered_map = tmp_path / "numbered.csv"
    plate_map.to_csv(numbered_map, index=False)
    out = tmp_path / "out"
    result = cli(
        "run", screen.pipeline, screen.images, "-o", out, "--executor", "serial", "--quiet",
        "--metadata", screen.metadata, "--annotations", numbered_map, *CONTROLS,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("plate_*.png")) == ["plate_P1.png", "plate_P2.png"]
    pd.testing.assert_frame_equal(_assay(out), _assay(lettered))


def test_opera_style_names_place_their_wells(tmp_path: Path, screen, lettered: Path) -> None:
    images = tmp_path / "opera"
    images.mkdir()
    for path in sorted(screen.images.glob("*.tif")):
        plate, well = path.stem.split("_")
        shutil.copy(path, images / f"{plate}_r{row_number(well[0]):02d}c{int(well[1:]):02d}.tif")
    plate_map = pd.read_csv(screen.annotations, dtype=str, keep_default_na=False)
    plate_map.insert(1, "row", [f"{row_number(w[0]):02d}" for w in plate_map["well"]])
    plate_map.insert(2, "column", [f"{int(w[1:]):02d}" for w in plate_map["well"]])
    opera_map = tmp_path / "opera.csv"
    plate_map.drop(columns="well").to_csv(opera_map, index=False)
    out = tmp_path / "out"
    result = cli(
        "run", screen.pipeline, images, "-o", out, "--executor", "serial", "--quiet",
        "--metadata", r"(?P<plate>P\d)_r(?P<row>\d+)c(?P<column>\d+)", "--annotations", opera_map, *CONTROLS,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("plate_*.png")) == ["plate_P1.png", "plate_P2.png"]
    # no well column: the images are the replicates; one field per well gives the same numbers
    assert set(_assay(out)["level"]) == {"image"}
    pd.testing.assert_frame_equal(_assay(out).drop(columns="level"), _assay(lettered).drop(columns="level"))


def test_a_column_that_places_no_well_is_refused_before_anything_runs(tmp_path: Path, screen) -> None:
    plate_map = pd.read_csv(screen.annotations, dtype=str, keep_default_na=False)
    plate_map.insert(2, "row", "A")
    plate_map.insert(3, "column", ["x" if i == 3 else "1" for i in range(len(plate_map))])
    bad_map = tmp_path / "bad.csv"
    plate_map.to_csv(bad_map, index=False)
    out = tmp_path / "out"
    result = cli(
        "run", screen.pipeline, screen.images, "-o", out, "--executor", "serial", "--quiet",
        "--metadata", screen.metadata, "--annotations", bad_map, *CONTROLS,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "column 'x': expected a column written as a number from 1" in result.stderr
    assert "--annotations" in result.stderr and "Traceback" not in result.stderr
    assert not (out / "images.csv").exists()
