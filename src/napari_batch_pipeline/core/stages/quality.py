"""Image quality: one row of figures per image, to tell a usable field from a blurred or
saturated one (CellProfiler's MeasureImageQuality, in part).

The figures, for an image of any dimension (2D or 3D), in float64, each with its
CellProfiler counterpart (CellProfiler scales an integer image to [0, 1] by its type's
largest value R: 65535 for 16-bit, 255 for 8-bit, 1 for a float image):

- ``focus_score``: the normalised variance ``var(image) / mean(image)`` (population
  variance, ddof 0) on the raw values; CellProfiler's FocusScore x R. It follows
  brightness as much as focus: compare it between views of one scene, not between fields
  of different wells. NaN for an image whose mean is 0.
- ``saturated_fraction``: the fraction of pixels equal to the image's maximum;
  CellProfiler's PercentMaximal / 100.
- ``intensity_mean``: the mean of the raw values; CellProfiler's MeanIntensity x R.
- ``power_log_log_slope``: CellProfiler's PowerLogLogSlope, as it computes it (see
  :mod:`.focus`): brightness-independent, steeper (more negative) when blurred. NaN in 3D
  (CellProfiler measures it on 2D images only).
- ``local_focus_score``: CellProfiler's LocalFocusScore at spatial scale ``focus_scale``
  (its default 20), on CellProfiler's scale.

Quality rules in the pipeline file (see :mod:`..pipeline.quality`) flag images by them;
for focus, use ``power_log_log_slope``: a blurred field has a lower one than any sharp
field, however bright, where a bright blurred field may keep a high ``focus_score``.
"""

import numpy as np
import pandas as pd

from .focus import cp_intensities, local_focus_score, power_log_log_slope
from .registry import stage
from .spatial import check_spatial

__all__ = ["QUALITY_DESCRIPTIONS", "QUALITY_MEASUREMENTS", "image_quality"]

#: the columns of the table :func:`image_quality` returns, in order, with their unit and
#: CellProfiler counterpart (R: the largest value of the image's integer type, 1 for floats)
QUALITY_DESCRIPTIONS = {
    "focus_score": "var / mean of the raw values; CellProfiler's FocusScore x R, R the largest value of "
    "the image's type (65535 for 16-bit, 255 for 8-bit, 1 for floats)",
    "saturated_fraction": "pixels at the image's maximum, a fraction; CellProfiler's PercentMaximal / 100",
    "intensity_mean": "mean of the raw values; CellProfiler's MeanIntensity x R",
    "power_log_log_slope": "CellProfiler's PowerLogLogSlope (same scale): blur makes it more negative; "
    "brightness-independent; NaN in 3D",
    "local_focus_score": "CellProfiler's LocalFocusScore at spatial scale focus_scale (same scale)",
}
QUALITY_MEASUREMENTS = tuple(QUALITY_DESCRIPTIONS)


def _focus_scale(params: dict, connected: set[str]) -> str | None:
    """``focus_scale`` is 1 or more."""
    value = params["focus_scale"]
    return f"focus_scale must be 1 or more, got {value}" if value < 1 else None


@stage(menu="measure", check=_focus_scale, columns=QUALITY_DESCRIPTIONS)
def image_quality(image: "napari.types.ImageData", focus_scale: int = 20) -> "pandas.DataFrame":
    """Measure an image's focus, saturation and brightness: a table of one row.

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        Any numeric dtype; computed in float64.
    focus_scale : int
        The tiles' side, in pixels, of ``local_focus_score`` (CellProfiler's "spatial
        scale for blur measurements").

    Returns
    -------
    pandas.DataFrame
        One row, all float64: ``focus_score`` (``var / mean`` of the raw values, NaN for a
        mean of 0), ``saturated_fraction`` (pixels equal to the maximum, over all
        pixels), ``intensity_mean``, ``power_log_log_slope`` (CellProfiler's
        PowerLogLogSlope; NaN in 3D) and ``local_focus_score`` (CellProfiler's
        LocalFocusScore). See :data:`QUALITY_DESCRIPTIONS` for units.

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
    scaled = cp_intensities(image)
    slope = power_log_log_slope(scaled) if scaled.ndim == 2 else float("nan")
    local = local_focus_score(scaled, int(focus_scale))
    figures = (focus, saturated, mean, slope, local)
    return pd.DataFrame({name: [value] for name, value in zip(QUALITY_MEASUREMENTS, figures, strict=True)})
