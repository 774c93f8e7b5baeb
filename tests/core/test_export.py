"""The exported script reproduces the engine's tables; a run re-runs from its run.json."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from napari_batch_pipeline import Pipeline, run_batch
from napari_batch_pipeline.core import export_runtime
from napari_batch_pipeline.core.export import export_script, script_text
from napari_batch_pipeline.core.run_folder import layout, tables
from napari_batch_pipeline.core.stages import STAGES
from napari_batch_pipeline.core.stages.measure import DEFAULT_PROPERTIES
from napari_batch_pipeline.core.stages.segment import THRESHOLD_METHODS
from napari_batch_pipeline.core.synthetic import write_nuclei_folder

USER_STAGE = """
import numpy as np


def invert(image: "napari.types.ImageData", offset: float = 0.0) -> "napari.types.ImageData":
    return (image.max() - image.astype(np.float32) + offset).astype(np.float32)
"""

USER_PIPELINE = """
version: 1
name: inverted twice
stages:
  - name: flipped
    function: "userstages.ops:invert"
    params: {offset: 1.5}
  - name: back
    function: "userstages.ops:invert"
  - name: mask
    function: threshold
    params: {method: li}
  - name: cleaned
    function: remove_small_objects
    params: {min_size: 20}
  - name: labels
    function: label
    save: true
  - name: grown
    function: expand_labels
    params: {distance: 2}
    save: true
  - name: cells
    function: measure
    inputs: {labels: grown, intensity: input}
    params: {properties: [area, intensity_mean, eccentricity, centroid]}
"""


#: every built-in stage once; two table stages; a stage named like a module the script imports
EVERY_STAGE_PIPELINE = """
version: 1
name: every stage
stages:
  - {name: background, function: white_tophat, params: {radius: 10}}
  - {name: smooth, function: median, params: {radius: 1}}
  - {name: blurred, function: gaussian, params: {sigma: 1.5}}
  - {name: scaled, function: rescale_intensity, params: {in_range: [2, 99.5]}}
  - {name: mask, function: threshold, params: {method: local, block_size: 31, offset: -0.05}}
  - {name: opened, function: binary_opening}
  - {name: filled, function: fill_holes, params: {max_size: 30}}
  - {name: cleaned, function: remove_small_objects, params: {min_size: 10}}
  - {name: seeds, function: label, params: {connectivity: 1}}
  - {name: voronoi, function: voronoi_otsu_labeling, inputs: {image: input}}
  - name: split
    function: watershed
    inputs: {image: blurred, markers: seeds, mask: filled}
    save: true
  - {name: grown, function: expand_labels, params: {distance: 1}}
  - {name: cells, function: measure, inputs: {labels: grown, intensity: input}}
  - {name: measure, function: measure, inputs: {labels: voronoi}, params: {properties: [area]}}
