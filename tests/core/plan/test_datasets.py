"""Many datasets in one run: a parameter table gives each folder (or image, or metadata
value) its own parameters, and the summary aggregates per-image means by group."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.batch import BatchRun, run_batch
from napari_batch_pipeline.core.engine.report import Report
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.results.summary import default_group_by, summary_table

#: the images of the datasets, relative to the input folder
NAMES = ["top.tif", "A/img1.tif", "A/img2.tif", "A/img3.tif", "B/day 2/img1.tif", "B/day 2/img2.tif"]

#: first match wins: one image of A has its own row, above A's
TABLE = """\
folder,image,blurred.sigma,mask.method
,A/img2.tif,1.5,li
A,,1,li
./B/day 2/,,3,
"""

#: (folder, sigma, method) each image runs with; top.tif matches no row: the pipeline's values
USED = {
    "top.tif": (".", 2.0, "otsu"),
    "A/img1.tif": ("A", 1.0, "li"),
    "A/img2.tif": ("A", 1.5, "li"),
    "A/img3.tif": ("A", 1.0, "li"),
    "B/day 2/img1.tif": ("B/day 2", 3.0, "otsu"),
    "B/day 2/img2.tif": ("B/day 2", 3.0, "otsu"),
}


@pytest.fixture
def datasets(tmp_path: Path, write_images: Callable) -> Path:
    """Two dataset folders (one nested, with a space) and an image at the top."""
    folder = tmp_path / "datasets"
    write_images(folder, NAMES)
    return folder


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "params.csv"
    path.write_text(TABLE, encoding="utf-8")
    return path


@pytest.fixture
def datasets_run(tmp_path: Path, pipeline: Pipeline, datasets: Path, table: Path) -> Report:
    report = run_batch(pipeline, datasets, tmp_path / "run", recursive=True, params=table, executor="serial")
    assert report.exit_code == 0
    return report


# -- each dataset with its parameters ------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["vertical", "horizontal"])
def test_each_dataset_equals_scikit_image_with_its_parameters(
    tmp_path: Path,
    pipeline: Pipeline,
    datasets: Path,
    table: Path,
    by_hand: Callable,
    strategy: str,
) -> None:
    out = tmp_path / strategy
    report = run_batch(
        pipeline, datasets, out, recursive=True, params=table, executor="serial", strategy=strategy
    )
    assert report.exit_code == 0
    images = report.images.set_index("image")
    nuclei = report.tables["nuclei"]
    for name, (folder, sigma, method) in USED.items():
        labels, expected = by_hand(datasets / name, sigma=sigma, method=method)
        rows = nuclei[nuclei["image"] == name]
        assert len(rows) == len(expected) > 0, name
        for column in ("label", "area", "intensity_mean"):
            np.testing.assert_allclose(rows[column].to_numpy(float), expected[column].to_numpy(float))
        # the parameter and folder columns hold the values used, in every table
        assert set(rows["folder"]) == {folder}
        assert set(rows["blurred.sigma"]) == {sigma} and set(rows["mask.method"]) == {method}
        assert tuple(images.loc[name, ["folder", "blurred.sigma", "mask.method"]]) == (folder, sigma, method)
        assert images.loc[name, "nuclei.count"] == len(expected)
        # outputs keep their plain names: table values are not a sweep
        np.testing.assert_array_equal(tifffile.imread(out / "labels" / name), labels)
    info = json.loads((out / "run.json").read_text())["params"]
    assert info["table"] == str(table)
    assert info["columns"] == ["blurred.sigma", "mask.method"]
    assert (info["matched_tasks"], info["unmatched_tasks"]) == (5, 1)
    assert report.results.param_columns == []  # nothing swept: output names carry no label


def test_a_sweep_beside_the_table(tmp_path: Path, pipeline: Pipeline, datasets: Path) -> None:
    table = tmp_path / "sigma.csv"
    table.write_text("image,blurred.sigma\nA/img2.tif,3\n", encoding="utf-8")
    out = tmp_path / "run"
    report = run_batch(
        pipeline,
        datasets,
        out,
        recursive=True,
        params=table,
        sweep={"mask.method": ["otsu", "li"]},
        executor="serial",
        limit=2,
    )
    assert report.exit_code == 0
    images = report.images
    assert images[["image", "blurred.sigma", "mask.method"]].values.tolist() == [
        ["A/img1.tif", 2.0, "otsu"],
        ["A/img1.tif", 2.0, "li"],
        ["A/img2.tif", 3.0, "otsu"],
        ["A/img2.tif", 3.0, "li"],
    ]
    assert (out / "labels" / "A" / "img1__mask.method=li.tif").exists()
    assert report.results.param_columns == ["mask.method"]  # the swept column names outputs
    assert report.results.row_stem(1) == "A/img1__mask.method=li"


# -- the summary -------------------------------------------------------------------------------


def test_summary_equals_pandas_by_hand(datasets_run: Report) -> None:
    images = pd.read_csv(datasets_run.output_dir / "images.csv")
    summary = pd.read_csv(datasets_run.output_dir / "summary.csv")
    assert summary["folder"].tolist() == ["A", "B/day 2", "."]  # in the order of the run
    per_image = images.groupby("folder", sort=False)
    for measurement in ("area", "intensity_mean"):
        means = per_image[f"nuclei.mean_{measurement}"]
        expected = {
            "mean": means.mean(),
            "sd": means.std(ddof=1),
            "sem": means.std(ddof=1) / np.sqrt(means.count()),
            "median": means.median(),
        }
        for name, values in expected.items():
            np.testing.assert_allclose(
                summary[f"nuclei.{measurement}.{name}"].to_numpy(float),
                values.to_numpy(float),
                rtol=1e-9,
                equal_nan=True,
                err_msg=f"{measurement}.{name}",
            )
    assert summary["tasks_done"].tolist() == [3, 2, 1]
    assert summary["tasks_failed"].tolist() == [0, 0, 0]
    assert summary["objects"].tolist() == per_image["nuclei.count"].sum().tolist()
    assert np.isnan(summary["nuclei.area.sd"][2])  # one image: no spread
    png = (datasets_run.output_dir / "summary.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    # from Python, grouped otherwise, as pandas gives it
    by_method = datasets_run.summary(group_by="mask.method")
    means = images.groupby("mask.method", sort=False)["nuclei.mean_area"]
    assert by_method["mask.method"].tolist() == ["li", "otsu"]
    np.testing.assert_allclose(by_method["nuclei.area.median"], means.median())
    np.testing.assert_allclose(by_method["nuclei.area.sd"], means.std(ddof=1))


def test_summary_counts_failed_tasks_and_skips_them(
    tmp_path: Path, pipeline: Pipeline, datasets: Path
) -> None:
    (datasets / "A" / "img4.tif").write_bytes(b"not an image")
    report = run_batch(pipeline, datasets, tmp_path / "run", recursive=True, executor="serial")
    summary = report.summary()
    row = summary.set_index("folder").loc["A"]
    assert (row["tasks_done"], row["tasks_failed"]) == (3, 1)
    done = report.images[(report.images["folder"] == "A") & (report.images["status"] == "done")]
    assert row["nuclei.area.mean"] == pytest.approx(done["nuclei.mean_area"].mean())


@pytest.mark.parametrize(
    ("columns", "metadata", "params", "expected"),
    [
        (["image", "folder", "well", "blurred.sigma"], ["well"], ["blurred.sigma"], ["folder"]),
        (["image", "well", "site", "blurred.sigma"], ["well", "site"], ["blurred.sigma"], ["well", "site"]),
        (["image", "blurred.sigma"], [], ["blurred.sigma"], ["blurred.sigma"]),
        (["image"], [], [], []),
    ],
)
def test_default_grouping(
    columns: list[str], metadata: list[str], params: list[str], expected: list[str]
) -> None:
    assert default_group_by(columns, metadata, params) == expected


def test_one_group_all_without_anything_to_group_by() -> None:
    images = pd.DataFrame(
        {
            "image": ["a", "b", "c", "d"],
            "status": ["done", "done", "done", "failed"],
            "nuclei.count": [2, 3, 0, np.nan],
            "nuclei.mean_area": [10.0, 20.0, np.nan, np.nan],
        }
    )
    summary = summary_table(images, ["nuclei"], [])
    assert summary.columns.tolist()[:4] == ["group", "tasks_done", "tasks_failed", "objects"]
    row = summary.iloc[0]
    assert (row["group"], row["tasks_done"], row["tasks_failed"], row["objects"]) == ("all", 3, 1, 5)
    # an image with no objects has no mean: it does not count as a replicate
    assert row["nuclei.area.mean"] == 15.0 and row["nuclei.area.median"] == 15.0
    assert row["nuclei.area.sd"] == pytest.approx(np.std([10, 20], ddof=1))
    assert row["nuclei.area.sem"] == pytest.approx(np.std([10, 20], ddof=1) / np.sqrt(2))


# -- refused before anything runs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("folder,blurd.sigma\nA,1\n", {}, ["column 2 ('blurd.sigma')", "no stage 'blurd'"]),
        ("folder,blurred.sigmaa\nA,1\n", {}, ["'blurred.sigmaa'", "no parameter 'sigmaa'", "sigma"]),
        ("plate,blurred.sigma\nA,1\n", {}, ["column 1 ('plate')", "not a key column", "folder, image"]),
        (
            "folder,blurred.sigma\nA,1\nB,abc\n",
            {},
            ["row 2 (line 3)", "'blurred.sigma'", "expected a number"],
        ),
        ("folder,mask.method\nA,otsu\nB,sharp\n", {}, ["row 2", "'mask.method'", "'sharp'"]),
        ("folder,blurred.sigma\nA,1,2\n", {}, ["row 1 (line 2)", "3 cell(s)"]),
        ("blurred.sigma\n1\n", {}, ["no key column"]),
        ("folder,blurred.sigma\nA,1\n", {"sweep": {"blurred.sigma": [1, 2]}}, ["also swept"]),
        ("folder,blurred.sigma\nA,1\n", {"group_by": "condition"}, ["group by 'condition'", "folder"]),
    ],
)
def test_a_bad_table_is_refused_naming_row_and_column(
    tmp_path: Path, pipeline: Pipeline, datasets: Path, text: str, options: dict, expected: list[str]
) -> None:
    table = tmp_path / "params.csv"
    table.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    with pytest.raises(PipelineError) as excinfo:
        BatchRun(pipeline, datasets, out, recursive=True, params=table, **options)
    for part in expected:
        assert part in str(excinfo.value)
    assert "params" in excinfo.value.options or "group_by" in excinfo.value.options
    assert not out.exists()


def test_a_missing_table_is_refused(tmp_path: Path, pipeline: Pipeline, datasets: Path) -> None:
    with pytest.raises(PipelineError, match=r"parameter table 'nothing\.csv' cannot be read"):
        BatchRun(pipeline, datasets, tmp_path / "run", params=tmp_path / "nothing.csv")


def test_metadata_fields_key_the_table(tmp_path: Path, pipeline: Pipeline, datasets: Path) -> None:
    table = tmp_path / "params.csv"
    table.write_text("number,blurred.sigma\n1,1\n2,3\n", encoding="utf-8")
    batch = BatchRun(
        pipeline, datasets, tmp_path / "run", recursive=True, metadata=r"img(?P<number>\d+)", params=table
    )
    used = {task.image: task.table_params["blurred.sigma"] for task in batch.tasks}
    assert used == {
        "top.tif": 2.0,
        "A/img1.tif": 1.0,
        "A/img2.tif": 3.0,
        "A/img3.tif": 2.0,
        "B/day 2/img1.tif": 1.0,
        "B/day 2/img2.tif": 3.0,
    }
    assert batch.unmatched == 2
    # keys match as text: '01' is not the number field '1', and is refused rather than guessed
    table.write_text("number,blurred.sigma\n01,1\n2,3\n", encoding="utf-8")
    with pytest.raises(
        PipelineError, match=r"row 1 \(line 2\): number '01' matches no image.*'1' only as a number"
    ):
        BatchRun(
            pipeline, datasets, tmp_path / "run", recursive=True, metadata=r"img(?P<number>\d+)", params=table
        )


# -- resume ------------------------------------------------------------------------------------


def test_resume_recomputes_only_the_tasks_whose_values_changed(
    tmp_path: Path,
    pipeline: Pipeline,
    datasets: Path,
    table: Path,
    datasets_run: Report,
    assert_same_tables: Callable,
) -> None:
    run = datasets_run.output_dir
    tables = {p.name: p.read_bytes() for p in run.glob("*.csv")}
    same = run_batch(pipeline, datasets, run, recursive=True, params=table, executor="serial")
    assert (same.skipped, same.done) == (6, 0)
    assert {p.name: p.read_bytes() for p in run.glob("*.csv")} == tables

    table.write_text(TABLE.replace("./B/day 2/,,3,", "B/day 2,,2.5,"), encoding="utf-8")
    changed = run_batch(pipeline, datasets, run, recursive=True, params=table, executor="serial")
    assert (changed.skipped, changed.done) == (4, 2)
    assert set(changed.images.loc[changed.images["folder"] == "B/day 2", "blurred.sigma"]) == {2.5}
    fresh = run_batch(pipeline, datasets, tmp_path / "fresh", recursive=True, params=table, executor="serial")
    assert_same_tables(run, fresh.output_dir)
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "summary.csv"), pd.read_csv(fresh.output_dir / "summary.csv")
    )
