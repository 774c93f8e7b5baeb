"""Keys are text, always: folder names and metadata made of digits are never read as
numbers, in the tables read back, the summary and the per-object tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.pipeline import Pipeline
from napari_batch_pipeline.core.run_folder.reader import RunResults


def _text(path: Path) -> pd.DataFrame:
    """A CSV as its text says, every cell a string."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture
def folders_like_numbers(tmp_path: Path, image_folder: Path) -> Path:
    """Dataset folders ``1.1``, ``1.10`` and ``2``, two images each."""
    root = tmp_path / "datasets"
    images = sorted(image_folder.glob("*.tif"))
    for number, name in enumerate(["1.1", "1.10", "2"]):
        (root / name).mkdir(parents=True)
        for image in images[number : number + 2]:
            shutil.copy(image, root / name / image.name)
    return root


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_folders_named_like_numbers_stay_apart_and_as_written(
    pipeline: Pipeline, folders_like_numbers: Path, tmp_path: Path, executor: str
) -> None:
    out = tmp_path / "run"
    report = run_batch(pipeline, folders_like_numbers, out, recursive=True, executor=executor, workers=2)
    assert report.exit_code == 0
    results = RunResults(out)
    assert list(results.images["folder"].unique()) == ["1.1", "1.10", "2"]
    assert set(results.table("nuclei")["folder"]) == {"1.1", "1.10", "2"}
    assert list(report.images["folder"].unique()) == ["1.1", "1.10", "2"]
    summary = _text(out / "summary.csv")
    assert list(summary["folder"]) == ["1.1", "1.10", "2"]
    assert (summary["tasks_done"] == "2").all()


def test_metadata_made_of_digits_stays_text(pipeline: Pipeline, image_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "plates"
    folder.mkdir()
    images = sorted(image_folder.glob("*.tif"))
    names = ["007_a.tif", "7_b.tif", "90071992547409930_c.tif", "90071992547409931_d.tif"]
    for image, name in zip(images, names, strict=True):
        shutil.copy(image, folder / name)
    shutil.copy(images[0], folder / "other.tif")  # matches no pattern: an empty barcode
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="does not match"):
        run_batch(
            pipeline, folder, out, metadata=r"(?P<barcode>\d+)_", executor="serial", group_by=["barcode"]
        )
    results = RunResults(out)
    barcodes = results.images.set_index("image")["barcode"]
    assert barcodes["007_a.tif"] == "007" and barcodes["7_b.tif"] == "7"
    assert barcodes["90071992547409930_c.tif"] == "90071992547409930"
    assert barcodes["90071992547409931_d.tif"] == "90071992547409931"
    assert pd.isna(barcodes["other.tif"])
    assert set(results.table("nuclei")["barcode"].dropna()) == {
        "007",
        "7",
        "90071992547409930",
        "90071992547409931",
    }
    summary = _text(out / "summary.csv")
    assert sorted(summary["barcode"]) == sorted(["007", "7", "90071992547409930", "90071992547409931", ""])
