"""Classifier stages: teach on one image, run on a thousand.

:func:`pixel_classifier` classes every pixel with a random forest over
``multiscale_basic_features``; :func:`object_classifier` classes every object of a
labels image from its ``regionprops`` measurements. Both are trained from a training
file of painted pixels or chosen objects (:mod:`.training`: data, never a model), once
per process and training (:mod:`.forests`); the engine trains them before the tasks and
hands the forests to its workers.
"""

import re
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from .forests import (
    FEATURE_DEFAULTS,
    FEATURE_TYPES,
    feature_settings,
    object_features,
    pixel_features,
    trained_forest,
)
from .measure import ONLY_2D_PROPERTIES, PROPERTY_NAMES
from .registry import stage
from .spatial import check_same_shape, check_spatial

__all__ = ["CLASS_COLUMN", "PROBABILITY_PREFIX", "object_classifier", "pixel_classifier"]

#: the column of an object classifier's table that holds each object's class
CLASS_COLUMN = "class"
#: the columns of an object classifier's table with each class's probability: ``probability_<class>``
PROBABILITY_PREFIX = "probability_"
#: the kind of output of each ``output`` of :func:`pixel_classifier`
_OUTPUT_KINDS = {"classes": "labels", "mask": "mask", "probability": "image"}
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_TREES = 10_000
#: the parameter the builder writes when it saves a training (a person never types it)
_WRITTEN = {"training_sha256": "the SHA-256 of the training file, written when the builder saves it"}


def _check_forest(params: Mapping[str, Any]) -> str | None:
    """The settings both classifiers share: training file and hash, trees, depth."""
    sha = params["training_sha256"]
    if sha and not _SHA256.match(sha):
        return f"training_sha256: expected 64 hexadecimal digits (a SHA-256), got {sha!r}"
    if params["training"] and not sha:
        return (
            f"training {params['training']!r} needs its training_sha256 beside it "
            "(the builder's Save... writes both)"
        )
    if not 1 <= params["trees"] <= MAX_TREES:
        return f"trees: expected 1 to {MAX_TREES}, got {params['trees']}"
    if params["max_depth"] is not None and params["max_depth"] < 1:
        return f"max_depth: expected null (no limit) or 1 or more, got {params['max_depth']}"
    return None


def _check_pixels(params: dict, connected: set[str]) -> str | None:
    """The pixel classifier's settings (see ``stage``)."""
    problem = _check_forest(params)
    if problem:
        return problem
    if params["output"] not in _OUTPUT_KINDS:
        return f"output: expected one of {', '.join(_OUTPUT_KINDS)}, got {params['output']!r}"
    if params["normalize"] not in ("percentile", "none"):
        return f"normalize: expected percentile or none, got {params['normalize']!r}"
    if params["foreground"] < 1:
        return f"foreground: expected a class of 1 or more, got {params['foreground']}"
    if not isinstance(params["features"], Mapping):
        return f"features: expected a mapping of {', '.join(FEATURE_DEFAULTS)}, got {params['features']!r}"
    try:
        feature_settings(params["features"])
    except ValueError as error:
        return str(error)
    return None


def _pixel_output(params: Mapping[str, Any]) -> str:
    """What :func:`pixel_classifier` gives with ``params``: labels, a mask or an image."""
    return _OUTPUT_KINDS.get(params.get("output", "classes"), "labels")


@stage(
    menu="segment",
    returns="labels",
    returns_by=_pixel_output,
    trains="pixels",
    check=_check_pixels,
    options={"features": FEATURE_TYPES},
    read_only=_WRITTEN,
)
def pixel_classifier(
    image: "napari.types.ImageData",
    training: str = "",
    training_sha256: str = "",
    features: dict[str, int | float | bool | None] = dict(FEATURE_DEFAULTS),  # noqa: B006
    trees: int = 100,
    seed: int = 0,
    max_depth: int | None = None,
    normalize: Literal["percentile", "none"] = "percentile",
    channel_axis: int | None = None,
    output: Literal["classes", "mask", "probability"] = "classes",
    foreground: int = 1,
) -> "napari.types.LabelsData":
    """Class every pixel with a random forest trained on painted pixels.

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        The image; with ``channel_axis``, one more axis holds its channels.
    training : str
        The training file (``.npz``: ``image_k`` and ``labels_k`` per training image, see
        :mod:`.training`), relative to the pipeline file.
    training_sha256 : str
        The SHA-256 of the training file; a file that differs is refused.
    features : dict
        ``skimage.feature.multiscale_basic_features`` options: ``sigma_min``,
        ``sigma_max``, ``num_sigma``, ``intensity``, ``edges``, ``texture``.
    trees : int
        Trees of the forest (``n_estimators``).
    seed : int
        The forest's ``random_state``: the same seed and training give the same forest.
    max_depth : int, optional
        The deepest a tree grows (None: no limit).
    normalize : {'percentile', 'none'}
        ``percentile``: each image (each channel) scaled by its 1st and 99.8th
        percentiles before its features, so that images of other brightness class alike;
        ``none``: the pixels as they are.
    channel_axis : int, optional
        The axis of ``image`` that holds channels (features of each channel).
    output : {'classes', 'mask', 'probability'}
        ``classes``: each pixel's class (uint8, 1..n); ``mask``: the pixels of class
        ``foreground``; ``probability``: the forest's probability of ``foreground``
        (float32).
    foreground : int
        The class of ``mask`` and ``probability``.

    Returns
    -------
    ndarray, the spatial shape of ``image``
        uint8 classes, a boolean mask or float32 probabilities.

    Raises
    ------
    ValueError
        If there is no training file, it does not match its hash, or ``foreground`` is
        not a class of the training.
    """
    pixels = _checked_image(image, channel_axis)
    params = {
        "training": training,
        "training_sha256": training_sha256,
        "features": features,
        "trees": trees,
        "seed": seed,
        "max_depth": max_depth,
        "normalize": normalize,
        "channel_axis": channel_axis,
    }
    forest = trained_forest("pixels", params)
    table = pixel_features(pixels, features, normalize, channel_axis)
    flat = table.reshape(-1, table.shape[-1])
    classes = forest.classes_
    if output != "classes" and foreground not in classes:
        known = ", ".join(str(c) for c in classes)
        raise ValueError(f"foreground: class {foreground} is not among the training's classes ({known})")
    if output == "probability":
        column = int(np.flatnonzero(classes == foreground)[0])
        return forest.predict_proba(flat)[:, column].astype(np.float32).reshape(table.shape[:-1])
    predicted = forest.predict(flat).reshape(table.shape[:-1])
    if output == "mask":
        return predicted == foreground
    if classes.max() > 255:
        raise ValueError(
            f"classes: at most 255 classes fit the class image, the training has class {classes.max()}"
        )
    return predicted.astype(np.uint8)


