"""Illumination correction: a function learnt from a group of images, and dividing it out.

:func:`illumination` is a group stage: it receives the images of a whole group (a plate,
a folder) one at a time and returns one image for the group. The mean streams (one
image in memory at a time); the median works out of core when the engine hands it the
images as arrays on disk (an iterable with a ``paths`` attribute listing ``.npy``
files), reading chunks of rows of every image at once.
"""

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from skimage import filters

from .registry import stage
from .spatial import check_same_shape, check_spatial

__all__ = ["FWHM_PER_SIGMA", "ImagesOnDisk", "correct_illumination", "illumination", "smoothing_sigma"]

#: the most bytes of pixels the out-of-core median holds at once (one chunk of rows)
CHUNK_BYTES = 32 * 2**20


class ImagesOnDisk:
    """A group's images kept as ``.npy`` files: iterated, they are loaded one at a time,
    in order; their ``paths`` let :func:`illumination`'s median read chunks of rows of
    every one instead.

    Parameters
    ----------
    paths : sequence of Path
        The files, in image order.
    """

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            yield np.load(path, allow_pickle=False)


#: CellProfiler's smoothing filter size is a Gaussian's full width at half maximum:
#: sigma = size / 2.35 (2 sqrt(2 ln 2) = 2.3548, rounded as CellProfiler rounds it)
FWHM_PER_SIGMA = 2.35


def _smoothing(params: dict, connected: set[str]) -> str | None:
    """``smoothing`` and ``smoothing_filter_size`` are 0 or more (see ``stage``)."""
    for name in ("smoothing", "smoothing_filter_size"):
        if params[name] < 0:
            return f"{name} must be 0 or more, got {params[name]}"
    return None


def smoothing_sigma(smoothing: float, smoothing_filter_size: float = 0.0) -> float:
    """The Gaussian sigma :func:`illumination` smooths with: ``smoothing_filter_size /
    2.35`` when a filter size is given (> 0), else ``smoothing``."""
    return smoothing_filter_size / FWHM_PER_SIGMA if smoothing_filter_size > 0 else smoothing


@stage(menu="filter", check=_smoothing)
def illumination(
    images: "Iterable[napari.types.ImageData]",
    statistic: Literal["mean", "median"] = "mean",
    smoothing: float = 30.0,
    smoothing_filter_size: float = 0.0,
) -> "napari.types.ImageData":
    """Learn an illumination function from a group of images (a group stage).

    Parameters
    ----------
    images : iterable of (M, N) or (P, M, N) ndarray
        The group's images, in image order, all of one shape (one array: a group of
        one image). An iterable with a ``paths`` attribute (``.npy`` files holding the
        same images) lets the median read them from disk in chunks of rows instead of
        holding them all.
    statistic : {'mean', 'median'}
        The pixel-wise statistic S over the images, computed in float64.
    smoothing : float
        The Gaussian's **sigma**, in pixels, of ``skimage.filters.gaussian(S, smoothing,
        preserve_range=True)``; 0 leaves S as it is. Not CellProfiler's "smoothing filter
        size", which is a full width at half maximum (2.35 sigmas): a size copied from a
        CellProfiler pipeline goes in ``smoothing_filter_size``.
    smoothing_filter_size : float
        CellProfiler's smoothing filter size (CorrectIlluminationCalculate, Gaussian
        filter), in pixels: when above 0, the Gaussian's sigma is ``size / 2.35`` and
        ``smoothing`` is not used; 0 (the default): ``smoothing`` is the sigma.

    Returns
    -------
    (M, N) or (P, M, N) ndarray of float32
        The illumination function.

    Raises
    ------
    ValueError
        If there is no image, one is not 2D or 3D, or two differ in shape (naming both).
    """
    if isinstance(images, np.ndarray):
        images = [check_spatial("illumination", images)]
    paths = getattr(images, "paths", None)
    if statistic == "mean":
        total = _mean(images)
    elif paths is not None:
        total = _median_on_disk([Path(p) for p in paths])
    else:
        stack = list(_checked_shapes(images))
        if not stack:
            raise ValueError("illumination needs at least one image, got none")
        total = np.median(np.stack(stack).astype(np.float64, copy=False), axis=0)
    sigma = smoothing_sigma(smoothing, smoothing_filter_size)
    if sigma > 0:
        total = filters.gaussian(total, sigma, preserve_range=True)
    return np.asarray(total, dtype=np.float32)