"""


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    write_nuclei_folder(folder, count=4, shape=(128, 128), n_nuclei=12, radius=7)
    return folder


def _run_script(pipeline: Pipeline, images: Path, out: Path, env: dict[str, str] | None = None) -> None:
    script = out.parent / f"{out.name}.py"
    script.write_text(script_text(pipeline), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script), str(images), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def _assert_same_tables(engine: Path, script: Path, stages: list[str]) -> None:
    ignore = ["seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(engine / "images.csv").drop(columns=ignore),
        pd.read_csv(script / "images.csv").drop(columns=ignore),
    )
    for stage in stages:
        assert (engine / f"{stage}.csv").read_text() == (script / f"{stage}.csv").read_text()


def _imported_modules(text: str) -> set[str]:
    return {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }


def test_exported_script_is_standalone_python(pipeline: Pipeline) -> None:
    text = script_text(pipeline)
    tree = ast.parse(text)
    imported = _imported_modules(text)
    assert "napari_batch_pipeline" not in imported
    assert "napari" not in text.replace("napari-batch-pipeline", "")
    assert imported <= {
        "argparse",
        "collections",
        "re",
        "sys",
        "time",
        "pathlib",
        "typing",
        "numpy",
        "pandas",
        "tifffile",
        "scipy",
        "skimage",
    }
    assert "BLURRED_SIGMA = 2.0" in text
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"blurred", "mask", "labels", "nuclei", "process", "main"} <= functions


@pytest.mark.parametrize("which", ["design", "every stage"])
def test_exported_script_has_no_undefined_or_unused_names(
    pipeline: Pipeline, tmp_path: Path, which: str
) -> None:
    chosen = pipeline if which == "design" else Pipeline.from_text(EVERY_STAGE_PIPELINE)
    script = export_script(chosen, tmp_path / "script.py")
    compile(script.read_text(encoding="utf-8"), str(script), "exec")
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--select", "F", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_exported_script_copies_the_real_code(tmp_path: Path) -> None:
    text = script_text(Pipeline.from_text(EVERY_STAGE_PIPELINE))
    for function in (
        export_runtime.main,
        export_runtime.run_image,
        export_runtime.find_images,
        export_runtime.read_image,
        layout.output_stem,
        layout.path_stem,
        tables.summarize,
        tables.count_column,
        tables.mean_column,
    ):
        assert inspect.getsource(function) in text, function.__name__
    for name in ("IMAGES_TABLE", "TABLE_SUFFIX", "OUTPUT_SUFFIX"):
        assert f"\n{name} = {getattr(layout, name)!r}\n" in text
    for name in ("IMAGE", "LABEL"):
        assert f"\n{name} = {getattr(tables, name)!r}\n" in text
    assert f"\nDEFAULT_PROPERTIES = {DEFAULT_PROPERTIES!r}\n" in text
    assert "\nThresholdMethod = Literal[" + ", ".join(map(repr, THRESHOLD_METHODS)) + "]\n" in text
    # built-in stages: undecorated, renamed, the body as in the package
    assert "@stage" not in text
    for name in ("threshold", "measure", "watershed", "rescale_intensity"):
        source = inspect.getsource(inspect.unwrap(STAGES[name].function))
        body = source.split('"""', 2)[2]
        assert f"def stage_{name}(" in text
        assert body in text, name


def test_exported_script_gives_the_engine_tables(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path
) -> None:
    run_batch(pipeline, image_folder, tmp_path / "engine")
    _run_script(pipeline, image_folder, tmp_path / "script")
    _assert_same_tables(tmp_path / "engine", tmp_path / "script", ["nuclei"])
    for label in (tmp_path / "engine" / "labels").iterdir():
        assert label.read_bytes() == (tmp_path / "script" / "labels" / label.name).read_bytes()


def test_exported_script_with_every_stage_gives_the_engine_tables(image_folder: Path, tmp_path: Path) -> None:
    pipeline = Pipeline.from_text(EVERY_STAGE_PIPELINE)
    run_batch(pipeline, image_folder, tmp_path / "engine", executor="serial")
    _run_script(pipeline, image_folder, tmp_path / "script")
    _assert_same_tables(tmp_path / "engine", tmp_path / "script", ["cells", "measure"])
    saved = sorted((tmp_path / "engine" / "split").iterdir())
    assert saved
    for path in saved:
        assert path.read_bytes() == (tmp_path / "script" / "split" / path.name).read_bytes()


def test_exported_script_with_a_user_function(user_module, image_folder: Path, tmp_path: Path) -> None:
    user_module("userstages.ops", USER_STAGE)
    pipeline = Pipeline.from_text(USER_PIPELINE)
    run_batch(pipeline, image_folder, tmp_path / "engine", executor="serial")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "modules")}
    _run_script(pipeline, image_folder, tmp_path / "script", env=env)
    _assert_same_tables(tmp_path / "engine", tmp_path / "script", ["cells"])
    assert "from userstages.ops import invert as user_userstages_ops_invert" in script_text(pipeline)


def test_cli_export_script_and_from_run(pipeline_file: Path, image_folder: Path, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "napari_batch_pipeline.cli"]
    script = tmp_path / "nuclei.py"
    done = subprocess.run(
        [*cli, "export-script", str(pipeline_file), "-o", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert script.exists()
    first = tmp_path / "first"
    done = subprocess.run(
        [
            *cli,
            "run",
            str(pipeline_file),
            str(image_folder),
            "-o",
            str(first),
            "--executor",
            "threads",
            "--workers",
            "2",
            "--strategy",
            "horizontal",
            "--sweep",
            "blurred.sigma=1,2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    again = tmp_path / "again"
    done = subprocess.run(
        [*cli, "run", "--from-run", str(first), "-o", str(again), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "horizontal" in done.stderr and "threads" in done.stderr
    pd.testing.assert_frame_equal(pd.read_csv(first / "nuclei.csv"), pd.read_csv(again / "nuclei.csv"))
    images = pd.read_csv(again / "images.csv")
    assert sorted(images["blurred.sigma"].unique()) == [1.0, 2.0]
