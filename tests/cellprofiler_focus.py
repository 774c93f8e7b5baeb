"""CellProfiler's PowerLogLogSlope and LocalFocusScore (MeasureImageQuality) written out
step by step from their definitions, with scipy, without the package: what the package's
own implementation is checked against.

Both take intensities on CellProfiler's scale (integers divided by their type's largest
value), as CellProfiler's image loading gives them.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, ndimage, stats


def cellprofiler_scale(image: np.ndarray) -> np.ndarray:
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float64) / np.iinfo(image.dtype).max
    return image.astype(np.float64)


def power_log_log_slope(pixels: np.ndarray) -> float:
    """The slope of log(ring power) against log(ring radius), least squares."""
    height, width = pixels.shape
    i, j = np.mgrid[0:height, 0:width]
    squared = i**2 + j**2
    squared = np.minimum(squared, np.flipud(squared))  # CellProfiler's folding of the spectrum
    squared = np.minimum(squared, np.fliplr(squared))
    ring = np.floor(np.sqrt(squared)).astype(int) + 1
    image = pixels
    if image.max() > image.min():
        image = image / np.median(np.abs(image - image.mean()))  # brightness-invariant
    magnitude = np.abs(fft.fft2(image - image.mean()))
    rings = np.arange(2, int(np.floor(min(height, width) / 8.0)))
    if len(rings) == 0 or len(np.unique(pixels)) < 2:
        return 0.0
    magnitude_sum = ndimage.sum_labels(magnitude, ring, rings)
    power_sum = ndimage.sum_labels(magnitude**2, ring, rings)
    if not magnitude_sum.sum() > 0:
        return 0.0
    keep = magnitude_sum > 0
    if keep.sum() < 2:
        return 0.0
    return float(stats.linregress(np.log(rings[keep]), np.log(power_sum[keep])).slope)


def local_focus_score(pixels: np.ndarray, scale: int = 20) -> float:
    """var / median of the tiles' normalised variances (var / mean, tiles of mean 0 left out)."""
    counts = [(size + scale - 1) // scale for size in pixels.shape]
    # pixel p of an axis of n pixels cut into c tiles lies in tile floor(p * c / n)
    owners = [np.floor(np.arange(n) * c / n).astype(int) for n, c in zip(pixels.shape, counts, strict=True)]
    normalised = []
    for tile in np.ndindex(*counts):
        selection = np.ix_(*[owner == index for owner, index in zip(owners, tile, strict=True)])
        values = pixels[selection]
        if values.size == 0 or values.mean() == 0:
            continue
        normalised.append(values.var() / values.mean())
    if not normalised:
        return 0.0
    median = np.median(normalised)
    return float(np.var(normalised) / median) if median > 0 else 0.0