def _checked_image(image: Any, channel_axis: int | None) -> np.ndarray:
    """``image`` as an array, refusing one that is not 2D or 3D (besides its channel axis)."""
    if channel_axis is None:
        return check_spatial("pixel_classifier", image)
    pixels = np.asarray(image)
    if pixels.ndim - 1 not in (2, 3) or not -pixels.ndim <= channel_axis < pixels.ndim:
        raise ValueError(
            f"pixel_classifier expects a 2D (Y, X) or 3D (Z, Y, X) image with a channel axis "
            f"{channel_axis}, got shape {pixels.shape}"
        )
    return pixels


def _check_objects(params: dict, connected: set[str]) -> str | None:
    """The object classifier's settings (see ``stage``)."""
    problem = _check_forest(params)
    if problem:
        return problem
    wanted = params["properties"]
    if not wanted:
        return "properties: expected at least one regionprops property name"
    unknown = [p for p in wanted if PROPERTY_NAMES and p not in PROPERTY_NAMES]
    if unknown:
        return (
            f"properties: unknown {unknown}; use regionprops names (area, eccentricity, intensity_mean, ...)"
        )
    needs = [p for p in wanted if "intensity" in p]
    if needs and "intensity" not in connected:
        return f"properties {needs} need an intensity image; add inputs: {{intensity: input}}"
    return None


@stage(menu="measure", returns="table", trains="objects", check=_check_objects, read_only=_WRITTEN)
def object_classifier(
    labels: "napari.types.LabelsData",
    intensity: "napari.types.ImageData | None" = None,
    training: str = "",
    training_sha256: str = "",
    properties: list[str] = ["area", "extent", "solidity"],  # noqa: B006
    trees: int = 100,
    seed: int = 0,
    max_depth: int | None = None,
) -> "pandas.DataFrame":
    """Class every object of a labels image from its measurements.

    Parameters
    ----------
    labels : (M, N) or (P, M, N) ndarray of int
        The objects, 0 for background.
    intensity : ndarray, optional
        The image the ``intensity_*`` properties are taken from, shaped as ``labels``.
    training : str
        The training file (``.npz``: ``objects_k``, ``classes_k`` and optionally
        ``image_k`` per training image, see :mod:`.training`), relative to the pipeline
        file.
    training_sha256 : str
        The SHA-256 of the training file; a file that differs is refused.
    properties : list of str
        ``regionprops_table`` names the forest learns from (multi-valued ones give
        several columns).
    trees, seed, max_depth
        The forest's settings, as in :func:`pixel_classifier`.

    Returns
    -------
    pandas.DataFrame
        One row per object: ``label``, the measured properties, ``class`` and
        ``probability_<class>`` for each class of the training.
    """
    params = {
        "training": training,
        "training_sha256": training_sha256,
        "properties": list(properties),
        "trees": trees,
        "seed": seed,
        "max_depth": max_depth,
    }
    labels = check_spatial("object_classifier", labels)
    flat = [p for p in properties if labels.ndim == 3 and p in ONLY_2D_PROPERTIES]
    if flat:
        raise ValueError(f"properties {flat} are 2D-only in scikit-image; these labels are 3D")
    forest = trained_forest("objects", params)
    if intensity is not None:
        intensity = check_same_shape(
            "object_classifier", np.asarray(labels), intensity, "intensity image", "labels"
        )
    table = object_features(labels, intensity, properties)
    columns = [f"{PROBABILITY_PREFIX}{c}" for c in forest.classes_]
    if table.empty:
        table[CLASS_COLUMN] = pd.Series(dtype=forest.classes_.dtype)
        for column in columns:
            table[column] = pd.Series(dtype=np.float64)
        return table
    samples = table.drop(columns="label").to_numpy(np.float64)
    if samples.shape[1] != forest.n_features_in_:
        raise ValueError(
            f"these objects give {samples.shape[1]} measurements and the training {forest.n_features_in_} "
            "(2D and 3D mixed?)"
        )
    probabilities = forest.predict_proba(samples)
    table[CLASS_COLUMN] = forest.classes_[np.argmax(probabilities, axis=1)]
    for index, column in enumerate(columns):
        table[column] = probabilities[:, index]
    return table
