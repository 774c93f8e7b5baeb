"""The built-in measurement stage: labels (and intensities) in, one table row per object."""

import numpy as np
import pandas as pd
from skimage import measure as sk_measure

from .registry import stage

__all__ = ["DEFAULT_PROPERTIES", "measure"]

DEFAULT_PROPERTIES = ("area", "intensity_mean")


@stage(menu="measure", returns="table")
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
    if intensity is None:
        needs = [p for p in wanted if "intensity" in p]
        if needs:
            raise ValueError(
                f"properties {needs} need an intensity image; connect one with inputs: {{intensity: input}}"
            )
    elif np.shape(intensity) != np.shape(labels):
        raise ValueError(f"intensity image has shape {np.shape(intensity)}, labels have {np.shape(labels)}")
    table = sk_measure.regionprops_table(
        np.asarray(labels).astype(np.int32, copy=False),
        intensity_image=intensity,
        properties=["label", *wanted],
    )
    return pd.DataFrame(table)
