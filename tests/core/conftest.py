"""Fixtures of the batch engine tests: folders of synthetic images, a finished run.

They build on ``tests/conftest.py`` (``pipeline_yaml`` -> ``pipeline_file`` -> ``pipeline``):
``image_folder`` -> ``finished_run``. Images are small (96 x 96, 16-bit) so that a whole
run takes a fraction of a second.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import filters, measure

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.engine.report import Report
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image

#: a chain slow enough (about 0.1 s per 128 x 128 image) to be cancelled half-way
SLOW_PIPELINE = """\
version: 1
name: slow nuclei
stages:
  - name: background
    function: white_tophat
    params: {radius: 20}
  - name: blurred
    function: gaussian
    params: {sigma: 1}
  - name: mask
    function: threshold
  - name: labels
    function: label
    save: true
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: input}
"""


#: shape and content of the test images: a few nuclei on a 96 x 96 field
IMAGE_KWARGS = {"shape": (96, 96), "n_nuclei": 6, "radius": 6.0}


def _write_images(folder: Path, names: list[str], seed: int = 0) -> list[Path]:
    """Write one synthetic uint16 nuclei image per name (a different seed each)."""
    paths = []
    for number, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, nuclei_image(seed=seed + number, **IMAGE_KWARGS))
        paths.append(path)
    return paths


def _by_hand(path: Path, sigma: float = 2.0, method: str = "otsu") -> tuple[np.ndarray, pd.DataFrame]:
    """The DESIGN example pipeline on one file, written with scikit-image alone."""
    image = tifffile.imread(path)
    blurred = filters.gaussian(image, sigma=sigma, preserve_range=True)
    mask = blurred > getattr(filters, f"threshold_{method}")(blurred)
    labels = measure.label(mask, connectivity=2)
    table = measure.regionprops_table(
        labels, intensity_image=image, properties=["label", "area", "intensity_mean"]
    )
    return labels, pd.DataFrame(table)


def _reference_table(folder: Path, names: list[str]) -> pd.DataFrame:
    """Per-object table of the DESIGN example over ``names`` (relative to ``folder``)."""
    frames = []
    for name in names:
        _, table = _by_hand(folder / name)
        table.insert(0, "image", name)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _assert_same_tables(left: Path, right: Path, stages: Sequence[str] = ("nuclei",)) -> None:
    """Two run folders hold equal images.csv (``seconds`` aside) and stage tables."""
    pd.testing.assert_frame_equal(
        pd.read_csv(left / "images.csv").drop(columns="seconds"),
        pd.read_csv(right / "images.csv").drop(columns="seconds"),
    )
    for stage in stages:
        pd.testing.assert_frame_equal(pd.read_csv(left / f"{stage}.csv"), pd.read_csv(right / f"{stage}.csv"))


def _partial_files(folder: Path) -> list[Path]:
    """Temporary files of interrupted writes anywhere under ``folder``."""
    return [p for p in folder.rglob("*") if re.search(r"\.part(\.|$)", p.name)]


@pytest.fixture
def image_names() -> list[str]:
    """Names of the images of ``image_folder``, in natural order."""
    return [f"img{n}.tif" for n in (1, 2, 3, 10)]


@pytest.fixture
def image_folder(tmp_path: Path, image_names: list[str]) -> Path:
    """A folder of four 96 x 96 uint16 synthetic nuclei images (img1, img2, img3, img10)."""
    folder = tmp_path / "images"
    _write_images(folder, image_names)
    return folder


@pytest.fixture
def finished_run(tmp_path: Path, pipeline: Pipeline, image_folder: Path) -> Report:
    """The DESIGN example run serially over ``image_folder`` into ``tmp_path / 'run'``."""
    report = run_batch(pipeline, image_folder, tmp_path / "run", executor="serial")
    assert report.exit_code == 0
    return report


# -- helpers, handed to tests as fixtures ----------------------------------------------------


@pytest.fixture
def write_images() -> Callable[..., list[Path]]:
    """``write_images(folder, names, seed=0)``: one synthetic image per name."""
    return _write_images


@pytest.fixture
def by_hand() -> Callable[..., tuple[np.ndarray, pd.DataFrame]]:
    """``by_hand(path, sigma=2, method='otsu')``: the DESIGN example with scikit-image alone."""
    return _by_hand


@pytest.fixture
def reference_table() -> Callable[[Path, list[str]], pd.DataFrame]:
    """``reference_table(folder, names)``: the per-object table of a plain loop."""
    return _reference_table


@pytest.fixture
def assert_same_tables() -> Callable[..., None]:
    """``assert_same_tables(run_a, run_b)``: equal images.csv (seconds aside) and nuclei.csv."""
    return _assert_same_tables


@pytest.fixture
def partial_files() -> Callable[[Path], list[Path]]:
    """``partial_files(folder)``: temporary files of unfinished writes left under it."""
    return _partial_files


class SlowCase(NamedTuple):
    """Inputs for cancel and kill tests, with the tables of an uninterrupted run."""

    pipeline_file: Path
    folder: Path
    whole: Path


@pytest.fixture(scope="session")
def slow_case(tmp_path_factory: pytest.TempPathFactory) -> SlowCase:
    """:data:`SLOW_PIPELINE` over 24 synthetic 128 x 128 images (a few seconds of work), and
    its uninterrupted serial run. Shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("slow")
    pipeline_file = root / "slow.yaml"
    pipeline_file.write_text(SLOW_PIPELINE, encoding="utf-8")
    folder = root / "slow images"
    folder.mkdir()
    for number in range(24):
        image = nuclei_image(shape=(128, 128), n_nuclei=8, radius=6, seed=number)
        tifffile.imwrite(folder / f"img{number + 1}.tif", image)
    whole = root / "whole"
    assert run_batch(pipeline_file, folder, whole, executor="serial").exit_code == 0
    return SlowCase(pipeline_file, folder, whole)