@stage(menu="filter")
def correct_illumination(
    image: "napari.types.ImageData",
    illumination: "napari.types.ImageData",
    method: Literal["divide", "subtract"] = "divide",
) -> "napari.types.ImageData":
    """Remove an illumination function from an image.

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        The image to correct.
    illumination : ndarray, the shape of ``image``
        The illumination function (as :func:`illumination` gives it).
    method : {'divide', 'subtract'}
        divide: ``image / (illumination / median(illumination))``, so that intensities
        keep their scale; subtract: ``max(image - illumination, 0)``.

    Returns
    -------
    ndarray of float32, the shape of ``image``

    Raises
    ------
    ValueError
        If the image is not 2D or 3D, or the two shapes differ.
    """
    pixels = check_spatial("correct_illumination", image).astype(np.float64, copy=False)
    function = check_same_shape("correct_illumination", pixels, illumination, "illumination")
    function = function.astype(np.float64, copy=False)
    if method == "divide":
        with np.errstate(divide="ignore", invalid="ignore"):
            corrected = pixels / (function / np.median(function))
    else:
        corrected = np.maximum(pixels - function, 0)
    return corrected.astype(np.float32)


def _checked_shapes(images: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The images, refusing one whose shape differs from the first's."""
    first: tuple[int, ...] | None = None
    for number, image in enumerate(images, 1):
        shape = check_spatial("illumination", image).shape
        if first is None:
            first = shape
        elif shape != first:
            raise ValueError(
                f"every image of a group must have one shape: image 1 is {first}, image {number} is {shape}"
            )
        yield np.asarray(image)


def _mean(images: Iterable[np.ndarray]) -> np.ndarray:
    """The pixel-wise mean in float64, one image in memory at a time."""
    total: np.ndarray | None = None
    count = 0
    for image in _checked_shapes(images):
        if total is None:
            total = np.zeros(image.shape, dtype=np.float64)
        total += image
        count += 1
    if total is None:
        raise ValueError("illumination needs at least one image, got none")
    return total / count


def _median_on_disk(paths: Sequence[Path]) -> np.ndarray:
    """The pixel-wise median of ``.npy`` files, read in chunks of rows (first axis after
    any leading ones), so that memory holds one chunk of every image, not the images."""
    if not paths:
        raise ValueError("illumination needs at least one image, got none")
    headers = [_npy_header(path) for path in paths]
    shape = headers[0][0]
    for number, (other, _, _) in enumerate(headers[1:], 2):
        if other != shape:
            raise ValueError(
                f"every image of a group must have one shape: image 1 is {shape}, image {number} is {other}"
            )
    rows = shape[0] if shape else 1
    row_items = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    per_row = max(1, row_items * 8 * len(paths))
    step = max(1, CHUNK_BYTES // per_row)
    result = np.empty(shape, dtype=np.float64)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        chunk = np.empty((len(paths), stop - start, *shape[1:]), dtype=np.float64)
        for index, (path, (_, image_dtype, offset)) in enumerate(zip(paths, headers, strict=True)):
            count = (stop - start) * row_items
            values = np.fromfile(
                path, dtype=image_dtype, count=count, offset=offset + start * row_items * image_dtype.itemsize
            )
            chunk[index] = values.reshape(stop - start, *shape[1:])
        result[start:stop] = np.median(chunk, axis=0)
    return result


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape, dtype and data offset of a C-ordered ``.npy`` file."""
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        if fortran:
            raise ValueError(f"{path}: expected a C-ordered array")
        return tuple(shape), np.dtype(dtype), handle.tell()
