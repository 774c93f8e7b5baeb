"""The batch engine: tables equal to a plain loop on every executor and strategy, failures
that stay local, sweeps, reuse of horizontal intermediates, events and cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.batch import BatchRun, run_batch
from napari_batch_pipeline.core.engine.events import RunFinished, RunStarted, StageProgress, TaskFinished
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.run_folder.layout import INTERMEDIATE
from napari_batch_pipeline.core.synthetic import nuclei_image

EXECUTORS = ["serial", "threads", "processes", "dask"]
STRATEGIES = ["vertical", "horizontal"]


def assert_objects_equal(engine: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Same objects: the same labels and areas exactly, intensity means to rounding."""
    assert list(engine.columns) == list(reference.columns)
    assert len(engine) == len(reference)
    assert engine["image"].tolist() == reference["image"].tolist()
    assert engine["label"].tolist() == reference["label"].tolist()
    assert engine["area"].tolist() == reference["area"].tolist()
    np.testing.assert_allclose(engine["intensity_mean"], reference["intensity_mean"], rtol=1e-12)


# -- the DESIGN example equals a plain scikit-image loop --------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("executor", EXECUTORS)
def test_tables_and_labels_equal_a_plain_loop(
    tmp_path: Path,
    pipeline: Pipeline,
    image_folder: Path,
    image_names: list[str],
    executor: str,
    strategy: str,
    by_hand: Callable,
    reference_table: Callable,
    partial_files: Callable,
) -> None:
    out = tmp_path / "run"
    report = run_batch(pipeline, image_folder, out, executor=executor, workers=2, strategy=strategy)
    assert report.exit_code == 0
    assert (report.total, report.done, report.failed, report.skipped) == (4, 4, 0, 0)

    reference = reference_table(image_folder, image_names)
    nuclei = report.tables["nuclei"]
    assert_objects_equal(nuclei, reference)
    assert len(nuclei) > 8  # the images have objects to compare

    images = report.images
    assert images["image"].tolist() == image_names  # natural order: img10 last
    assert (images["status"] == "done").all()
    counts = reference.groupby("image", sort=False).size()
    assert images["nuclei.count"].tolist() == counts[image_names].tolist()
    mean_area = reference.groupby("image", sort=False)["area"].mean()
    np.testing.assert_allclose(images["nuclei.mean_area"], mean_area[image_names], rtol=1e-12)

    for name in image_names:
        saved = out / "labels" / name
        expected, _ = by_hand(image_folder / name)
        np.testing.assert_array_equal(tifffile.imread(saved), expected)
    assert partial_files(out) == []


# -- failures stay local ----------------------------------------------------------------------


