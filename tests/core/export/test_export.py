"""The exported script reproduces the engine's tables; a run re-runs from its run.json."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline import Pipeline, run_batch
from napari_batch_pipeline.core.export import runtime as export_runtime
from napari_batch_pipeline.core.export.script import export_script, script_text
from napari_batch_pipeline.core.images import channels, fields, formats, sources
from napari_batch_pipeline.core.plan import Task, check_output_names
from napari_batch_pipeline.core.run_folder import layout, outputs, tables
from napari_batch_pipeline.core.stages import STAGES
from napari_batch_pipeline.core.stages.measure import DEFAULT_PROPERTIES
from napari_batch_pipeline.core.stages.segment import THRESHOLD_METHODS
from napari_batch_pipeline.core.synthetic import nuclei_image, write_nuclei_folder

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


def _run_script(
    pipeline: Pipeline,
    images: Path,
    out: Path,
    *options: str,
    env: dict[str, str] | None = None,
    exit_code: int = 0,
) -> None:
    script = out.parent / f"{out.name}.py"
    script.write_text(script_text(pipeline), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script), str(images), str(out), *options],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == exit_code, result.stderr


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
    assert "napari" not in text.replace("napari-batch-pipeline", "").replace("napari_batch_pipeline/", "")
    libraries = imported - set(sys.stdlib_module_names)
    # imageio comes with scikit-image; bioio is imported only for a vendor file, when installed;
    # yaml for a parameter table and matplotlib for summary.png, where installed
    assert {"numpy", "pandas", "tifffile", "skimage", "imageio", "bioio"} <= libraries
    optional = {"bioio", "yaml", "matplotlib"}
    assert libraries <= {"numpy", "pandas", "tifffile", "scipy", "skimage", "imageio", *optional}
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
    for definition in (
        export_runtime.main,
        export_runtime.run_task,
        sources.find_images,
        sources.Source,
        fields.plan_fields,
        fields.read_field,
        channels.parse_channels,
        formats.read_scene,
        formats.SceneInfo,
        Task,
        check_output_names,
        layout.output_stem,
        layout.path_stem,
        outputs.save_image,
        tables.summarize,
        tables.object_rows,
        tables.count_column,
        tables.mean_column,
    ):
        assert inspect.getsource(definition) in text, definition.__name__
    # two helpers named alike in two modules: the later one copied is renamed where it is used
    assert "def _describe(" in text and "def _describe_formats(" in text
    assert "raise ImageReadError(_describe_formats(path, error)) from None" in text
    # a missing vendor reader names the packages to install, not this package's extra
    assert "\nFORMATS_EXTRA = 'pip install bioio bioio-czi bioio-nd2 bioio-lif bioio-ome-zarr'\n" in text
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


# -- real microscopy data: channels, scenes, time points, z stacks, pixel sizes ---------------

CHANNEL_PIPELINE = """
version: 1
name: cells
channels:
  dna: ch0          # by the name the file stores
  cyto: 2           # by index
stages:
  - {name: blurred, function: gaussian, inputs: {image: dna}, params: {sigma: 1.0}}
  - {name: mask, function: threshold}
  - {name: labels, function: label, save: true}
  - name: cells
    function: measure
    inputs: {labels: labels, intensity: cyto}
    params: {properties: [area, intensity_mean]}
"""

NUCLEI_PIPELINE = """
version: 1
name: nuclei
stages:
  - {name: blurred, function: gaussian, params: {sigma: 1.0}, save: true}
  - {name: mask, function: threshold}
  - {name: labels, function: label, save: true}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: input}
    params: {properties: [area, intensity_mean, centroid], units: UNITS}
