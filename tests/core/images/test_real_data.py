"""Real microscopy data end to end: named channels, scenes, time points, z stacks, channel
files and pixel sizes, every number checked against scikit-image called directly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import filters, measure

from napari_batch_pipeline import run_batch
from napari_batch_pipeline.core.synthetic import nuclei_image

CHANNEL_PIPELINE = """\
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

PLAIN_PIPELINE = """\
version: 1
name: nuclei
stages:
  - {name: blurred, function: gaussian, params: {sigma: 1.0}}
  - {name: mask, function: threshold}
  - {name: labels, function: label, save: true}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: input}
    params: {properties: [area, intensity_mean], units: UNITS}
"""


def by_hand(dna: np.ndarray, intensity: np.ndarray, spacing: tuple[float, ...] | None = None) -> pd.DataFrame:
    """The chain, written with scikit-image directly."""
    smoothed = filters.gaussian(dna, sigma=1.0, preserve_range=True).astype(np.float32)
    labels = measure.label(smoothed > filters.threshold_otsu(smoothed), connectivity=2)
    options = {"spacing": spacing} if spacing is not None else {}
    table = measure.regionprops_table(
        labels, intensity_image=intensity, properties=["label", "area", "intensity_mean"], **options
    )
    return pd.DataFrame(table)


def assert_rows(table: pd.DataFrame, expected: pd.DataFrame, **where: object) -> None:
    rows = table
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == len(expected) > 0
    for column in expected:
        np.testing.assert_allclose(rows[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-6)


def cell_field(seed: int, shape: tuple[int, int] = (64, 72)) -> np.ndarray:
    """Three channels: nuclei, noise, a cytoplasm-like intensity."""
    dna = nuclei_image(shape=shape, n_nuclei=5, radius=6, seed=seed)
    noise = np.random.default_rng(seed).integers(0, 500, shape).astype(np.uint16)
    cyto = (filters.gaussian(dna.astype(float), 4, preserve_range=True) * 0.5).astype(np.uint16)
    return np.stack([dna, noise, cyto])


def write_imagej_cyx(path: Path, data: np.ndarray) -> None:
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        metadata={"axes": "CYX", "Labels": ["ch0", "ch1", "ch2"], "unit": "um"},
        resolution=(1 / 0.5, 1 / 0.5),
    )


@pytest.mark.parametrize(
    ("executor", "strategy"), [("serial", "vertical"), ("processes", "vertical"), ("threads", "horizontal")]
)
def test_named_channels_give_scikit_image_numbers(tmp_path: Path, executor: str, strategy: str) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    fields = {f"field{i}.tif": cell_field(seed=i) for i in (1, 2)}
    for name, data in fields.items():
        write_imagej_cyx(folder / name, data)
    pipeline = tmp_path / "cells.yaml"
    pipeline.write_text(CHANNEL_PIPELINE)
    report = run_batch(pipeline, folder, tmp_path / "run", executor=executor, workers=2, strategy=strategy)
    assert report.exit_code == 0, report.images
    cells = pd.read_csv(tmp_path / "run" / "cells.csv")
    for name, data in fields.items():
        assert_rows(cells, by_hand(data[0], data[2]), image=name)
    images = pd.read_csv(tmp_path / "run" / "images.csv")
    assert images["pixel_size_x"].tolist() == pytest.approx([0.5, 0.5])
    saved = tifffile.TiffFile(tmp_path / "run" / "labels" / "field1.tif")
    assert 'PhysicalSizeX="0.5"' in saved.ome_metadata