@pytest.fixture
def mixed_folder(image_folder: Path) -> Path:
    """``image_folder`` with unreadable files first in order, and odd but valid images."""
    good = (image_folder / "img1.tif").read_bytes()
    (image_folder / "a truncated.tif").write_bytes(good[: len(good) // 2])
    (image_folder / "b empty.tif").write_bytes(b"")
    (image_folder / "c notes.txt").write_text("not an image\n")
    (image_folder / "d notes.tif").write_text("not a TIFF either\n")
    # valid: another shape and dtype, and a blank image with no objects
    tifffile.imwrite(
        image_folder / "img20.tif", nuclei_image(shape=(80, 120), n_nuclei=4, radius=6, dtype=np.uint8)
    )
    tifffile.imwrite(image_folder / "img30.tif", np.zeros((64, 64), np.uint16))
    return image_folder


BAD = {
    "a truncated.tif": "truncated",
    "b empty.tif": "zero-byte",
    "c notes.txt": "not a readable image",
    "d notes.tif": "not a readable image",
}


@pytest.mark.parametrize(("executor", "strategy"), [("serial", "vertical"), ("threads", "horizontal")])
def test_bad_files_fail_alone(
    tmp_path: Path,
    pipeline: Pipeline,
    mixed_folder: Path,
    image_names: list[str],
    executor: str,
    strategy: str,
    reference_table: Callable,
) -> None:
    out = tmp_path / "run"
    report = run_batch(pipeline, mixed_folder, out, pattern="*", executor=executor, strategy=strategy)
    assert report.exit_code == 1
    assert (report.total, report.done, report.failed) == (len(BAD) + 6, 6, len(BAD))

    images = report.images.set_index("image")
    for name, problem in BAD.items():
        assert images.loc[name, "status"] == "failed"
        assert name in images.loc[name, "error"] and problem in images.loc[name, "error"]
    good = [*image_names, "img20.tif", "img30.tif"]
    assert (images.loc[good, "status"] == "done").all()
    assert images.loc["img30.tif", "nuclei.count"] == 0
    assert images.loc["img20.tif", "nuclei.count"] > 0
    assert report.failures["image"].tolist() == list(BAD)

    nuclei = report.tables["nuclei"]
    assert set(nuclei["image"]) == {*image_names, "img20.tif"}
    assert_objects_equal(
        nuclei[nuclei["image"].isin(image_names)].reset_index(drop=True),
        reference_table(mixed_folder, image_names),
    )
    log = (out / "errors.log").read_text(encoding="utf-8")
    assert log.count("Traceback (most recent call last)") == len(BAD)
    for name in BAD:
        assert name in log
    assert (out / "labels" / "img30.tif").exists()
    assert not (out / "labels" / "b empty.tif").exists()


# -- sweeps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sweep_grid(
    tmp_path: Path,
    pipeline: Pipeline,
    write_images: Callable,
    by_hand: Callable,
    strategy: str,
) -> None:
    folder = tmp_path / "images"
    write_images(folder, ["cells 1.tif", "cells 2.tif"])
    out = tmp_path / "run"
    sweep = {"blurred.sigma": [1, 2, 3], "mask.method": ["otsu", "li"]}
    report = run_batch(pipeline, folder, out, sweep=sweep, strategy=strategy)
    assert report.exit_code == 0 and report.total == 12

    images = report.images
    assert len(images) == 12
    assert list(images.columns[:3]) == ["image", "blurred.sigma", "mask.method"]
    combos = images[["image", "blurred.sigma", "mask.method"]].itertuples(index=False, name=None)
    assert sorted(combos) == sorted(
        (image, float(s), m)
        for image in ("cells 1.tif", "cells 2.tif")
        for s in (1, 2, 3)
        for m in ("otsu", "li")
    )
    nuclei = report.tables["nuclei"]
    assert list(nuclei.columns) == [
        "image",
        "blurred.sigma",
        "mask.method",
        "label",
        "area",
        "intensity_mean",
    ]

    for row in images.itertuples(index=False):
        sigma, method = row[1], row[2]
        expected_labels, expected = by_hand(folder / row.image, sigma=sigma, method=method)
        stem = f"{Path(row.image).stem}__blurred.sigma={sigma},mask.method={method}"
        saved = out / "labels" / f"{stem}.tif"
        np.testing.assert_array_equal(tifffile.imread(saved), expected_labels)
        mine = nuclei[
            (nuclei["image"] == row.image)
            & (nuclei["blurred.sigma"] == sigma)
            & (nuclei["mask.method"] == method)
        ]
        assert mine["area"].tolist() == expected["area"].tolist()
        assert row[images.columns.get_loc("nuclei.count")] == len(expected)
    assert len(list((out / "labels").iterdir())) == 12

    if strategy == "horizontal":
        # tasks that share upstream parameters share intermediates: 3 blurs, 6 masks per image
        assert len(list((out / INTERMEDIATE / "blurred").rglob("*.npy"))) == 3 * 2
        assert len(list((out / INTERMEDIATE / "mask").rglob("*.npy"))) == 6 * 2


# -- horizontal intermediates are reused ------------------------------------------------------


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*.npy")}


def test_horizontal_rerun_reuses_unchanged_stages(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path, pipeline_yaml: str
) -> None:
    out = tmp_path / "run"
    run_batch(pipeline, image_folder, out, strategy="horizontal")
    before = _mtimes(out / INTERMEDIATE)
    assert len(before) == 3 * 4  # blurred, mask, labels for four images
    time.sleep(0.05)

    measured_more = Pipeline.from_text(
        pipeline_yaml.replace("[area, intensity_mean]", "[area, intensity_mean, eccentricity]")
    )
    report = run_batch(measured_more, image_folder, out, strategy="horizontal", fresh=True)
    assert report.exit_code == 0 and report.done == 4
    assert _mtimes(out / INTERMEDIATE) == before  # not one image array recomputed
    assert "eccentricity" in report.tables["nuclei"].columns
    # starting fresh deleted the old measure key's tables, which no stage reads any more
    assert len(list((out / INTERMEDIATE / "nuclei").iterdir())) == 1

    # a changed early stage recomputes everything downstream of it; the old ones go
    blurred_more = Pipeline.from_text(pipeline_yaml.replace("sigma: 2", "sigma: 3"))
    run_batch(blurred_more, image_folder, out, strategy="horizontal", fresh=True)
    after = _mtimes(out / INTERMEDIATE)
    assert not set(before) & set(after)
    assert len(after) == len(before)


# -- events -----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_events_start_finish_and_one_per_task(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path, strategy: str
) -> None:
    batch = BatchRun(
        pipeline, image_folder, tmp_path / "run", executor="threads", workers=2, strategy=strategy
    )
    events = list(batch.events())
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, (RunStarted, RunFinished)) for e in events) == 2
    started = events[0]
    assert (started.total, started.skipped, started.strategy, started.workers) == (4, 0, strategy, 2)
    assert started.estimate is not None and started.estimate.tasks == 4
    finished = [e for e in events if isinstance(e, TaskFinished)]
    assert sorted(e.image for e in finished) == sorted(["img1.tif", "img2.tif", "img3.tif", "img10.tif"])
    assert [e.done for e in finished] == [1, 2, 3, 4]
    assert all(e.status == "done" and e.total == 4 and e.failed == 0 for e in finished)
    assert all(e.record.traceback is None for e in finished)
    progress = [e for e in events if isinstance(e, StageProgress)]
    if strategy == "horizontal":
        assert [(e.stage, e.done) for e in progress if e.done == e.total] == [
            ("blurred", 4),
            ("mask", 4),
            ("labels", 4),
            ("nuclei", 4),
        ]
    else:
        assert progress == []
    report = events[-1].report
    assert report is batch.report and report.done == 4

    # run again: everything is resumed, no task runs
    again = list(BatchRun(pipeline, image_folder, tmp_path / "run", strategy=strategy).events())
    assert again[0].skipped == 4
    assert not [e for e in again if isinstance(e, TaskFinished)]
    assert again[-1].report.skipped == 4 and again[-1].report.exit_code == 0


