"""The benchmarks' commands run end to end on a few small images: the scale benchmark
saves its table (about 30 s on 2 quiet cores: every row is a fresh Python process), the
start-up benchmark times a one-image run (about 10 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_bench_scale_runs_and_every_row_counts_the_same_objects(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(BENCHMARKS / "bench_scale.py"),
        "--images", "3",
        "--size", "128",
        "--rows", "loop,serial,halves",
        "--variants", "three",
        "--workdir", str(tmp_path),
        "--results", str(tmp_path / "results"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "serial engine / hand loop" in done.stdout, done.stderr[-3000:]
    saved = json.loads((tmp_path / "results" / "scale-3.json").read_text())
    rows = {(t["variant"], t["row"]) for t in saved["times"]}
    assert rows == {("three", "loop"), ("three", "serial"), ("three", "halves")}
    assert all(t["equal"] for t in saved["times"]), saved["times"]
    assert {t["what"] for t in saved["targets"]} >= {"three: serial engine / hand loop, time"}
    assert (tmp_path / "results" / "scale-3.png").stat().st_size > 0
    assert list(tmp_path.iterdir()) == [tmp_path / "results"]  # the images are removed


@pytest.mark.slow
def test_bench_scale_runs_two_counts_in_one_run_and_says_what_auto_ran(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(BENCHMARKS / "bench_scale.py"),
        "--images", "2,3",
        "--size", "96",
        "--rows", "loop,serial,joblib,auto",
        "--variants", "single",
        "--no-read",
        "--workdir", str(tmp_path),
        "--results", str(tmp_path / "results"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "2 and 3 images" in done.stdout, done.stderr[-3000:]
    saved = json.loads((tmp_path / "results" / "scale-2-3.json").read_text())
    rows = {(t["variant"], t["row"]) for t in saved["times"]}
    assert rows == {(f"{n} single", row) for n in (2, 3) for row in ("loop", "serial", "joblib", "auto")}
    auto = [t for t in saved["targets"] if "auto (the default executor)" in t["what"]]
    assert len(auto) == 2 and all("auto ran threads" in t["detail"] for t in auto), auto


@pytest.mark.slow
def test_bench_startup_times_a_one_image_run_against_a_script(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCHMARKS / "bench_startup.py"), "--size", "128", "--rounds", "1"]
    command += ["--imports", "--workdir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "one-image run, serial / hand-written script" in done.stdout, done.stderr[-3000:]
    assert "one-image run, processes / hand-written script" in done.stdout
    assert "imports of napari_batch_pipeline" in done.stdout
    assert list(tmp_path.iterdir()) == []  # its files are removed


@pytest.mark.slow
def test_bench_classifier_compares_the_stage_with_predict_segmenter() -> None:
    command = [sys.executable, str(BENCHMARKS / "bench_classifier.py"), "--size", "128", "--trees", "5"]
    done = subprocess.run([*command, "--rounds", "1"], capture_output=True, text=True, timeout=300)
    assert "pixel_classifier predict / predict_segmenter, same forest" in done.stdout, done.stderr[-3000:]
    assert "the two classings differ" not in done.stderr


@pytest.mark.slow
def test_bench_classifier_accuracy_scores_the_gradient_case_without_shared_data() -> None:
    command = [sys.executable, str(BENCHMARKS / "bench_classifier_accuracy.py"), "--data", "none"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "background gradient, strokes on one image: worst IoU" in done.stdout
    assert "PASS" in done.stdout and "the synthetic case only" in done.stderr
