"""The exported script of a screen: the same flags, plate map, conclusions and Parquet
files as the engine, and the same refusals before any image."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pandas as pd

from napari_batch_pipeline.core.export.script import script_text
from napari_batch_pipeline.core.pipeline.model import Pipeline

CONTROLS = ("--negative-control", "control=negative", "--positive-control", "control=positive")


def _script(screen, tmp_path: Path) -> Path:
    script = tmp_path / "screen_script.py"
    script.write_text(script_text(Pipeline.from_yaml(screen.pipeline)), encoding="utf-8")
    return script


def _run(script: Path, screen, out: Path, *options: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        str(script),
        str(screen.images),
        str(out),
        "--metadata",
        screen.metadata,
        *options,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_the_script_writes_the_engine_screen_tables(tmp_path: Path, screen, run_screen) -> None:
    engine = tmp_path / "engine"
    run_screen(engine, table_format="parquet")
    script = _script(screen, tmp_path)
    assert "QUALITY = [('quality', 'power_log_log_slope'," in script.read_text()
    imported = {
        alias.name.partition(".")[0]
        for node in ast.walk(ast.parse(script.read_text()))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "napari_batch_pipeline" not in imported
    out = tmp_path / "script"
    result = _run(
        script, screen, out, "--annotations", str(screen.annotations), *CONTROLS, "--table-format", "parquet"
    )
    assert result.returncode == 0, result.stderr
    names = ("images", "quality", "nuclei", "summary", "wells", "normalized", "assay")
    for name in names:
        mine, theirs = pd.read_csv(out / f"{name}.csv"), pd.read_csv(engine / f"{name}.csv")
        pd.testing.assert_frame_equal(
            mine.drop(columns="seconds", errors="ignore"), theirs.drop(columns="seconds", errors="ignore")
        )
        mine, theirs = pd.read_parquet(out / f"{name}.parquet"), pd.read_parquet(engine / f"{name}.parquet")
        pd.testing.assert_frame_equal(
            mine.drop(columns="seconds", errors="ignore"), theirs.drop(columns="seconds", errors="ignore")
        )
    assert (pd.read_csv(out / "images.csv")["flagged"].fillna("") != "").sum() == 2
    assert sorted(p.name for p in out.glob("plate_*.png")) == ["plate_P1.png", "plate_P2.png"]


def test_the_script_refuses_what_the_engine_refuses(tmp_path: Path, screen) -> None:
    script = _script(screen, tmp_path)
    out = tmp_path / "out"
    result = _run(
        script, screen, out, "--annotations", str(screen.annotations), "--negative-control", "control=none"
    )
    assert result.returncode == 2
    assert "negative control control=none matches no image" in result.stderr
    assert "--negative-control" in result.stderr  # the flag to change
    assert not (out / "images.csv").exists()
