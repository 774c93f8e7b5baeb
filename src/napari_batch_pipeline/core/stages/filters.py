"""Built-in filter stages: image in, image out, in 2D (Y, X) or 3D (Z, Y, X).

Annotations of data arguments are napari type names written as strings, so that this
module never imports napari while magicgui can still resolve them when it builds a widget.
"""

from collections.abc import Callable

import numpy as np
from skimage import exposure, filters, morphology

from .registry import stage
from .spatial import check_spatial, footprint

__all__ = ["gaussian", "median", "rescale_intensity", "white_tophat"]


def _non_negative(name: str) -> Callable[[dict, set[str]], str | None]:
    """The check that parameter ``name`` is 0 or more (see ``stage``)."""

    def check(params: dict, connected: set[str]) -> str | None:
        value = params[name]
        return f"{name} must be 0 or more, got {value}" if value < 0 else None

    return check


def _percentiles(params: dict, connected: set[str]) -> str | None:
    """Two increasing percentiles (see ``stage``)."""
    low, high = params["in_range"]
    if not 0 <= low < high <= 100:
        return f"in_range must be two percentiles with 0 <= low < high <= 100, got {[low, high]}"
    return None


@stage(menu="filter", check=_non_negative("sigma"))
def gaussian(image: "napari.types.ImageData", sigma: float = 2.0) -> "napari.types.ImageData":
    """Smooth an image with a Gaussian filter.

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        Input image, any numeric dtype.
    sigma : float
        Standard deviation of the Gaussian kernel, in pixels, the same along every axis.

    Returns
    -------
    ndarray of float32, same shape as ``image``
        The smoothed image, in the input's intensity range.
    """
    image = check_spatial("gaussian", image)
    smoothed = filters.gaussian(image, sigma=sigma, preserve_range=True)
    return np.asarray(smoothed, dtype=np.float32)


@stage(menu="filter", check=_non_negative("radius"))
def median(image: "napari.types.ImageData", radius: int = 2) -> "napari.types.ImageData":
    """Remove salt-and-pepper noise with a median filter over a disk (a ball in 3D).

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        Input image.
    radius : int
        Radius of the neighbourhood, in pixels: a disk in 2D, a ball in 3D.

    Returns
    -------
    ndarray, same shape and dtype as ``image``
        The filtered image.
    """
    image = check_spatial("median", image)
    return filters.median(image, footprint(radius, image.ndim))


@stage(menu="filter", check=_non_negative("radius"))
def white_tophat(image: "napari.types.ImageData", radius: int = 15) -> "napari.types.ImageData":
    """Subtract the background: the image minus its opening by a disk (a ball in 3D).

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        Input image.
    radius : int
        Radius of the disk (ball in 3D), in pixels; choose it larger than the objects
        to keep. A ball's size grows with the cube of the radius, and so does the time.

    Returns
    -------
    ndarray, same shape and dtype as ``image``
        Background-subtracted image.
    """
    image = check_spatial("white_tophat", image)
    return morphology.white_tophat(image, footprint(radius, image.ndim))


@stage(menu="filter", check=_percentiles)
def rescale_intensity(
    image: "napari.types.ImageData",
    in_range: tuple[float, float] = (1.0, 99.8),
) -> "napari.types.ImageData":
    """Stretch intensities between two percentiles to the range [0, 1].

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        Input image.
    in_range : (float, float)
        Low and high percentiles (0 to 100) of ``image`` mapped to 0 and 1; values
        outside are clipped.

    Returns
    -------
    ndarray of float32, same shape as ``image``
        The rescaled image, in [0, 1].
    """
    image = check_spatial("rescale_intensity", image)
    limits = np.percentile(image, in_range)
    return exposure.rescale_intensity(
        image.astype(np.float32),
        in_range=(float(limits[0]), float(limits[1])),
        out_range=(0.0, 1.0),
    ).astype(np.float32)
