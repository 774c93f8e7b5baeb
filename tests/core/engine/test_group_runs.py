"""Group stages in runs: every executor and strategy against numpy and scikit-image by hand,
vignetting corrected, failures counted per group, resume by group keys.

The by-hand computation follows DESIGN's definitions: the illumination function is
``gaussian(mean or median of the group's images in float64, smoothing,
preserve_range=True)`` as float32, and a corrected image is ``image / (illumination /
median(illumination))`` as float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import filters, measure

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image

EXECUTORS = ["serial", "threads", "processes", "dask"]
STRATEGIES = ["vertical", "horizontal"]
SHAPE = (64, 64)

CORRECTED = """\
version: 1
stages:
  - name: illum
    function: illumination
    group_by: [plate]
    params: {{statistic: {statistic}, smoothing: 4}}
  - name: flat
    function: correct_illumination
    inputs: {{image: input, illumination: illum}}
  - name: mask
    function: threshold
  - name: labels
    function: label
  - name: nuclei
    function: measure
    inputs: {{labels: labels, intensity: flat}}
"""


def _vignetting(shape: tuple[int, int], strength: float = 0.5) -> np.ndarray:
    """1 at the centre, falling with the squared distance to ``1 - strength`` at the corners."""
    rows, cols = np.indices(shape, dtype=np.float64)
    centre = (np.array(shape) - 1) / 2
    distance = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (centre**2).sum()
    return 1 - strength * distance


def _plates(
    folder: Path, per_plate: int = 3, shape: tuple[int, int] = SHAPE, strength: float = 0.5, **kwargs
) -> None:
    """Two plates (``p1``, ``p2``) of nuclei images, named ``<plate>_<n>.tif``; ``kwargs``
    go to ``nuclei_image``."""
    folder.mkdir(parents=True, exist_ok=True)
    factor = _vignetting(shape, strength)
    options = {"n_nuclei": 6, "radius": 5.0, **kwargs}
    for plate_number, plate in enumerate(("p1", "p2")):
        for index in range(per_plate):
            clean = nuclei_image(shape, seed=10 * plate_number + index, **options)
            tifffile.imwrite(folder / f"{plate}_{index}.tif", (clean * factor).astype(np.uint16))


def _by_hand(folder: Path, statistic: str = "mean", smoothing: float = 4.0) -> pd.DataFrame:
    """The per-object intensities of the corrected images, with numpy and scikit-image."""
    frames = []
    for plate in ("p1", "p2"):
        paths = sorted(folder.glob(f"{plate}_*.tif"))
        stack = np.stack([tifffile.imread(p).astype(np.float64) for p in paths])
        statistic_image = stack.mean(axis=0) if statistic == "mean" else np.median(stack, axis=0)
        function = filters.gaussian(statistic_image, smoothing, preserve_range=True).astype(np.float32)
        for path in paths:
            image = tifffile.imread(path).astype(np.float64)
            flat = (image / (function.astype(np.float64) / np.median(function))).astype(np.float32)
            labels = measure.label(flat > filters.threshold_otsu(flat), connectivity=2)
            table = pd.DataFrame(
                measure.regionprops_table(labels, flat, properties=["label", "intensity_mean"])
            )
            table.insert(0, "image", path.name)
            frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _run(pipeline: str, folder: Path, out: Path, **options) -> pd.DataFrame:
    report = run_batch(
        Pipeline.from_text(pipeline), folder, out, metadata=r"(?P<plate>p\d)_\d+", workers=2, **options
    )
    assert report.failed == 0, report.images[["image", "error"]]
    return pd.read_csv(out / "nuclei.csv")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("executor", EXECUTORS)
def test_corrected_intensities_equal_the_computation_by_hand(tmp_path, executor, strategy):
    _plates(tmp_path / "in")
    statistic = "median" if strategy == "horizontal" else "mean"
    table = _run(
        CORRECTED.format(statistic=statistic),
        tmp_path / "in",
        tmp_path / "out",
        executor=executor,
        strategy=strategy,
    )
    expected = _by_hand(tmp_path / "in", statistic)
    got = table.sort_values(["image", "label"]).reset_index(drop=True)
    assert list(got["image"]) == list(expected["image"]) and list(got["label"]) == list(expected["label"])
    np.testing.assert_allclose(got["intensity_mean"], expected["intensity_mean"], rtol=1e-4)
    groups = pd.read_csv(tmp_path / "out" / "groups.csv")
    assert list(groups["group"]) == ["p1", "p2"] and list(groups["plate"]) == ["p1", "p2"]
    assert list(groups["images"]) == [3, 3] and list(groups["images_failed"]) == [0, 0]


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_the_group_result_is_saved_with_its_pixel_size(tmp_path, statistic):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(3):
        image = nuclei_image(SHAPE, n_nuclei=4, radius=5.0, seed=index)
        tifffile.imwrite(
            folder / f"p1_{index}.tif",
            image,
            imagej=True,
            resolution=(1 / 0.5, 1 / 0.5),
            metadata={"unit": "um"},
        )
    _run(CORRECTED.format(statistic=statistic), folder, tmp_path / "out")
    saved = tmp_path / "out" / "illum" / "p1.tif"
    with tifffile.TiffFile(saved) as tif:
        result = tif.asarray()
        x_resolution = tif.pages[0].tags["XResolution"].value
    stack = np.stack([tifffile.imread(p).astype(np.float64) for p in sorted(folder.glob("*.tif"))])
    statistic_image = stack.mean(axis=0) if statistic == "mean" else np.median(stack, axis=0)
    expected = filters.gaussian(statistic_image, 4, preserve_range=True).astype(np.float32)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    assert x_resolution[1] / x_resolution[0] == pytest.approx(0.5e-4)  # 0.5 um, in cm


def _counts(table: pd.DataFrame) -> pd.Series:
    return table.groupby("image").size()


def test_a_corrected_vignetted_folder_counts_the_objects_of_the_clean_folder(tmp_path):
    # dim nuclei, and light falling to 25 % in the corners: enough to change counts
    images = {"shape": (128, 128), "per_plate": 6, "n_nuclei": 15, "brightness": 0.35}
    _plates(tmp_path / "clean", strength=0.0, **images)
    _plates(tmp_path / "vignetted", strength=0.75, **images)
    plain = CORRECTED.format(statistic="mean").split("  - name: mask")[1].replace("flat", "input")
    plain = "version: 1\nstages:\n  - name: mask" + plain
    clean = _counts(_run(plain, tmp_path / "clean", tmp_path / "out_clean")).sum()
    vignetted = _counts(_run(plain, tmp_path / "vignetted", tmp_path / "out_vignetted")).sum()
    correcting = CORRECTED.format(statistic="median").replace("smoothing: 4", "smoothing: 10")
    corrected = _counts(_run(correcting, tmp_path / "vignetted", tmp_path / "out_corrected")).sum()
    assert abs(corrected - clean) <= 0.03 * clean
    assert abs(vignetted - clean) > abs(corrected - clean)  # the vignetting did change counts


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_replaced_member_recomputes_its_group_and_that_group_only(tmp_path, strategy):
    folder, out = tmp_path / "in", tmp_path / "out"
    _plates(folder)
    pipeline = CORRECTED.format(statistic="mean")
    _run(pipeline, folder, out, strategy=strategy)
    kept = (out / "illum" / "p2.tif").stat().st_mtime_ns
    before = pd.read_csv(out / "groups.csv").set_index("group")["key"]
    replacement = nuclei_image(SHAPE, n_nuclei=8, radius=5.0, seed=99) * _vignetting(SHAPE)
    tifffile.imwrite(folder / "p1_1.tif", replacement.astype(np.uint16))
    report = run_batch(
        Pipeline.from_text(pipeline), folder, out, metadata=r"(?P<plate>p\d)_\d+", strategy=strategy
    )
    assert (report.done, report.skipped, report.failed) == (3, 3, 0)  # p1's three tasks
    assert (out / "illum" / "p2.tif").stat().st_mtime_ns == kept
    after = pd.read_csv(out / "groups.csv").set_index("group")["key"]
    assert after["p2"] == before["p2"] and after["p1"] != before["p1"]
    fresh = _run(pipeline, folder, tmp_path / "fresh", strategy=strategy)
    resumed = pd.read_csv(out / "nuclei.csv")
    pd.testing.assert_frame_equal(resumed, fresh)
    columns = ["image", "status", "nuclei.count"]
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "images.csv")[columns], pd.read_csv(tmp_path / "fresh" / "images.csv")[columns]
    )


def test_fresh_deletes_the_group_results_it_wrote_and_nothing_else(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _plates(folder)
    pipeline = CORRECTED.format(statistic="mean")
    _run(pipeline, folder, out)
    (folder / "p2_0.tif").unlink()
    (folder / "p2_1.tif").unlink()
    (folder / "p2_2.tif").unlink()
    mine = out / "illum" / "notes.tif"
    mine.write_bytes(b"a user's file")
    _run(pipeline, folder, out, fresh=True)
    assert not (out / "illum" / "p2.tif").exists() and (out / "illum" / "p1.tif").exists()
    assert mine.read_bytes() == b"a user's file"
    assert list(pd.read_csv(out / "groups.csv")["group"]) == ["p1"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_images_whose_upstream_failed_are_left_out_and_counted(tmp_path, strategy):
    folder, out = tmp_path / "in", tmp_path / "out"
    _plates(folder)
    (folder / "p1_9.tif").write_bytes(b"not a tiff")
    for index in range(2):
        (folder / f"p3_{index}.tif").write_bytes(b"not a tiff either")
    report = run_batch(
        Pipeline.from_text(CORRECTED.format(statistic="mean")),
        folder,
        out,
        metadata=r"(?P<plate>p\d)_\d+",
        strategy=strategy,
    )
    images = report.images.set_index("image")
    assert report.failed == 3 and report.done == 6
    assert images.loc["p1_9.tif", "status"] == "failed"
    assert all(images.loc[["p3_0.tif", "p3_1.tif"], "status"] == "failed")
    groups = pd.read_csv(out / "groups.csv").set_index("group")
    assert (groups.loc["p1", "images"], groups.loc["p1", "images_failed"]) == (3, 1)
    assert (groups.loc["p3", "images"], groups.loc["p3", "images_failed"]) == (0, 2)
    assert not (out / "illum" / "p3.tif").exists()
    table = pd.read_csv(out / "nuclei.csv").sort_values(["image", "label"]).reset_index(drop=True)
    (folder / "p1_9.tif").unlink()
    for index in range(2):
        (folder / f"p3_{index}.tif").unlink()
    expected = _by_hand(folder)  # the broken image is left out of p1's statistic
    np.testing.assert_allclose(table["intensity_mean"], expected["intensity_mean"], rtol=1e-4)


def test_images_of_one_group_with_different_shapes_fail_that_group_naming_them(tmp_path):
    folder = tmp_path / "in"
    _plates(folder)
    tifffile.imwrite(folder / "p2_5.tif", nuclei_image((48, 64), n_nuclei=3, radius=5.0))
    report = run_batch(
        Pipeline.from_text(CORRECTED.format(statistic="mean")),
        folder,
        tmp_path / "out",
        metadata=r"(?P<plate>p\d)_\d+",
    )
    images = report.images.set_index("image")
    assert report.failed == 4 and report.done == 3
    assert all("(64, 64)" in e and "(48, 64)" in e for e in images.loc[images["status"] == "failed", "error"])


def test_a_sweep_of_a_group_stage_learns_one_result_per_value(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _plates(folder)
    _run(CORRECTED.format(statistic="mean"), folder, out, sweep={"illum.smoothing": [0, 4]})
    groups = pd.read_csv(out / "groups.csv")
    assert len(groups) == 4
    assert {p.name for p in (out / "illum").iterdir()} == {f"{g}.tif" for g in groups["group"]}
    assert set(groups["group"]) == {f"{p}__illum.smoothing={v}" for p in ("p1", "p2") for v in ("0.0", "4.0")}
    smoothed = tifffile.imread(out / "illum" / "p1__illum.smoothing=4.0.tif")
    unsmoothed = tifffile.imread(out / "illum" / "p1__illum.smoothing=0.0.tif")
    assert smoothed.std() < unsmoothed.std()
    images = pd.read_csv(out / "images.csv")
    assert len(images) == 12 and set(images["status"]) == {"done"}


def test_a_group_column_that_does_not_exist_is_refused_before_any_image_is_read(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.tif").write_bytes(b"never read")
    pipeline = Pipeline.from_text(CORRECTED.format(statistic="mean").replace("[plate]", "[well]"))
    with pytest.raises(PipelineError, match=r"stage 'illum'.*group_by.*'well'.*expected one of.*folder"):
        run_batch(pipeline, folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_a_run_cancelled_in_the_group_passes_resumes_to_a_fresh_runs_tables(tmp_path, executor):
    from napari_batch_pipeline.core.batch import BatchRun
    from napari_batch_pipeline.core.engine.events import RunFinished, StageProgress

    folder, out = tmp_path / "in", tmp_path / "out"
    _plates(folder, per_plate=4)
    pipeline = Pipeline.from_text(CORRECTED.format(statistic="median"))
    batch = BatchRun(pipeline, folder, out, metadata=r"(?P<plate>p\d)_\d+", executor=executor, workers=2)
    for event in batch.events():
        if isinstance(event, StageProgress) and event.stage == "illum" and event.done >= 2:
            batch.cancel()
        if isinstance(event, RunFinished):
            report = event.report
    assert report.cancelled and report.done < report.total
    resumed = _run(CORRECTED.format(statistic="median"), folder, out, executor=executor)
    fresh = _run(CORRECTED.format(statistic="median"), folder, tmp_path / "fresh", executor=executor)
    pd.testing.assert_frame_equal(resumed, fresh)
    groups = [pd.read_csv(o / "groups.csv").drop(columns="seconds") for o in (out, tmp_path / "fresh")]
    pd.testing.assert_frame_equal(*groups)


def test_an_added_member_recomputes_its_group(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _plates(folder)
    pipeline = CORRECTED.format(statistic="mean")
    _run(pipeline, folder, out)
    tifffile.imwrite(
        folder / "p2_3.tif",
        (nuclei_image(SHAPE, n_nuclei=6, radius=5.0, seed=7) * _vignetting(SHAPE)).astype(np.uint16),
    )
    report = run_batch(Pipeline.from_text(pipeline), folder, out, metadata=r"(?P<plate>p\d)_\d+")
    assert (report.done, report.skipped) == (4, 3)  # p2's three tasks again, and the new one
    assert pd.read_csv(out / "groups.csv").set_index("group").loc["p2", "images"] == 4
    table = pd.read_csv(out / "nuclei.csv").sort_values(["image", "label"]).reset_index(drop=True)
    np.testing.assert_allclose(table["intensity_mean"], _by_hand(folder)["intensity_mean"], rtol=1e-4)


def test_a_parameter_table_sets_each_groups_parameters(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _plates(folder)
    table = tmp_path / "params.csv"
    table.write_text("plate,illum.smoothing\np1,2\np2,6\n")
    _run(CORRECTED.format(statistic="mean"), folder, out, params=table)
    for plate, smoothing in (("p1", 2.0), ("p2", 6.0)):
        stack = np.stack(
            [tifffile.imread(p).astype(np.float64) for p in sorted(folder.glob(f"{plate}_*.tif"))]
        )
        expected = filters.gaussian(stack.mean(axis=0), smoothing, preserve_range=True).astype(np.float32)
        np.testing.assert_allclose(tifffile.imread(out / "illum" / f"{plate}.tif"), expected, rtol=1e-6)
    images = pd.read_csv(out / "images.csv").set_index("image")
    assert images.loc["p2_0.tif", "illum.smoothing"] == 6.0
