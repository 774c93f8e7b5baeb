"""The classifier stages against scikit-image's own trainable segmentation and scikit-learn.

The pixel classifier must give exactly what ``skimage.future.fit_segmenter`` and
``predict_segmenter`` give with the same forest settings on the same features; the
object classifier what a forest fitted on the same ``regionprops_table`` columns
predicts. Training files are data checked by their hash.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import filters, measure
from skimage.feature import multiscale_basic_features
from skimage.future import fit_segmenter, predict_segmenter
from sklearn.ensemble import RandomForestClassifier

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import forests
from napari_batch_pipeline.core.stages.classifiers import object_classifier, pixel_classifier
from napari_batch_pipeline.core.stages.training import (
    TrainingFileError,
    file_sha256,
    read_training,
    write_training,
)
from napari_batch_pipeline.core.synthetic import nuclei_image

FEATURES = {"sigma_min": 1.0, "sigma_max": 8.0}


def _image(seed: int, brightness: float = 1.0) -> np.ndarray:
    return nuclei_image(shape=(96, 96), n_nuclei=6, radius=6.0, seed=seed, brightness=brightness)


def _strokes(image: np.ndarray) -> np.ndarray:
    """Sparse painting: every 5th pixel of every 6th row, class 2 in the nuclei, 1 around."""
    truth = filters.gaussian(image, 2, preserve_range=True) > filters.threshold_otsu(image)
    painted = np.zeros(image.shape, dtype=np.uint8)
    painted[::6, ::5] = np.where(truth[::6, ::5], 2, 1)
    return painted


def _by_hand_features(image: np.ndarray) -> np.ndarray:
    """The 1st/99.8th percentile scaling and multiscale_basic_features, written out here."""
    pixels = image.astype(np.float32)
    low, high = np.percentile(pixels, (1, 99.8))
    scaled = ((pixels - np.float32(low)) / np.float32(high - low)).astype(np.float32)
    return multiscale_basic_features(scaled, sigma_min=1.0, sigma_max=8.0)


@pytest.fixture(autouse=True)
def _no_forest_kept() -> None:
    forests._TRAINED.clear()


@pytest.fixture
def training(tmp_path: Path) -> tuple[Path, str, np.ndarray, np.ndarray]:
    image = _image(0)
    painted = _strokes(image)
    path = tmp_path / "cells_training.npz"
    return path, write_training(path, [{"image": image, "labels": painted}]), image, painted


def test_pixel_classes_equal_fit_and_predict_segmenter(training) -> None:
    path, sha, image, painted = training
    forest = RandomForestClassifier(n_estimators=20, random_state=3, n_jobs=1)
    forest = fit_segmenter(painted, _by_hand_features(image), forest)
    other = _image(7)
    expected = predict_segmenter(_by_hand_features(other), forest)
    settings = {"training": str(path), "training_sha256": sha, "features": FEATURES, "trees": 20, "seed": 3}
    classes = pixel_classifier(other, **settings)
    assert classes.dtype == np.uint8 and classes.shape == other.shape
    np.testing.assert_array_equal(classes, expected)
    mask = pixel_classifier(other, **settings, output="mask", foreground=2)
    np.testing.assert_array_equal(mask, expected == 2)
    probability = pixel_classifier(other, **settings, output="probability", foreground=2)
    assert probability.dtype == np.float32
    by_hand = forest.predict_proba(_by_hand_features(other).reshape(-1, forest.n_features_in_))[:, 1]
    np.testing.assert_array_equal(probability, by_hand.astype(np.float32).reshape(other.shape))
    assert 0.05 < mask.mean() < 0.6  # it found nuclei, not everything or nothing


def test_several_training_images_are_one_fit_over_their_pixels_in_order(tmp_path: Path) -> None:
    first, second = _image(0), _image(1)
    path = tmp_path / "two.npz"
    sha = write_training(
        path, [{"image": first, "labels": _strokes(first)}, {"image": second, "labels": _strokes(second)}]
    )
    samples = np.concatenate([_by_hand_features(i)[_strokes(i) > 0] for i in (first, second)])
    classes = np.concatenate([_strokes(i)[_strokes(i) > 0] for i in (first, second)])
    forest = RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1).fit(samples, classes)
    other = _image(9)
    expected = forest.predict(_by_hand_features(other).reshape(-1, samples.shape[1])).reshape(other.shape)
    got = pixel_classifier(other, training=str(path), training_sha256=sha, features=FEATURES, trees=10)
    np.testing.assert_array_equal(got, expected)


def test_percentile_scaling_classes_a_brighter_image_as_the_training_one(training) -> None:
    path, sha, _, _ = training
    other = _image(5)
    brighter = np.clip(other.astype(np.float64) * 1.8 + 400, 0, 65535).astype(np.uint16)
    settings = {"training": str(path), "training_sha256": sha, "features": FEATURES, "trees": 20}
    same = pixel_classifier(other, **settings) == pixel_classifier(brighter, **settings)
    assert same.mean() > 0.99
    raw = pixel_classifier(other, **settings, normalize="none") == pixel_classifier(
        brighter, **settings, normalize="none"
    )
    assert raw.mean() < same.mean()  # without scaling, brightness changes the answer


def test_a_tampered_training_file_is_refused_naming_it(training, tmp_path: Path) -> None:
    path, sha, image, painted = training
    write_training(path, [{"image": image, "labels": painted * 0 + (painted > 0)}])  # same name, new data
    with pytest.raises(TrainingFileError, match=r"cells_training\.npz.*does not match its hash"):
        pixel_classifier(image, training=str(path), training_sha256=sha)
    pipeline = Pipeline(
        [
            {
                "name": "cells",
                "function": "pixel_classifier",
                "params": {"training": path.name, "training_sha256": sha},
            }
        ],
        folder=tmp_path,
    )
    with pytest.raises(PipelineError, match=r"stage 'cells'.*cells_training\.npz.*does not match its hash"):
        pipeline.train()


def test_training_files_hold_arrays_only_and_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(TrainingFileError, match=r"missing\.npz"):
        read_training(tmp_path / "missing.npz", "0" * 64, "pixels")
    path = tmp_path / "objects.npz"
    sha = write_training(path, [{"objects": np.ones((4, 4), np.int32), "classes": np.array([0, 1])}])
    with pytest.raises(TrainingFileError, match="no image_0, labels_0"):
        read_training(path, sha, "pixels")
    with pytest.raises(TrainingFileError, match="no training_sha256"):
        read_training(path, "", "objects")
    blank = tmp_path / "blank.npz"
    sha = write_training(blank, [{"image": np.ones((4, 4)), "labels": np.zeros((4, 4), np.uint8)}])
    with pytest.raises(TrainingFileError, match="marks no pixel"):
        read_training(blank, sha, "pixels")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, image_0=np.array([object()], dtype=object), labels_0=np.ones(1, np.uint8))
    with pytest.raises(TrainingFileError, match="not a training file"):
        read_training(pickled, file_sha256(pickled), "pixels")


def test_a_relative_training_file_is_found_beside_the_pipeline_file(training, tmp_path: Path) -> None:
    path, sha, image, _ = training
    (tmp_path / "p.yaml").write_text(
        "version: 1\nstages:\n  - name: cells\n    function: pixel_classifier\n"
        f"    params: {{training: {path.name}, training_sha256: {sha}, trees: 5,\n"
        "              output: mask, foreground: 2}\n",
        encoding="utf-8",
    )
    pipeline = Pipeline.from_yaml(tmp_path / "p.yaml")
    assert pipeline["cells"].returns == "mask"
    assert pipeline.run(image)["cells"].dtype == bool
    changed = pipeline.with_params({"cells.training_sha256": "f" * 64})
    assert changed.hash != pipeline.hash  # the training's hash is the pipeline's identity


def test_the_pipeline_refuses_bad_classifier_settings() -> None:
    def stage(**params: object) -> list[dict]:
        return [{"name": "c", "function": "pixel_classifier", "params": params}]

    with pytest.raises(PipelineError, match="training_sha256"):
        Pipeline(stage(training="x.npz"))
    with pytest.raises(PipelineError, match="sigma_min"):
        Pipeline(stage(features={"sigma_min": 4, "sigma_max": 2}))
    with pytest.raises(PipelineError, match="unknown option 'sigma'"):
        Pipeline(stage(features={"sigma": 4}))
    with pytest.raises(PipelineError, match="output"):
        Pipeline(stage(output="outline"))
    with pytest.raises(PipelineError, match=r"params\.trees: expected a whole number"):
        Pipeline(stage(trees="many"))
    with pytest.raises(PipelineError, match=r"params\.normalize: expected one of 'percentile', 'none'"):
        Pipeline(stage(normalize="zscore"))
    assert Pipeline(stage(output="probability"))["c"].returns == "image"


def _objects(seed: int) -> tuple[np.ndarray, np.ndarray]:
    image = nuclei_image(shape=(128, 128), n_nuclei=12, radius=7.0, seed=seed)
    labels = measure.label(filters.gaussian(image, 2, preserve_range=True) > filters.threshold_otsu(image))
    return labels, image


def test_object_classes_equal_a_forest_on_the_same_measurements(tmp_path: Path) -> None:
    labels, image = _objects(0)
    properties = ["area", "eccentricity", "intensity_mean"]
    table = measure.regionprops_table(labels, intensity_image=image, properties=["label", *properties])
    chosen = np.zeros(labels.max() + 1, dtype=np.int64)
    chosen[1:] = np.where(table["area"] > np.median(table["area"]), 2, 1)
    chosen[1] = 0  # one object left out of the training
    path = tmp_path / "objects.npz"
    sha = write_training(path, [{"objects": labels, "classes": chosen, "image": image}])
    samples = np.column_stack([table[p] for p in properties])[1:]
    forest = RandomForestClassifier(n_estimators=15, random_state=1, n_jobs=1).fit(samples, chosen[2:])
    other_labels, other_image = _objects(4)
    other = measure.regionprops_table(
        other_labels, intensity_image=other_image, properties=["label", *properties]
    )
    got = object_classifier(
        other_labels,
        other_image,
        training=str(path),
        training_sha256=sha,
        properties=properties,
        trees=15,
        seed=1,
    )
    expected = forest.predict(np.column_stack([other[p] for p in properties]))
    np.testing.assert_array_equal(got["class"].to_numpy(), expected)
    np.testing.assert_array_equal(got["label"].to_numpy(), other["label"])
    assert list(got.columns[-3:]) == ["class", "probability_1", "probability_2"]
    empty = object_classifier(
        np.zeros_like(other_labels),
        other_image,
        training=str(path),
        training_sha256=sha,
        properties=properties,
    )
    assert empty.empty and "class" in empty.columns and "probability_2" in empty.columns


def test_each_channel_of_a_multichannel_image_gives_its_features(tmp_path: Path) -> None:
    dna, other = _image(0), _image(1)
    stack = np.stack([dna, other[::-1]], axis=-1)  # (Y, X, 2)
    painted = _strokes(dna)
    path = tmp_path / "two_channels.npz"
    sha = write_training(path, [{"image": stack, "labels": painted}])
    channels = []
    for c in range(2):
        pixels = stack[..., c].astype(np.float32)
        low, high = np.percentile(pixels, (1, 99.8))
        channels.append(((pixels - np.float32(low)) / np.float32(high - low)).astype(np.float32))
    features = multiscale_basic_features(
        np.stack(channels, axis=-1), sigma_min=1.0, sigma_max=8.0, channel_axis=-1
    )
    forest = fit_segmenter(
        painted, features, RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1)
    )
    got = pixel_classifier(
        stack, training=str(path), training_sha256=sha, features=FEATURES, trees=10, channel_axis=-1
    )
    np.testing.assert_array_equal(got, predict_segmenter(features, forest))
    with pytest.raises(ValueError, match="channel axis"):
        pixel_classifier(stack[..., 0], training=str(path), training_sha256=sha, channel_axis=-1)
