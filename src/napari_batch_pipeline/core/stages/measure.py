"""The built-in measurement stage: labels (and intensities) in, one table row per object."""

import numpy as np
import pandas as pd
from skimage import measure as sk_measure

from .registry import stage

__all__ = ["DEFAULT_PROPERTIES", "measure"]

DEFAULT_PROPERTIES = ("area", "intensity_mean")
try:  # the names regionprops_table accepts
    from skimage.measure._regionprops import PROPS as _PROPS

    PROPERTY_NAMES = frozenset(_PROPS.values()) | frozenset(_PROPS) | {"label"}
except ImportError:  # a future scikit-image may move it: then any name passes here
    PROPERTY_NAMES = frozenset()


def _check(params: dict, connected: set[str]) -> str | None:
    """Known property names, and an intensity image for the intensity ones (see ``stage``)."""
    wanted = params["properties"]
    if not wanted:
        return "properties: expected at least one regionprops property name"
    unknown = [p for p in wanted if PROPERTY_NAMES and p not in PROPERTY_NAMES]
    if unknown:
        known = ", ".join(sorted(PROPERTY_NAMES)[:12])
        return f"properties: unknown {unknown}; known names include {known}, ..."
    needs = [p for p in wanted if "intensity" in p]
    if needs and "intensity" not in connected:
        return f"properties {needs} need an intensity image; add inputs: {{intensity: input}}"
    return None


@stage(menu="measure", returns="table", check=_check)
def measure(
    labels: "napari.types.LabelsData",
    intensity: "napari.types.ImageData | None" = None,
    properties: list[str] = list(DEFAULT_PROPERTIES),  # noqa: B006
) -> "pandas.DataFrame":
    """Measure every labelled object: one row per label.

    Parameters
    ----------
    labels : (M, N) ndarray of int
        Label image, 0 for background.
    intensity : (M, N) ndarray, optional
        Intensity image for the ``intensity_*`` properties.
    properties : list of str
        Names accepted by ``skimage.measure.regionprops_table``; ``label`` always comes
        first. Multi-valued properties give several columns (``centroid-0``, ``centroid-1``).

    Returns
    -------
    pandas.DataFrame
        Column ``label``, then one column per (expanded) property.
    """
    wanted = [p for p in properties if p != "label"]
    if intensity is not None and np.shape(intensity) != np.shape(labels):
        raise ValueError(f"intensity image has shape {np.shape(intensity)}, labels have {np.shape(labels)}")
    table = sk_measure.regionprops_table(
        np.asarray(labels).astype(np.int32, copy=False),
        intensity_image=intensity,
        properties=["label", *wanted],
    )
    return pd.DataFrame(table)
