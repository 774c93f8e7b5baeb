"""Classifier stages in runs: trained once, before the tasks, handed to every executor's
workers, the same tables and masks on each; training files checked before anything runs.

The pipeline file lies in its own folder with its training file beside it, named by a
relative path: worker processes never look for it (they start in another folder), so a
run that succeeds there got its forests in memory.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import filters, measure

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import forests
from napari_batch_pipeline.core.stages.classifiers import object_classifier, pixel_classifier
from napari_batch_pipeline.core.stages.training import write_training
from napari_batch_pipeline.core.synthetic import nuclei_image

PIPELINE = """\
version: 1
name: classified nuclei
stages:
  - name: nuclei_mask
    function: pixel_classifier
    params: {{training: pixels.npz, training_sha256: {pixels}, trees: {trees}, seed: 2,
              features: {{sigma_min: 1, sigma_max: 8}}, output: mask, foreground: 2}}
    save: true
  - name: labels
    function: label
  - name: kinds
    function: object_classifier
    inputs: {{labels: labels, intensity: input}}
    params: {{training: objects.npz, training_sha256: {objects}, trees: 10,
              properties: [area, intensity_mean]}}
"""


def _image(seed: int) -> np.ndarray:
    return nuclei_image(shape=(96, 96), n_nuclei=7, radius=6.0, seed=seed)


def _truth(image: np.ndarray) -> np.ndarray:
    return filters.gaussian(image, 2, preserve_range=True) > filters.threshold_otsu(image)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder of 4 images, and a pipeline file with its two training files beside it."""
    root = tmp_path_factory.mktemp("classify")
    images = root / "images"
    images.mkdir()
    for index in range(4):
        tifffile.imwrite(images / f"field_{index}.tif", _image(20 + index))
    trained_on = _image(0)
    truth = _truth(trained_on)
    painted = np.zeros(truth.shape, np.uint8)
    painted[::4, ::3] = np.where(truth[::4, ::3], 2, 1)
    folder = root / "pipeline"
    folder.mkdir()
    pixels = write_training(folder / "pixels.npz", [{"image": trained_on, "labels": painted}])
    objects = measure.label(truth)
    areas = np.bincount(objects.ravel())
    classes = np.where(areas > np.median(areas[1:]), 2, 1)
    classes[0] = 0
    sha = write_training(
        folder / "objects.npz", [{"objects": objects, "classes": classes, "image": trained_on}]
    )
    (folder / "pipeline.yaml").write_text(
        PIPELINE.format(pixels=pixels, objects=sha, trees=15), encoding="utf-8"
    )
    return folder / "pipeline.yaml", images


