"""Painted training: the paintings of a stage make a training file whose hash names it, and
a forest the preview finds in memory; saved, the file trains the same forest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import filters

from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import forests
from napari_batch_pipeline.core.stages.training import file_sha256
from napari_batch_pipeline.core.synthetic import nuclei_image
from napari_batch_pipeline.core.tuning.training import PaintedTraining


def _painting(image: np.ndarray) -> np.ndarray:
    truth = filters.gaussian(image, 2, preserve_range=True) > filters.threshold_otsu(image)
    painted = np.zeros(image.shape, np.uint8)
    painted[10:60:5, ::4] = np.where(truth[10:60:5, ::4], 2, 1)
    return painted


def test_paintings_train_a_forest_the_preview_finds_and_save_writes_its_file(tmp_path: Path) -> None:
    forests._TRAINED.clear()
    first, second = (nuclei_image((80, 80), 6, 6.0, seed=s) for s in (0, 1))
    training = PaintedTraining("cells")
    training.paint("a", first, np.zeros(first.shape, np.uint8))
    with pytest.raises(ValueError, match="nothing is painted"):
        training.train({})
    training.paint("a", first, _painting(first))
    training.paint("b", second, _painting(second))
    stage = {"name": "cells", "function": "pixel_classifier", "params": {"trees": 8, "output": "mask"}}
    params = Pipeline([stage])["cells"].params
    name, sha = training.train(params)
    assert name == "cells_training.npz" and len(sha) == 64
    preview = Pipeline([{**stage, "params": {**stage["params"], "training": name, "training_sha256": sha}}])
    other = nuclei_image((80, 80), 6, 6.0, seed=5)
    shown = preview.run(other)["cells"]  # no file anywhere: the forest is in memory
    assert shown.any() and not shown.all()

    path = training.save(tmp_path)
    assert path == tmp_path / name and file_sha256(path) == sha
    preview.with_params({}).save(tmp_path / "cells.yaml")
    forests._TRAINED.clear()  # a new session: trained from the saved file
    saved = Pipeline.from_yaml(tmp_path / "cells.yaml")
    np.testing.assert_array_equal(saved.run(other)["cells"], shown)


def test_a_painting_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="training layer is"):
        PaintedTraining("cells").paint("a", np.zeros((8, 8)), np.zeros((8, 9), np.uint8))


def test_objects_take_the_class_painted_most_over_them_and_train_the_object_classifier() -> None:
    from skimage import measure

    forests._TRAINED.clear()
    image = nuclei_image((128, 128), 12, 7.0, seed=2)
    objects = measure.label(filters.gaussian(image, 2, preserve_range=True) > filters.threshold_otsu(image))
    table = measure.regionprops_table(objects, properties=["label", "area", "centroid"])
    large = table["area"] > np.median(table["area"])
    painted = np.zeros(objects.shape, np.uint8)
    for label, big, row, col in zip(
        table["label"], large, table["centroid-0"], table["centroid-1"], strict=True
    ):
        if label % 3:  # a third of the objects left unpainted: not chosen
            painted[int(row) - 1 : int(row) + 2, int(col) - 1 : int(col) + 2] = 2 if big else 1
    painted[objects == table["label"][1]] = 1  # mostly 1 over object 2, with a dab of 2
    painted[int(table["centroid-0"][1]), int(table["centroid-1"][1])] = 2
    training = PaintedTraining("kinds", "objects")
    training.paint_objects("a", objects, image, painted)
    (example,) = training.examples()
    classes = example["classes"]
    assert classes[0] == 0 and classes[2] == 1
    assert all(classes[label] == 0 for label in table["label"] if label % 3 == 0)
    assert all(
        classes[label] == (2 if big else 1)
        for label, big in zip(table["label"], large, strict=True)
        if label % 3 and label != 2
    )
    stage = {"name": "kinds", "function": "object_classifier", "inputs": {"labels": "input"}}
    stage["params"] = {"trees": 5, "properties": ["area"]}
    name, sha = training.train(Pipeline([stage])["kinds"].params)
    pipeline = Pipeline([{**stage, "params": {**stage["params"], "training": name, "training_sha256": sha}}])
    got = pipeline.run(objects)["kinds"]
    assert list(got["label"]) == list(table["label"]) and set(got["class"]) <= {1, 2}
