"""The exported script takes a parameter table and writes the summary, as the engine does:
the same tables with the same values per dataset, the same refusals with the same messages."""

from __future__ import annotations

import inspect
import os
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_batch_pipeline.cli_commands import flag_hint
from napari_batch_pipeline.core.batch import BatchRun, run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.export.runtime import ExportedPipeline, ExportedStage
from napari_batch_pipeline.core.export.script import script_text
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.plan import params_table
from napari_batch_pipeline.core.results import summary
from napari_batch_pipeline.core.stages import STAGES

#: three dataset folders and an image at the top; file names carry a number (metadata)
NAMES = ["A/img1.tif", "A/img2.tif", "B/img1.tif", "B/img2.tif", "C/img1.tif", "C/img2.tif", "top.tif"]

#: first match wins: one image of A has its own row; top.tif matches none (the pipeline's values)
TABLE = """\
folder,image,blurred.sigma,mask.method
,A/img2.tif,1.5,li
A,,1,li
B,,3,
C,,2.5,yen
"""

#: (sigma, method) each image runs with, by the table
USED = {
    "A/img1.tif": (1.0, "li"),
    "A/img2.tif": (1.5, "li"),
    "B/img1.tif": (3.0, "otsu"),
    "B/img2.tif": (3.0, "otsu"),
    "C/img1.tif": (2.5, "yen"),
    "C/img2.tif": (2.5, "yen"),
    "top.tif": (2.0, "otsu"),
}


@pytest.fixture
def datasets(tmp_path: Path, write_images: Callable) -> Path:
    """Three dataset folders (A, B, C) and an image at the top."""
    return write_images(tmp_path / "datasets", NAMES)[-1].parent


@pytest.fixture
def script(tmp_path: Path, pipeline: Pipeline) -> Path:
    path = tmp_path / "nuclei.py"
    path.write_text(script_text(pipeline), encoding="utf-8")
    return path