"""


def _nuclei(seed: int, shape: tuple[int, int] = (48, 56)) -> np.ndarray:
    return nuclei_image(shape=shape, n_nuclei=4, radius=5.0, seed=seed)


def _cell_field(seed: int) -> np.ndarray:
    """Three channels: nuclei, noise, a dimmer copy of the nuclei."""
    dna = _nuclei(seed)
    noise = np.random.default_rng(seed).integers(0, 500, dna.shape).astype(np.uint16)
    return np.stack([dna, noise, dna // 2 + 100])


def _pixel_size(path: Path) -> dict[str, str]:
    """The OME PhysicalSize attributes a saved output carries."""
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata or ""
    return dict(re.findall(r'(PhysicalSize[XYZ](?:Unit)?)="([^"]*)"', xml))


def _assert_same_outputs(engine: Path, script: Path, stages: list[str]) -> list[str]:
    """Every saved output of the engine, the same array with the same pixel size from the
    script; their names."""
    names = []
    for stage in stages:
        saved = sorted(p.relative_to(engine).as_posix() for p in (engine / stage).rglob("*.tif"))
        assert saved == sorted(p.relative_to(script).as_posix() for p in (script / stage).rglob("*.tif"))
        for name in saved:
            np.testing.assert_array_equal(tifffile.imread(engine / name), tifffile.imread(script / name))
            assert _pixel_size(engine / name) == _pixel_size(script / name), name
        names += saved
    return names


def _engine_and_script(pipeline: Pipeline, folder: Path, tmp_path: Path, exit_code: int = 0, **options: Any):
    """Run ``pipeline`` over ``folder`` with the engine and with its exported script."""
    report = run_batch(pipeline, folder, tmp_path / "engine", **options)
    assert report.exit_code == exit_code
    flags = ["--recursive"] if options.get("recursive") else []
    _run_script(pipeline, folder, tmp_path / "script", *flags, exit_code=exit_code)
    return tmp_path / "engine", tmp_path / "script"


def test_exported_script_names_channels_by_stored_name_and_index(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for number in (1, 2):
        tifffile.imwrite(
            folder / f"field{number}.tif",
            _cell_field(seed=number),
            imagej=True,
            metadata={"axes": "CYX", "Labels": ["ch0", "ch1", "ch2"], "unit": "um"},
            resolution=(1 / 0.5, 1 / 0.5),
        )
    pipeline = Pipeline.from_text(CHANNEL_PIPELINE)
    engine, script = _engine_and_script(pipeline, folder, tmp_path)
    _assert_same_tables(engine, script, ["cells"])
    assert _assert_same_outputs(engine, script, ["labels"]) == ["labels/field1.tif", "labels/field2.tif"]
    cells = pd.read_csv(script / "cells.csv")
    assert cells["intensity_mean"].gt(100).all()  # measured on the third channel
    assert pd.read_csv(script / "images.csv")["pixel_size_x"].tolist() == [0.5, 0.5]
    assert "\nCHANNELS = {'dna': 'ch0', 'cyto': 2}\n" in script_text(pipeline)


def test_exported_script_runs_each_scene_and_time_point(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    with tifffile.TiffWriter(folder / "plate.ome.tif", ome=True) as writer:
        for seed in (3, 4):
            writer.write(_nuclei(seed), metadata={"axes": "YX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3})
    movie = np.stack([_nuclei(seed) for seed in (5, 6, 7)])
    tifffile.imwrite(folder / "movie.tif", movie, imagej=True, metadata={"axes": "TYX"})
    pipeline = Pipeline.from_text(NUCLEI_PIPELINE.replace("UNITS", "pixels"))
    engine, script = _engine_and_script(pipeline, folder, tmp_path)
    _assert_same_tables(engine, script, ["nuclei"])
    images = pd.read_csv(script / "images.csv")
    assert images[["image", "scene", "t"]].values.tolist() == [
        ["movie.tif", 0, 0],
        ["movie.tif", 0, 1],
        ["movie.tif", 0, 2],
        ["plate.ome.tif", 0, 0],
        ["plate.ome.tif", 1, 0],
    ]
    assert images["scene_name"].notna().all()
    assert _assert_same_outputs(engine, script, ["blurred", "labels"])[-5:] == [
        "labels/movie__s0__t0.tif",
        "labels/movie__s0__t1.tif",
        "labels/movie__s0__t2.tif",
        "labels/plate__s0__t0.tif",
        "labels/plate__s1__t0.tif",
    ]
    assert _pixel_size(script / "labels" / "plate__s1__t0.tif")["PhysicalSizeX"] == "0.3"


def test_exported_script_measures_z_stacks_in_micrometres(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    plane = _nuclei(8).astype(float)
    stack = np.stack([plane * weight for weight in (0.3, 0.8, 1.0, 0.8, 0.3)]).astype(np.uint16)
    tifffile.imwrite(
        folder / "stack.tif",
        stack,
        imagej=True,
        metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"},
        resolution=(1 / 0.5, 1 / 0.5),
    )
    pipeline = Pipeline.from_text(NUCLEI_PIPELINE.replace("UNITS", "physical"))
    engine, script = _engine_and_script(pipeline, folder, tmp_path)
    _assert_same_tables(engine, script, ["nuclei"])
    images = pd.read_csv(script / "images.csv")
    assert images.loc[0, ["pixel_size_z", "pixel_size_y", "pixel_size_x"]].tolist() == [2.0, 0.5, 0.5]
    nuclei = pd.read_csv(script / "nuclei.csv")
    assert {"centroid-0", "centroid-1", "centroid-2"} <= set(nuclei.columns)  # measured in 3D
    _assert_same_outputs(engine, script, ["labels"])
    assert tifffile.imread(script / "labels" / "stack.tif").shape == stack.shape
    assert _pixel_size(script / "labels" / "stack.tif")["PhysicalSizeZ"] == "2.0"


def test_exported_script_with_channels_in_separate_files(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name, seed in (("A01", 10), ("A02", 11)):
        data = _cell_field(seed)
        tifffile.imwrite(folder / f"{name}_nuclei.tif", data[0])
        tifffile.imwrite(folder / f"{name}_actin.tif", data[2])
    tifffile.imwrite(folder / "A03_nuclei.tif", _cell_field(12)[0])  # its actin file is missing
    text = CHANNEL_PIPELINE.replace("dna: ch0 ", 'dna: {file: "*_nuclei.tif"}').replace(
        "cyto: 2 ", 'cyto: {file: "*_actin.tif"}'
    )
    pipeline = Pipeline.from_text(text)
    engine, script = _engine_and_script(pipeline, folder, tmp_path, exit_code=1)
    _assert_same_tables(engine, script, ["cells"])
    images = pd.read_csv(script / "images.csv").set_index("image")
    assert images.loc["A01", "file.cyto"] == "A01_actin.tif"
    assert images.loc["A03", "status"] == "failed"
    assert "'cyto'" in images.loc["A03", "error"] and "A03_actin.tif" in images.loc["A03", "error"]
    assert _assert_same_outputs(engine, script, ["labels"]) == ["labels/A01.tif", "labels/A02.tif"]


def test_exported_script_reads_ome_zarr_through_bioio(tmp_path: Path) -> None:
    writers = pytest.importorskip("bioio_ome_zarr.writers")
    folder = tmp_path / "images"
    folder.mkdir()
    plane = _cell_field(13)[[0, 2]].astype(float)
    data = np.stack([plane * weight for weight in (0.5, 1.0, 0.5)], axis=1).astype(np.uint16)[np.newaxis]
    writer = writers.OMEZarrWriter(
        str(folder / "volume.ome.zarr"),
        level_shapes=[data.shape],
        dtype=data.dtype,
        axes_names=["t", "c", "z", "y", "x"],
        axes_types=["time", "channel", "space", "space", "space"],
        axes_units=[None, None, "micrometer", "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 1.0, 1.0, 0.25, 0.25],
    )
    writer.write_full_volume(data)
    pipeline = Pipeline.from_text(
        CHANNEL_PIPELINE.replace("dna: ch0 ", "dna: 0   ").replace("cyto: 2 ", "cyto: 1 ")
    )
    engine, script = _engine_and_script(pipeline, folder, tmp_path)
    _assert_same_tables(engine, script, ["cells"])
    assert _assert_same_outputs(engine, script, ["labels"]) == ["labels/volume.tif"]
    assert tifffile.imread(script / "labels" / "volume.tif").shape == (3, 48, 56)
    assert _pixel_size(script / "labels" / "volume.tif")["PhysicalSizeZ"] == "1.0"


_NAMES = ['a """ b', "c ''' d", "e \\ f", 'g "', 'h\n"""\nimport os']


@pytest.mark.parametrize("name", _NAMES)
def test_any_pipeline_name_gives_a_script_that_parses(pipeline: Pipeline, name: str) -> None:
    # A name holding three double quotes ended the docstring: the script did not parse
    # (or, crafted, ran a statement of the name's).
    named = ast.parse(script_text(Pipeline(pipeline.stages, name=name)))
    plain = ast.parse(script_text(Pipeline(pipeline.stages, name="plain")))
    assert (ast.get_docstring(named) or "").startswith("Run the pipeline ")
    assert [type(n) for n in named.body] == [type(n) for n in plain.body]
