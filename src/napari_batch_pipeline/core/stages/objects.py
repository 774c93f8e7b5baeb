"""Keeping objects by size, shape or intensity (CellProfiler's FilterObjects).

``filter_objects`` measures every labelled object with ``regionprops_table`` and keeps
those whose values lie inside every given range; the others become background. Kept
objects keep their numbers, so that a later ``measure`` reports the same labels.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from skimage import measure as sk_measure

from .measure import PROPERTY_NAMES
from .registry import stage
from .spatial import check_same_shape, check_spatial

__all__ = ["filter_objects"]


def _check(params: dict, connected: set[str]) -> str | None:
    """Known property names, ranges of two numbers (or null) in order, and an intensity
    image for the intensity properties (see ``stage``)."""
    keep = params["keep"]
    if not isinstance(keep, Mapping):
        return f"keep: expected a mapping {{property: [min, max]}}, got {keep!r}"
    for name, bounds in keep.items():
        if PROPERTY_NAMES and name not in PROPERTY_NAMES:
            known = ", ".join(sorted(PROPERTY_NAMES)[:12])
            return f"keep: unknown property {name!r}; known names include {known}, ..."
        if not _is_range(bounds):
            return f"keep.{name}: expected [min, max] (numbers, or null for no bound), got {bounds!r}"
        if _several_values(name):
            return (
                f"keep.{name} gives several values per object ({name}-0, {name}-1, ...); filter by "
                "a property with one value per object"
            )
        low, high = bounds
        if low is not None and high is not None and low > high:
            return f"keep.{name}: the minimum {low} is above the maximum {high}"
        if "intensity" in name and "intensity" not in connected:
            return f"keep.{name} needs an intensity image; add inputs: {{intensity: input}}"
    return None


def _is_range(bounds: Any) -> bool:
    """Two bounds, each a number (not NaN: it would keep no object) or None."""
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return False
    return all(
        b is None or (isinstance(b, (int, float)) and not isinstance(b, bool) and b == b) for b in bounds
    )


def _several_values(name: str) -> bool:
    """Whether ``regionprops_table`` gives property ``name`` as several columns (``centroid``,
    ``bbox``...), tried on one small object; False where that cannot tell."""
    labels = np.zeros((5, 5), dtype=np.int64)
    labels[1:4, 1:4] = 1
    try:
        table = sk_measure.regionprops_table(labels, intensity_image=labels.astype(float), properties=[name])
    except Exception:  # a property this object cannot give: the run says so, per image
        return False
    return name not in table


@stage(menu="segment", check=_check)
def filter_objects(
    labels: "napari.types.LabelsData",
    intensity: "napari.types.ImageData | None" = None,
    keep: dict[str, list[float | None]] = {},  # noqa: B006
) -> "napari.types.LabelsData":
    """Remove the objects whose measurements fall outside any range of ``keep``.

    Parameters
    ----------
    labels : (M, N) or (P, M, N) ndarray of int
        The objects to filter, each a number; 0 is background.
    intensity : ndarray, optional
        The image the ``intensity_*`` properties are taken from, shaped as ``labels``.
    keep : dict of str to [min, max]
        ``{property: [min, max]}`` with ``regionprops`` property names that give one
        number per object (``area``, ``eccentricity``, ``intensity_mean``...). An object
        is kept when ``min <= value <= max`` for every property; ``None`` leaves that
        side open. Empty: every object is kept.

    Returns
    -------
    ndarray, shape and dtype of ``labels``
        The kept objects with their numbers, 0 elsewhere.

    Raises
    ------
    ValueError
        If ``labels`` is neither 2D nor 3D, ``intensity`` has another shape, or a
        property gives several values per object (``centroid``, ``bbox``...).
    """
    labels = check_spatial("filter_objects", labels)
    if intensity is not None:
        intensity = check_same_shape("filter_objects", labels, intensity, "intensity image", "labels")
    if not keep or not labels.any():
        return labels.copy()
    table = sk_measure.regionprops_table(
        labels.astype(np.int64, copy=False), intensity_image=intensity, properties=["label", *keep]
    )
    kept = np.ones(len(table["label"]), dtype=bool)
    for name, (low, high) in keep.items():
        if name not in table:
            several = sorted(c for c in table if c.startswith(f"{name}-"))
            raise ValueError(
                f"filter_objects: keep.{name} gives several values per object ({', '.join(several)}); "
                "filter by a property with one value per object"
            )
        values = np.asarray(table[name], dtype=np.float64)
        if low is not None:
            kept &= values >= low
        if high is not None:
            kept &= values <= high
    return np.where(np.isin(labels, np.asarray(table["label"])[kept]), labels, 0).astype(labels.dtype)
