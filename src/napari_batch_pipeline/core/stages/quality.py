"""Image quality: one row of figures per image, to tell a usable field from a blurred or
saturated one (CellProfiler's MeasureImageQuality, in part).

The figures, for an image of any dimension (2D or 3D), in float64:

- ``focus_score``: the normalised variance ``var(image) / mean(image)`` (population
  variance, ddof 0); a blurred field has a lower one than a sharp field of the same
  scene. NaN for an image whose mean is 0.
- ``saturated_fraction``: the fraction of pixels equal to the image's maximum.
- ``intensity_mean``: the mean intensity.

Quality rules in the pipeline file (see :mod:`..pipeline.quality`) flag images by them.
"""

import numpy as np
import pandas as pd

from .registry import stage
from .spatial import check_spatial

__all__ = ["QUALITY_MEASUREMENTS", "image_quality"]

#: the columns of the table :func:`image_quality` returns, in order
QUALITY_MEASUREMENTS = ("focus_score", "saturated_fraction", "intensity_mean")


@stage(menu="measure")
def image_quality(image: "napari.types.ImageData") -> "pandas.DataFrame":
    """Measure an image's focus, saturation and brightness: a table of one row.

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        Any numeric dtype; computed in float64.

    Returns
    -------
    pandas.DataFrame
        One row; columns ``focus_score`` (``var / mean``, NaN for a mean of 0),
        ``saturated_fraction`` (pixels equal to the maximum, over all pixels) and
        ``intensity_mean``, all float64.

    Raises
    ------
    ValueError
        If ``image`` is neither 2D nor 3D, or is empty.
    """
    image = check_spatial("image_quality", image)
    if image.size == 0:
        raise ValueError(f"image_quality: the image is empty (shape {image.shape})")
    values = np.asarray(image, dtype=np.float64)
    mean = float(values.mean())
    focus = float(values.var()) / mean if mean != 0 else float("nan")
    saturated = float(np.count_nonzero(values == values.max())) / values.size
    return pd.DataFrame(
        {name: [value] for name, value in zip(QUALITY_MEASUREMENTS, (focus, saturated, mean), strict=True)}
    )
