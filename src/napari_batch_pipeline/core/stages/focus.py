"""CellProfiler's focus measures that compare fields of different scenes and brightness:
PowerLogLogSlope and LocalFocusScore (its MeasureImageQuality module), as CellProfiler
computes them, on intensities scaled as it scales them.

- :func:`cp_intensities`: an image as CellProfiler sees it: integers divided by the
  largest value of their type (65535 for 16-bit, 255 for 8-bit), floats as they are.
- :func:`power_log_log_slope`: the slope of the line fitted (least squares) to the
  logarithm of the power spectrum summed over rings of equal spatial frequency against the
  logarithm of the ring's radius. The image is first centred on its mean and divided by its
  median absolute deviation from the mean, so neither brightness nor offset changes it.
  Rings run from radius 1 to ``min(M, N) / 8 - 2`` pixels of frequency (CellProfiler's
  rings: radius ``floor(sqrt(u^2 + v^2))`` with ``u = min(i, M - 1 - i)`` and likewise
  ``v``), rings with no power left out. A sharp field has more power at high frequencies,
  so a flatter (less negative) slope; blur makes it steeper. 0 for a constant image or one
  too small for two rings, as CellProfiler gives. 2D only.
- :func:`local_focus_score`: the image cut into a grid of ``ceil(M / scale)`` x
  ``ceil(N / scale)`` tiles of nearly equal size; each tile with a mean other than 0 gives
  its normalised variance ``var / mean`` (ddof 0); the score is the variance of those
  (ddof 0) over their median (0 when the median is not positive). It scales with
  intensity as ``var / mean`` does; in 3D the tiles are boxes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cp_intensities", "local_focus_score", "power_log_log_slope"]


def cp_intensities(image: np.ndarray) -> np.ndarray:
    """``image`` as float64 on CellProfiler's scale: an integer type divided by its largest
    value, a boolean as 0 and 1, a float as it is.

    Parameters
    ----------
    image : ndarray
        Any numeric or boolean dtype.

    Returns
    -------
    ndarray of float64, the shape of ``image``
    """
    values = np.asarray(image)
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float64) / float(np.iinfo(values.dtype).max)
    return values.astype(np.float64)


def _ring_sums(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radii, magnitude and power of the Fourier transform summed over CellProfiler's rings."""
    rows, columns = image.shape
    u = np.minimum(np.arange(rows), rows - 1 - np.arange(rows))
    v = np.minimum(np.arange(columns), columns - 1 - np.arange(columns))
    radius = np.floor(np.sqrt(u[:, None] ** 2 + v[None, :] ** 2)).astype(np.int64) + 1
    last = int(np.floor(min(rows, columns) / 8.0))  # rings 2 .. last - 1 (1 is the mean)
    if last <= 2:
        return np.array([2]), np.zeros(1), np.zeros(1)
    if np.ptp(image) > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            image = image / np.median(np.abs(image - image.mean()))
    magnitude = np.abs(np.fft.fft2(image - image.mean()))
    radii = np.arange(2, last)
    magnitude_sums = np.bincount(radius.ravel(), weights=magnitude.ravel(), minlength=last)[2:last]
    power_sums = np.bincount(radius.ravel(), weights=(magnitude**2).ravel(), minlength=last)[2:last]
    return radii, magnitude_sums, power_sums


def power_log_log_slope(image: np.ndarray) -> float:
    """CellProfiler's PowerLogLogSlope of a 2D image (see the module's docstring).

    Parameters
    ----------
    image : (M, N) ndarray
        Intensities (any scale: the slope does not depend on it).

    Returns
    -------
    float
        Typically -1.5 (sharp, noisy) to -4 (blurred); 0 for a constant image.

    Raises
    ------
    ValueError
        If ``image`` is not 2D.
    """
    values = np.asarray(image, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"power_log_log_slope: expected a 2D image, got shape {values.shape}")
    radii, magnitude, power = _ring_sums(values)
    if not np.sum(magnitude) > 0 or len(np.unique(values)) < 2:
        return 0.0
    valid = magnitude > 0
    radii, power = radii[valid], power[valid]
    if len(radii) < 2:
        return 0.0
    with np.errstate(divide="ignore"):
        logged = np.log(power)
    finite = np.isfinite(logged)
    design = np.column_stack([np.log(radii[finite]), np.ones(int(finite.sum()))])
    slope = np.linalg.lstsq(design, logged[finite], rcond=None)[0][0]
    return float(slope)


def local_focus_score(image: np.ndarray, scale: int = 20) -> float:
    """CellProfiler's LocalFocusScore (see the module's docstring).

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        Intensities, on CellProfiler's scale (:func:`cp_intensities`) to compare with it.
    scale : int
        The tiles' side in pixels (CellProfiler's "spatial scale", default 20).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``scale`` is below 1.
    """
    if scale < 1:
        raise ValueError(f"local_focus_score: scale must be 1 or more, got {scale}")
    values = np.asarray(image, dtype=np.float64)
    tiles = np.zeros(values.shape, dtype=np.int64)
    for axis, size in enumerate(values.shape):
        count = (size + scale - 1) // scale
        index = (np.arange(size, dtype=np.float64) * count / size).astype(np.int64)
        shape = [1] * values.ndim
        shape[axis] = size
        tiles = tiles * count + index.reshape(shape)
    flat, labels = values.ravel(), tiles.ravel()
    pixels = np.bincount(labels)
    present = pixels > 0
    means = np.bincount(labels, weights=flat)[present] / pixels[present]
    local_means = np.zeros(len(pixels))
    local_means[present] = means
    squares = np.bincount(labels, weights=(flat - local_means[labels]) ** 2)[present]
    nonzero = means != 0
    normalised = squares[nonzero] / (pixels[present][nonzero] * means[nonzero])
    if not len(normalised):
        return 0.0
    median = float(np.median(normalised))
    if not np.isfinite(median) or median <= 0:
        return 0.0
    return float(np.var(normalised) / median)