def _run(script: Path, *arguments: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *map(str, arguments)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _table(tmp_path: Path, text: str, name: str = "params.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _assert_same_run(engine: Path, script: Path) -> None:
    """images.csv (``seconds`` aside), nuclei.csv and summary.csv hold equal values."""
    for name in ("images.csv", "nuclei.csv", "summary.csv"):
        left, right = pd.read_csv(engine / name), pd.read_csv(script / name)
        if name == "images.csv":
            left, right = left.drop(columns="seconds"), right.drop(columns="seconds")
        pd.testing.assert_frame_equal(left, right, check_exact=True, obj=name)
    assert (script / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the same results as the engine, dataset by dataset -------------------------------------------


def test_script_applies_the_table_per_dataset_and_summarizes_as_the_engine(
    tmp_path: Path, pipeline: Pipeline, datasets: Path, script: Path, by_hand: Callable
) -> None:
    table = _table(tmp_path, TABLE)
    engine = run_batch(
        pipeline, datasets, tmp_path / "engine", recursive=True, params=table, executor="serial"
    )
    assert engine.exit_code == 0
    done = _run(script, datasets, tmp_path / "script", "--recursive", "--params", table)
    assert done.returncode == 0, done.stderr
    assert "6 task(s) take a row's values, 1 task(s) keep the pipeline's values" in done.stderr
    _assert_same_run(tmp_path / "engine", tmp_path / "script")

    # the values used differ by dataset as the table says, in every table
    images = pd.read_csv(tmp_path / "script" / "images.csv").set_index("image")
    nuclei = pd.read_csv(tmp_path / "script" / "nuclei.csv")
    for name, (sigma, method) in USED.items():
        assert tuple(images.loc[name, ["blurred.sigma", "mask.method"]]) == (sigma, method), name
        rows = nuclei[nuclei["image"] == name]
        assert set(rows["blurred.sigma"]) == {sigma} and set(rows["mask.method"]) == {method}
        _, expected = by_hand(datasets / name, sigma=sigma, method=method)
        assert len(rows) == len(expected) > 0, name
        np.testing.assert_allclose(rows["area"].to_numpy(float), expected["area"].to_numpy(float))

    # the summary: one row per folder, statistics over the per-image means
    table_rows = pd.read_csv(tmp_path / "script" / "summary.csv").set_index("folder")
    assert list(table_rows.index) == ["A", "B", "C", "."]
    means = images.groupby("folder")["nuclei.mean_area"]
    np.testing.assert_allclose(
        table_rows.loc[["A", "B", "C"], "nuclei.area.mean"], means.mean()[["A", "B", "C"]]
    )
    np.testing.assert_allclose(
        table_rows.loc[["A", "B", "C"], "nuclei.area.sd"], means.std()[["A", "B", "C"]]
    )
    assert (
        table_rows.loc["C", "tasks_done"] == 2
        and table_rows.loc[".", "objects"] == images.loc["top.tif", "nuclei.count"]
    )


def test_script_keys_the_table_by_metadata_and_groups_by_a_parameter(
    tmp_path: Path, pipeline: Pipeline, datasets: Path, script: Path
) -> None:
    table = _table(tmp_path, "number,blurred.sigma,mask.method\n1,1,li\n2,3,yen\n")
    metadata, group_by = r"img(?P<number>\d+)", "mask.method"
    options = {"metadata": metadata, "params": table, "group_by": group_by, "executor": "serial"}
    assert run_batch(pipeline, datasets, tmp_path / "engine", recursive=True, **options).exit_code == 0
    arguments = ["--recursive", "--metadata", metadata, "--params", table, "--group-by", group_by]
    done = _run(script, datasets, tmp_path / "script", *arguments)
    assert done.returncode == 0, done.stderr
    _assert_same_run(tmp_path / "engine", tmp_path / "script")
    images = pd.read_csv(tmp_path / "script" / "images.csv").set_index("image")
    assert (
        images.loc["A/img1.tif", "blurred.sigma"] == 1.0 and images.loc["B/img2.tif", "mask.method"] == "yen"
    )
    assert images.loc["top.tif", "blurred.sigma"] == 2.0  # no number: no row
    groups = pd.read_csv(tmp_path / "script" / "summary.csv")
    assert groups["mask.method"].tolist() == ["li", "yen", "otsu"]
    assert groups["tasks_done"].sum() == len(NAMES)


def test_script_without_a_table_groups_by_folder_like_the_engine(
    tmp_path: Path, pipeline: Pipeline, datasets: Path, script: Path
) -> None:
    assert (
        run_batch(pipeline, datasets, tmp_path / "engine", recursive=True, executor="serial").exit_code == 0
    )
    done = _run(script, datasets, tmp_path / "script", "--recursive")
    assert done.returncode == 0, done.stderr
    _assert_same_run(tmp_path / "engine", tmp_path / "script")
    assert "folder" in pd.read_csv(tmp_path / "script" / "nuclei.csv").columns


# -- refused before anything runs, with the engine's message ---------------------------------------


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("folder,blurd.sigma\nA,1\n", []),  # no such stage
        ("folder,blurred.sigmaa\nA,1\n", []),  # no such parameter
        ("plate,blurred.sigma\nA,1\n", []),  # not a key column
        ("folder,blurred.sigma\nA,1\nB,abc\n", []),  # the wrong type
        ("folder,mask.method\nA,otsu\nB,sharp\n", []),  # not one of the methods
        ("folder,blurred.sigma\nA,-1\n", []),  # the stage's own check
        ("folder,blurred.sigma\nA,20000\n", []),  # a length beyond its range
        ("folder,mask.method,mask.block_size\nA,local,30\n", []),  # two values together
        ("folder,blurred.sigma\nA,1,2\n", []),  # a cell too many
        ("blurred.sigma\n1\n", []),  # no key column
        ("folder,blurred.sigma\nA,1\n", ["--group-by", "condition"]),  # no such column
        ("folder,blurred.sigma\nA,1\n", ["--group-by", "folder,folder"]),
    ],
)
def test_script_refuses_a_bad_table_with_the_engine_message(
    tmp_path: Path,
    pipeline: Pipeline,
    datasets: Path,
    script: Path,
    text: str,
    options: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = _table(tmp_path, text)
    group_by = options[1] if options else None
    with pytest.raises(PipelineError) as refused:
        BatchRun(pipeline, datasets, tmp_path / "engine", recursive=True, params=table, group_by=group_by)
    expected = f"error: {refused.value}{flag_hint(refused.value.options)}"
    # the script's own main, in this process (the script runs as a program in the other tests)
    code = runpy.run_path(str(script))
    arguments = [str(datasets), str(tmp_path / "script"), "--recursive", "--params", str(table), *options]
    stages = (code["process"], code["SAVED_STAGES"], code["TABLE_STAGES"], code["CHANNELS"])
    assert code["main"](*stages, arguments, pipeline=code["PIPELINE"]) == 2
    assert capsys.readouterr().err.strip() == expected
    assert not (tmp_path / "script").exists()


def test_a_missing_table_is_refused(tmp_path: Path, datasets: Path, script: Path) -> None:
    done = _run(script, datasets, tmp_path / "script", "--params", tmp_path / "nothing.csv")
    assert done.returncode == 2
    assert "error: parameter table 'nothing.csv' cannot be read" in done.stderr
    assert done.stderr.rstrip().endswith("(command line: --params)")


# -- standalone: PyYAML only for a table, matplotlib only for the plot -----------------------------


def test_script_runs_without_pyyaml_and_matplotlib_but_a_table_needs_pyyaml(
    tmp_path: Path, datasets: Path, script: Path
) -> None:
    missing = tmp_path / "missing"
    for name in ("yaml", "matplotlib"):
        (missing / name).mkdir(parents=True)
        (missing / name / "__init__.py").write_text(f"raise ImportError('no {name} here')\n")
    env = {**os.environ, "PYTHONPATH": str(missing)}
    done = _run(script, datasets, tmp_path / "plain", "--recursive", env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "plain" / "summary.csv").is_file()
    assert not (tmp_path / "plain" / "summary.png").exists()
    done = _run(script, datasets, tmp_path / "table", "--params", _table(tmp_path, TABLE), env=env)
    assert done.returncode == 2
    assert "error: reading a parameter table needs PyYAML: pip install pyyaml (command line: --params)" in (
        done.stderr
    )
    assert not (tmp_path / "table").exists()


def test_script_copies_the_engine_table_and_summary_code(pipeline: Pipeline) -> None:
    text = script_text(pipeline)
    for definition in (
        params_table.apply_params_table,
        params_table.key_columns,
        params_table.TableRow,
        summary.summary_table,
        summary.summary_figure,
        summary.default_group_by,
        summary.check_group_by,
    ):
        source = inspect.getsource(definition).replace(": Pipeline", ": ExportedPipeline")
        assert source in text, definition.__name__
    # the pipeline a table is checked against is the script's stand-in, not the engine's
    assert "    pipeline: ExportedPipeline,\n" in text and "class Pipeline:" not in text
    assert "try:\n    import yaml\nexcept ImportError:" in text
    assert "PIPELINE = ExportedPipeline([" in text
    assert "ExportedStage('blurred', 'gaussian', {'sigma': BLURRED_SIGMA}, {'sigma': float}" in text


# -- the stand-in for the pipeline ----------------------------------------------------------------


def test_exported_pipeline_checks_values_as_the_pipeline() -> None:
    engine = Pipeline([{"name": "blurred", "function": "gaussian", "params": {"sigma": 2}}])
    check = STAGES["gaussian"].check
    exported = ExportedPipeline(
        [ExportedStage("blurred", "gaussian", {"sigma": 2}, {"sigma": float}, ("image",), check)]
    )
    assert exported["blurred"].params == {"sigma": 2.0}  # normalised as a pipeline file's value
    assert exported.with_params({"blurred.sigma": 3}).stage_names == ["blurred"]
    assert exported.with_params({"blurred.sigma": 3})["blurred"].params == {"sigma": 3.0}
    assert exported["blurred"].params == {"sigma": 2.0}  # unchanged
    # the same values accepted, and the same refused with the same message, stage and key
    for values in (
        {"blurred.sigma": 3},
        {"blurred.sigma": "x"},
        {"blurred.sigma": -1},
        {"blurred.sigma": 1e6},
        {"blurred.sigma": float("inf")},
        {"blurred.sigmaa": 1},
        {"blurd.sigma": 1},
    ):
        assert _outcome(exported, values) == _outcome(engine, values), values


def _outcome(pipeline: Pipeline | ExportedPipeline, values: dict) -> tuple:
    try:
        changed = pipeline.with_params(values)
    except PipelineError as error:
        return str(error), error.stage, error.key
    return ("accepted", changed["blurred"].params)