def test_each_scene_and_time_point_is_a_task(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    scenes = [nuclei_image(shape=(60, 64), n_nuclei=4, radius=5, seed=s) for s in (3, 4)]
    with tifffile.TiffWriter(folder / "plate.ome.tif", ome=True) as writer:
        for scene in scenes:
            writer.write(scene, metadata={"axes": "YX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3})
    movie = np.stack([nuclei_image(shape=(60, 64), n_nuclei=3, radius=5, seed=s) for s in (5, 6, 7)])
    tifffile.imwrite(folder / "movie.tif", movie, imagej=True, metadata={"axes": "TYX"})
    pipeline = tmp_path / "nuclei.yaml"
    pipeline.write_text(PLAIN_PIPELINE.replace("UNITS", "pixels"))
    report = run_batch(pipeline, folder, tmp_path / "run", executor="processes", workers=2)
    assert report.exit_code == 0, report.images

    images = pd.read_csv(tmp_path / "run" / "images.csv")
    assert images[["image", "scene", "t"]].values.tolist() == [
        ["movie.tif", 0, 0],
        ["movie.tif", 0, 1],
        ["movie.tif", 0, 2],
        ["plate.ome.tif", 0, 0],
        ["plate.ome.tif", 1, 0],
    ]
    nuclei = pd.read_csv(tmp_path / "run" / "nuclei.csv")
    for scene, data in enumerate(scenes):
        assert_rows(nuclei, by_hand(data, data), image="plate.ome.tif", scene=scene)
    for t, data in enumerate(movie):
        assert_rows(nuclei, by_hand(data, data), image="movie.tif", t=t)
    saved = sorted(p.name for p in (tmp_path / "run" / "labels").iterdir())
    assert saved == [
        "movie__s0__t0.tif",
        "movie__s0__t1.tif",
        "movie__s0__t2.tif",
        "plate__s0__t0.tif",
        "plate__s1__t0.tif",
    ]


def test_z_stacks_are_3d_and_measured_in_micrometres(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    plane = nuclei_image(shape=(48, 56), n_nuclei=4, radius=6, seed=8).astype(float)
    stack = np.stack([plane * w for w in (0.3, 0.8, 1.0, 0.8, 0.3)]).astype(np.uint16)
    tifffile.imwrite(
        folder / "stack.tif",
        stack,
        imagej=True,
        metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"},
        resolution=(1 / 0.5, 1 / 0.5),
    )
    pipeline = tmp_path / "nuclei.yaml"
    pipeline.write_text(PLAIN_PIPELINE.replace("UNITS", "physical"))
    report = run_batch(pipeline, folder, tmp_path / "run")
    assert report.exit_code == 0, report.images
    nuclei = pd.read_csv(tmp_path / "run" / "nuclei.csv")
    assert_rows(nuclei, by_hand(stack, stack, spacing=(2.0, 0.5, 0.5)), image="stack.tif")
    images = pd.read_csv(tmp_path / "run" / "images.csv")
    assert images.loc[0, ["pixel_size_z", "pixel_size_y", "pixel_size_x"]].tolist() == [2.0, 0.5, 0.5]
    with tifffile.TiffFile(tmp_path / "run" / "labels" / "stack.tif") as saved:
        assert saved.series[0].shape == stack.shape
        assert 'PhysicalSizeZ="2.0"' in saved.ome_metadata


def test_physical_units_without_a_pixel_size_fail_that_image(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "bare.tif", nuclei_image(shape=(48, 56), n_nuclei=3, radius=5, seed=9))
    pipeline = tmp_path / "nuclei.yaml"
    pipeline.write_text(PLAIN_PIPELINE.replace("UNITS", "physical"))
    report = run_batch(pipeline, folder, tmp_path / "run")
    assert report.exit_code == 1
    assert "pixel size" in report.images.loc[0, "error"]


def test_channels_in_separate_files(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "plate1").mkdir(parents=True)
    fields = {"plate1/A01": cell_field(seed=10), "plate1/A02": cell_field(seed=11)}
    for name, data in fields.items():
        tifffile.imwrite(folder / f"{name}_nuclei.tif", data[0])
        tifffile.imwrite(folder / f"{name}_actin.tif", data[2])
    tifffile.imwrite(
        folder / "plate1" / "A03_nuclei.tif", cell_field(seed=12)[0]
    )  # its actin file is missing
    pipeline = tmp_path / "cells.yaml"
    pipeline.write_text(
        CHANNEL_PIPELINE.replace(
            "dna: ch0          # by the name the file stores", 'dna: {file: "*_nuclei.tif"}'
        ).replace("cyto: 2           # by index", 'cyto: {file: "*_actin.tif"}')
    )
    report = run_batch(pipeline, folder, tmp_path / "run", recursive=True)
    images = pd.read_csv(tmp_path / "run" / "images.csv").set_index("image")
    assert images.loc["plate1/A01", "file.dna"] == "A01_nuclei.tif"
    assert images.loc["plate1/A01", "file.cyto"] == "A01_actin.tif"
    assert images.loc["plate1/A03", "status"] == "failed"
    assert (
        "'cyto'" in images.loc["plate1/A03", "error"] and "A03_actin.tif" in images.loc["plate1/A03", "error"]
    )
    assert report.exit_code == 1
    cells = pd.read_csv(tmp_path / "run" / "cells.csv")
    for name, data in fields.items():
        assert_rows(cells, by_hand(data[0], data[2]), image=name)


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("napari-batch-pipeline")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "napari_batch_pipeline.cli"]
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_multichannel_folder_without_channels_is_refused_with_the_lines_to_add(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    write_imagej_cyx(folder / "field1.tif", cell_field(seed=1))
    pipeline = tmp_path / "nuclei.yaml"
    pipeline.write_text(PLAIN_PIPELINE.replace("UNITS", "pixels"))
    result = run_cli("run", pipeline, folder, "-o", tmp_path / "run")
    assert result.returncode == 2, result.stderr
    message = textwrap.dedent(result.stderr)
    assert "field1.tif has 3 channels" in message
    assert "channels:" in message and "ch0: 0" in message
    assert not (tmp_path / "run" / "images.csv").exists()


def test_files_whose_outputs_would_collide_are_refused_naming_both(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    data = nuclei_image(shape=(40, 40), n_nuclei=2, radius=4, seed=2)
    tifffile.imwrite(folder / "a.tif", data)
    import imageio.v3 as iio

    iio.imwrite(folder / "a.png", (data // 256).astype(np.uint8))
    pipeline = tmp_path / "nuclei.yaml"
    pipeline.write_text(PLAIN_PIPELINE.replace("UNITS", "pixels"))
    result = run_cli("run", pipeline, folder, "-o", tmp_path / "run")
    assert result.returncode == 2
    assert "'a.png' and 'a.tif'" in result.stderr
    assert "--pattern" in result.stderr