@pytest.fixture(scope="module")
def reference(setup: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serial run of the pipeline."""
    pipeline, images = setup
    out = tmp_path_factory.mktemp("serial") / "out"
    report = run_batch(pipeline, images, out, executor="serial")
    assert report.failed == 0, report.images[["image", "error"]]
    return out


def _same_run(out: Path, reference: Path) -> None:
    ours, theirs = (pd.read_csv(o / "images.csv").drop(columns="seconds") for o in (out, reference))
    pd.testing.assert_frame_equal(ours, theirs)
    assert (out / "kinds.csv").read_bytes() == (reference / "kinds.csv").read_bytes()
    for path in sorted((reference / "nuclei_mask").glob("*.tif")):
        np.testing.assert_array_equal(tifffile.imread(out / "nuclei_mask" / path.name), tifffile.imread(path))


def test_a_serial_run_gives_what_the_stages_give_called_directly(setup, reference) -> None:
    pipeline_file, images = setup
    pipeline = Pipeline.from_yaml(pipeline_file)
    folder = pipeline_file.parent
    params = {**pipeline["nuclei_mask"].params, "training": str(folder / "pixels.npz")}
    kinds = {**pipeline["kinds"].params, "training": str(folder / "objects.npz")}
    table = pd.read_csv(reference / "kinds.csv")
    frame = pd.read_csv(reference / "images.csv")
    for path in sorted(images.glob("*.tif")):
        image = tifffile.imread(path)
        mask = pixel_classifier(image, **params)
        np.testing.assert_array_equal(tifffile.imread(reference / "nuclei_mask" / path.name), mask)
        expected = object_classifier(measure.label(mask, connectivity=2), image, **kinds)
        rows = table[table["image"] == path.name]
        np.testing.assert_array_equal(rows["class"].to_numpy(), expected["class"].to_numpy())
        row = frame[frame["image"] == path.name].iloc[0]
        for kind in (1, 2):
            assert row[f"kinds.count_{kind}"] == int((expected["class"] == kind).sum())
    assert "kinds.mean_class" not in frame.columns
    assert frame["kinds.count_1"].sum() > 0 and frame["kinds.count_2"].sum() > 0


@pytest.mark.parametrize(
    ("executor", "strategy"),
    [("threads", "vertical"), ("processes", "vertical"), ("processes", "horizontal"), ("dask", "vertical")],
)
def test_every_executor_gives_the_serial_runs_tables_and_masks(
    setup, reference, tmp_path: Path, executor: str, strategy: str
) -> None:
    pipeline, images = setup
    report = run_batch(pipeline, images, tmp_path / "out", executor=executor, workers=2, strategy=strategy)
    assert report.failed == 0, report.images[["image", "error"]]
    _same_run(tmp_path / "out", reference)


def test_each_forest_is_trained_once_per_run_before_the_tasks(setup, tmp_path: Path, monkeypatch) -> None:
    pipeline, images = setup
    calls: list[str] = []
    for name in ("train_pixels", "train_objects"):
        original = getattr(forests, name)
        monkeypatch.setattr(forests, name, lambda *a, _o=original, _n=name: calls.append(_n) or _o(*a))
    forests._TRAINED.clear()
    run_batch(pipeline, images, tmp_path / "out", executor="threads", workers=2)
    assert sorted(calls) == ["train_objects", "train_pixels"]
    calls.clear()
    forests._TRAINED.clear()
    report = run_batch(
        pipeline, images, tmp_path / "swept", executor="threads", sweep={"nuclei_mask.trees": [5, 9]}
    )
    assert report.failed == 0
    assert sorted(calls) == ["train_objects", "train_pixels", "train_pixels"]  # one per forest setting


def test_a_changed_training_file_is_refused_before_any_image(setup, tmp_path: Path) -> None:
    pipeline_file, images = setup
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("pipeline.yaml", "objects.npz"):
        (copy / name).write_bytes((pipeline_file.parent / name).read_bytes())
    image = _image(0)
    write_training(
        copy / "pixels.npz", [{"image": image, "labels": (image > image.mean()).astype(np.uint8) + 1}]
    )
    with pytest.raises(PipelineError, match=r"stage 'nuclei_mask'.*pixels\.npz.*does not match its hash"):
        run_batch(copy / "pipeline.yaml", images, tmp_path / "out")
    assert not (tmp_path / "out" / "images.csv").exists()


def test_new_training_is_a_new_pipeline(setup, reference, tmp_path: Path) -> None:
    pipeline_file, images = setup
    first = Pipeline.from_yaml(pipeline_file)
    swept = first.with_params({"nuclei_mask.trees": 7})
    assert swept.hash != first.hash
    other = tmp_path / "retrained"
    other.mkdir()
    (other / "objects.npz").write_bytes((pipeline_file.parent / "objects.npz").read_bytes())
    image = _image(1)
    painted = np.zeros(image.shape, np.uint8)
    painted[::4, ::3] = np.where(_truth(image)[::4, ::3], 2, 1)
    sha = write_training(other / "pixels.npz", [{"image": image, "labels": painted}])
    text = pipeline_file.read_text(encoding="utf-8").replace(
        first["nuclei_mask"].params["training_sha256"], sha
    )
    (other / "pipeline.yaml").write_text(text, encoding="utf-8")
    retrained = Pipeline.from_yaml(other / "pipeline.yaml")
    assert retrained.hash != first.hash
    with pytest.raises(PipelineError, match=r"different pipeline|another pipeline|fresh"):
        run_batch(retrained, images, reference)


def test_the_estimate_counts_the_training_once_and_not_in_each_task(setup, monkeypatch) -> None:
    from napari_batch_pipeline.core.plan.batch_plan import plan_batch

    pipeline_file, images = setup
    original = forests.train_pixels

    def slow(*args):  # a training that takes at least 2 s
        time.sleep(2)
        return original(*args)

    monkeypatch.setattr(forests, "train_pixels", slow)
    forests._TRAINED.clear()
    planned = plan_batch(pipeline_file, images, executor="serial").estimate()
    assert planned.training_seconds >= 2
    assert planned.seconds_per_task < 2  # the measured task found the forest trained
    assert planned.seconds >= planned.training_seconds + planned.seconds_per_task * 4 * 0.99
    assert "(training " in planned.summary()
