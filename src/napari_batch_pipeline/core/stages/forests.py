"""The random forests of the classifier stages: features, training, and the trained forests.

- Pixel features are ``skimage.feature.multiscale_basic_features`` of the image (of
  each channel, concatenated, for a multi-channel one), after scaling each image by its
  own 1st and 99.8th percentiles (``normalize='percentile'``), so that a forest trained
  on one image serves images of another brightness.
- Object features are ``skimage.measure.regionprops_table`` columns of each object.
- A forest is scikit-learn's ``RandomForestClassifier`` with ``n_jobs=1`` and the
  stage's seed, fitted on the painted pixels (or chosen objects) of every training image
  in order, exactly as ``skimage.future.fit_segmenter`` fits: the same training gives
  the same forest in every process.

Trained forests live in this process only, keyed by :func:`training_key` (what the
training depends on: the training file's hash and the forest and feature settings).
The engine trains each once per run, before the tasks, and hands the forests to its
workers with their tasks (:func:`remember`); a stage finds its forest by key
(:func:`trained_forest`) and trains it from the training file only when no one did.
No forest is ever written to or read from a file. Thread-safe.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .training import TrainingFileError, read_training, resolve_training

__all__ = [
    "FEATURE_DEFAULTS",
    "FEATURE_TYPES",
    "PERCENTILES",
    "feature_settings",
    "fit_forest",
    "normalized",
    "object_features",
    "pixel_features",
    "recall",
    "remember",
    "train_objects",
    "train_pixels",
    "trained_forest",
    "training_key",
]

#: ``multiscale_basic_features``' options and their defaults, as that function names them
FEATURE_DEFAULTS: dict[str, Any] = {
    "sigma_min": 0.5,
    "sigma_max": 16.0,
    "num_sigma": None,
    "intensity": True,
    "edges": True,
    "texture": True,
}
#: what each of those options takes (``feature_settings`` checks the values)
FEATURE_TYPES: dict[str, Any] = {
    "sigma_min": float,
    "sigma_max": float,
    "num_sigma": int | None,
    "intensity": bool,
    "edges": bool,
    "texture": bool,
}
#: the percentiles an image is scaled by with ``normalize='percentile'`` (cellpose's, StarDist's)
PERCENTILES = (1.0, 99.8)
#: the parameters a trained forest depends on, per kind of classifier
_TRAINED_BY = {
    "pixels": ("training_sha256", "features", "trees", "seed", "max_depth", "normalize", "channel_axis"),
    "objects": ("training_sha256", "properties", "trees", "seed", "max_depth"),
}
#: how many trained forests a process keeps (the oldest goes first)
KEEP = 16

_TRAINED: OrderedDict[str, Any] = OrderedDict()
_LOCK = threading.Lock()


def feature_settings(features: Mapping[str, Any]) -> dict[str, Any]:
    """``features`` with every option of :data:`FEATURE_DEFAULTS` filled in, checked.

    Raises
    ------
    ValueError
        For an unknown option, a value of the wrong kind, or no feature at all.
    """
    unknown = sorted(set(features) - set(FEATURE_DEFAULTS))
    if unknown:
        raise ValueError(f"features: unknown option {unknown[0]!r}; expected {', '.join(FEATURE_DEFAULTS)}")
    settings = {**FEATURE_DEFAULTS, **features}
    for name in ("intensity", "edges", "texture"):
        if not isinstance(settings[name], bool):
            raise ValueError(f"features.{name}: expected true or false, got {settings[name]!r}")
    if not (settings["intensity"] or settings["edges"] or settings["texture"]):
        raise ValueError("features: at least one of intensity, edges and texture must be true")
    for name in ("sigma_min", "sigma_max"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1000:
            raise ValueError(
                f"features.{name}: expected a number of pixels above 0 (at most 1000), got {value!r}"
            )
        settings[name] = float(value)
    if settings["sigma_min"] > settings["sigma_max"]:
        raise ValueError(
            f"features: sigma_min {settings['sigma_min']:g} is above sigma_max {settings['sigma_max']:g}"
        )
    count = settings["num_sigma"]
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64):
        raise ValueError(f"features.num_sigma: expected null or a whole number from 1 to 64, got {count!r}")
    return settings


def normalized(
    image: np.ndarray, normalize: str = "percentile", channel_axis: int | None = None
) -> np.ndarray:
    """The image as float32, each channel scaled by its :data:`PERCENTILES` (or as it is).

    ``(x - p1) / (p99.8 - p1)``, not clipped; a channel whose two percentiles are equal
    is only shifted. ``normalize='none'`` gives the pixels as they are (an integer image
    is then scaled by its type's range in :func:`pixel_features`, as scikit-image does).
    """
    if normalize == "none":
        return np.asarray(image)
    pixels = np.asarray(image, dtype=np.float32)
    if channel_axis is None:
        return _scaled(pixels)
    moved = np.moveaxis(pixels, channel_axis, 0)
    return np.moveaxis(np.stack([_scaled(channel) for channel in moved]), 0, channel_axis)


def _scaled(pixels: np.ndarray) -> np.ndarray:
    low, high = np.percentile(pixels, PERCENTILES)
    spread = float(high - low) if high > low else 1.0
    return ((pixels - np.float32(low)) / np.float32(spread)).astype(np.float32, copy=False)


def pixel_features(
    image: np.ndarray,
    features: Mapping[str, Any],
    normalize: str = "percentile",
    channel_axis: int | None = None,
) -> np.ndarray:
    """The features of every pixel: ``image``'s spatial shape plus one axis of features.

    Returns
    -------
    ndarray of float32, shape ``spatial shape + (n_features,)``
        ``multiscale_basic_features`` of the (normalized) image, one block of features
        per channel when ``channel_axis`` is given.
    """
    from skimage.feature import multiscale_basic_features

    settings = feature_settings(features)
    return multiscale_basic_features(
        normalized(image, normalize, channel_axis), channel_axis=channel_axis, **settings
    )


def object_features(objects: np.ndarray, image: np.ndarray | None, properties: Sequence[str]) -> pd.DataFrame:
    """``label`` and the ``regionprops_table`` columns of ``properties`` of every object."""
    from skimage.measure import regionprops_table

    wanted = [p for p in properties if p != "label"]
    table = regionprops_table(
        np.asarray(objects).astype(np.int64, copy=False), intensity_image=image, properties=["label", *wanted]
    )
    return pd.DataFrame(table)


def fit_forest(samples: np.ndarray, classes: np.ndarray, trees: int, seed: int, max_depth: int | None) -> Any:
    """A ``RandomForestClassifier`` fitted single-threaded with ``seed``: the same samples
    give the same forest everywhere."""
    from sklearn.ensemble import RandomForestClassifier

    if samples.shape[0] == 0:
        raise ValueError("the training data marks no pixel or object with a class; paint some first")
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1, max_depth=max_depth)
    forest.fit(samples, classes)
    return forest


def train_pixels(examples: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any]) -> Any:
    """A forest trained on the painted pixels of ``examples`` (``image``, ``labels``).

    ``params`` are the stage's: ``features``, ``normalize``, ``channel_axis``, ``trees``,
    ``seed``, ``max_depth``. Pixels of every image enter in order, each image's in raster
    order, as ``skimage.future.fit_segmenter`` takes them.
    """
    samples, classes = [], []
    for k, example in enumerate(examples):
        image, labels = np.asarray(example["image"]), np.asarray(example["labels"])
        spatial = _spatial_shape(image.shape, params.get("channel_axis"))
        if labels.shape != spatial:
            raise ValueError(
                f"training image {k}: its labels are {labels.shape}, its image's pixels {spatial}; "
                "paint on the image itself"
            )
        features = pixel_features(image, params["features"], params["normalize"], params.get("channel_axis"))
        painted = labels > 0
        samples.append(features[painted])
        classes.append(labels[painted].ravel())
    return fit_forest(
        np.concatenate(samples), np.concatenate(classes), params["trees"], params["seed"], params["max_depth"]
    )


def train_objects(examples: Sequence[Mapping[str, np.ndarray]], params: Mapping[str, Any]) -> Any:
    """A forest trained on the chosen objects of ``examples`` (``objects``, ``classes``,
    optionally ``image``) from their ``params['properties']``."""
    samples, classes = [], []
    for example in examples:
        table = object_features(example["objects"], example.get("image"), params["properties"])
        chosen = np.asarray(example["classes"]).ravel()
        labels = table["label"].to_numpy()
        known = np.zeros(len(labels), dtype=np.int64)
        inside = labels < chosen.size
        known[inside] = chosen[labels[inside]]
        keep = known > 0
        samples.append(table.drop(columns="label").to_numpy(np.float64)[keep])
        classes.append(known[keep])
    widths = {s.shape[1] for s in samples}
    if len(widths) > 1:
        raise ValueError("the training images give different numbers of measurements (2D and 3D mixed?)")
    return fit_forest(
        np.concatenate(samples), np.concatenate(classes), params["trees"], params["seed"], params["max_depth"]
    )


def _spatial_shape(shape: tuple[int, ...], channel_axis: int | None) -> tuple[int, ...]:
    if channel_axis is None:
        return tuple(shape)
    axis = channel_axis % len(shape)
    return tuple(size for index, size in enumerate(shape) if index != axis)


def training_key(kind: str, params: Mapping[str, Any]) -> str:
    """What a trained forest depends on, hashed: its kind, the training file's hash, and
    the forest and feature settings among ``params`` (the output settings do not count)."""
    wanted = {name: params.get(name) for name in _TRAINED_BY[kind]}
    if "features" in wanted:
        wanted["features"] = feature_settings(wanted["features"] or {})
    text = json.dumps([kind, wanted], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def remember(trained: Mapping[str, Any]) -> None:
    """Keep forests trained elsewhere (by the engine, before the tasks), by training key."""
    if not trained:
        return
    with _LOCK:
        for key, forest in trained.items():
            _TRAINED[key] = forest
            _TRAINED.move_to_end(key)
        while len(_TRAINED) > KEEP:
            _TRAINED.popitem(last=False)


def recall(key: str) -> Any | None:
    """The forest trained for ``key`` in this process, or None."""
    with _LOCK:
        return _TRAINED.get(key)


def trained_forest(kind: str, params: Mapping[str, Any], folder: str | Path | None = None) -> Any:
    """The forest of a classifier stage with ``params``: the one already trained for its
    key, else trained now from its training file (``params['training']``, relative to
    ``folder``) and kept.

    Raises
    ------
    TrainingFileError
        If the stage names no training file, or it is missing or not the one its hash names.
    """
    key = training_key(kind, params)
    forest = recall(key)
    if forest is not None:
        return forest
    if not params.get("training"):
        raise TrainingFileError(
            "no training data: paint classes on the stage's training layer in the builder, or "
            "name a training file (training: file.npz, with its training_sha256)"
        )
    path = resolve_training(params["training"], folder)
    examples = read_training(path, params.get("training_sha256") or "", kind)
    forest = train_pixels(examples, params) if kind == "pixels" else train_objects(examples, params)
    remember({key: forest})
    return forest
