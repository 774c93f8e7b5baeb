"""Helpers for tiled-run tests: images with objects everywhere, the chain, comparisons."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from skimage import filters

from napari_batch_pipeline.core.pipeline.model import Pipeline

PROPERTIES = [
    "area",
    "bbox",
    "centroid",
    "centroid_weighted",
    "intensity_mean",
    "intensity_max",
    "eccentricity",
    "perimeter",
    "orientation",
    "solidity",
    "moments_hu",
    "euler_number",
]
PROPERTIES_3D = [
    "area",
    "bbox",
    "centroid",
    "centroid_weighted",
    "intensity_mean",
    "intensity_min",
    "solidity",
]


def blobs(shape: tuple[int, ...], seed: int = 0, sigma: float = 4.0) -> np.ndarray:
    """uint16 blobs of many sizes, touching the borders, in any shape."""
    rng = np.random.default_rng(seed)
    smooth = filters.gaussian(rng.random(shape), sigma)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 60000).astype(np.uint16)


def chain_pipeline(
    *,
    sigma: float = 2.0,
    threshold: str = "otsu",
    connectivity: int = 2,
    min_size: int = 0,
    properties: list[str] | None = None,
) -> Pipeline:
    """gaussian -> threshold -> label (saved) -> [remove_small_objects] -> measure."""
    stages: list[dict[str, Any]] = [
        {"name": "blurred", "function": "gaussian", "params": {"sigma": sigma}},
        {"name": "mask", "function": "threshold", "params": {"method": threshold}},
        {"name": "labels", "function": "label", "params": {"connectivity": connectivity}, "save": True},
    ]
    labels = "labels"
    if min_size:
        stages.append(
            {
                "name": "kept",
                "function": "remove_small_objects",
                "params": {"min_size": min_size},
                "save": True,
            }
        )
        labels = "kept"
    stages.append(
        {
            "name": "nuclei",
            "function": "measure",
            "inputs": {"labels": labels, "intensity": "blurred"},
            "params": {"properties": properties or PROPERTIES},
        }
    )
    return Pipeline.from_dict({"version": 1, "name": "tiled", "stages": stages})


def assert_same(whole: dict[str, Any], tiled: dict[str, Any]) -> None:
    """Every tiled output equals the whole image's: labels array-equal (same ids),
    tables bit-equal."""
    for name, value in tiled.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, whole[name], check_exact=True, check_dtype=False)
        else:
            np.testing.assert_array_equal(value, whole[name].astype(value.dtype), err_msg=name)