# -- cancel -----------------------------------------------------------------------------------


def _cancel_when(batch: BatchRun, pattern: str, count: int) -> threading.Thread:
    """A thread that cancels ``batch`` once ``count`` files match ``pattern`` in its folder
    (a finished task in vertical runs, an intermediate in horizontal ones)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(list(batch.folder.path.glob(pattern))) >= count:
                batch.cancel()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("executor", "strategy"),
    [("threads", "vertical"), ("processes", "vertical"), ("processes", "horizontal")],
)
def test_cancel_stops_early_and_a_rerun_completes(
    tmp_path: Path,
    slow_case: Any,
    executor: str,
    strategy: str,
    assert_same_tables: Callable,
    partial_files: Callable,
) -> None:
    pipeline, folder = Pipeline.from_yaml(slow_case.pipeline_file), slow_case.folder
    out = tmp_path / "cancelled"
    batch = BatchRun(pipeline, folder, out, executor=executor, workers=2, strategy=strategy)
    if strategy == "vertical":
        watcher = _cancel_when(batch, ".parts/nuclei/*.csv", 3)
    else:  # half-way through the first stage
        watcher = _cancel_when(batch, f"{INTERMEDIATE}/background/*/*.npy", 3)
    events = list(batch.events())
    watcher.join()
    report = events[-1].report
    assert report.cancelled
    assert report.exit_code == 1
    assert report.done + report.failed < report.total // 2
    assert partial_files(out) == []
    assert partial_files(folder) == []
    images = report.images
    assert (images["status"] == "pending").sum() >= report.total // 2
    assert report.results.provenance["status"] == "cancelled"

    resumed = run_batch(pipeline, folder, out, executor=executor, workers=2, strategy=strategy)
    assert resumed.exit_code == 0 and not resumed.cancelled
    assert resumed.skipped + resumed.done == resumed.total
    assert resumed.skipped >= (1 if strategy == "vertical" else 0)

    assert_same_tables(out, slow_case.whole)
    for name in sorted(p.name for p in folder.iterdir()):
        np.testing.assert_array_equal(
            tifffile.imread(out / "labels" / name), tifffile.imread(slow_case.whole / "labels" / name)
        )


def test_process_batches_leave_joblib_working(pipeline: Pipeline, image_folder: Path, tmp_path: Path) -> None:
    """The engine's worker pool is its own: joblib (and scikit-learn) in the same session still work."""
    import joblib

    assert joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-n) for n in range(4)) == [0, 1, 2, 3]
    first = run_batch(pipeline, image_folder, tmp_path / "a", executor="processes", workers=2)
    assert first.exit_code == 0
    assert joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-n) for n in range(4)) == [0, 1, 2, 3]
    again = run_batch(pipeline, image_folder, tmp_path / "b", executor="processes", workers=2)
    assert again.exit_code == 0
