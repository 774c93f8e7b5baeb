"""Values that used to fail late or wrongly, from the command line: refused when the pipeline
is loaded, failing in the stage that is wrong, or taken as the numbers they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.synthetic import nuclei_image


def _images(folder: Path, count: int = 2, *, dark: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        image = nuclei_image((64, 64), n_nuclei=4, radius=5.0, seed=number)
        if dark:  # a black background: most pixels 0
            image = np.where(image > np.percentile(image, 80), image, 0).astype(image.dtype)
        tifffile.imwrite(folder / f"P1_A0{number + 1}.tif", image)
    return folder


FILTERED = """\
version: 1
stages:
  - {{name: mask, function: threshold}}
  - {{name: labels, function: label}}
  - name: kept
    function: filter_objects
    params: {{keep: {keep}}}
  - name: nuclei
    function: measure
    inputs: {{labels: kept, intensity: input}}
{quality}"""


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ("{area: [.nan, null]}", "keep.area: expected [min, max] (numbers, or null for no bound)"),
        (
            "{centroid: [0, 10]}",
            "keep.centroid gives several values per object (centroid-0, centroid-1, ...)",
        ),
    ],
)
def test_a_filter_range_that_cannot_work_is_refused_at_load(
    tmp_path: Path, cli_here, keep: str, message: str
) -> None:
    pipeline = tmp_path / "filtered.yaml"
    pipeline.write_text(FILTERED.format(keep=keep, quality=""))
    out = tmp_path / "out"
    result = cli_here("run", pipeline, _images(tmp_path / "images"), "-o", out, "--executor", "serial")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "stage 'kept'" in result.stderr and message in result.stderr, result.stderr
    assert not out.exists()


def test_numbers_written_with_an_exponent_are_numbers(tmp_path: Path, cli_here) -> None:
    pipeline = tmp_path / "filtered.yaml"
    quality = "quality:\n  - {measure: nuclei.count, max: 1e9}\n"
    pipeline.write_text(FILTERED.format(keep="{area: [1e1, 1e9]}", quality=quality))
    out = tmp_path / "out"
    result = cli_here("run", pipeline, _images(tmp_path / "images"), "-o", out, "--executor", "serial")
    assert result.returncode == 0, result.stderr
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert set(images["flagged"]) == {""} and (images["nuclei.count"] > 0).all()


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_an_illumination_function_of_median_zero_fails_the_correction_naming_it(
    tmp_path: Path, cli_here, executor: str
) -> None:
    pipeline = tmp_path / "illum.yaml"
    pipeline.write_text(
        "version: 1\nstages:\n"
        "  - {name: illum, function: illumination, params: {statistic: median, smoothing: 0}}\n"
        "  - {name: flat, function: correct_illumination, inputs: {image: input, illumination: illum}}\n"
        "  - {name: mask, function: threshold}\n"
        "  - {name: labels, function: label}\n"
    )
    out = tmp_path / "out"
    images = _images(tmp_path / "images", 3, dark=True)
    result = cli_here("run", pipeline, images, "-o", out, "--executor", executor, "--workers", "2")
    assert result.returncode == 1, result.stderr
    errors = pd.read_csv(out / "images.csv")["error"]
    assert all(
        "stage 'flat' (correct_illumination) failed" in e and "illumination function's median is 0" in e
        for e in errors
    ), list(errors)


def test_run_groups_the_summary_by_a_plate_map_column(tmp_path: Path, pipeline_file: Path, cli_here) -> None:
    images = _images(tmp_path / "images", 2)
    plate_map = tmp_path / "map.csv"
    plate_map.write_text("plate,well,compound\nP1,A01,DMSO\nP1,A02,cpd-1\n")
    out = tmp_path / "out"
    result = cli_here(
        "run", pipeline_file, images, "-o", out, "--executor", "serial", "--group-by", "compound",
        "--metadata", r"(?P<plate>P\d)_(?P<well>[A-H]\d\d)", "--annotations", plate_map,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list(pd.read_csv(out / "summary.csv")["compound"]) == ["DMSO", "cpd-1"]
