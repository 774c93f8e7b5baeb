"""The space the built-in stages work in: 2D (Y, X) or 3D (Z, Y, X) images.

A stage checks its data arguments with ``check_spatial`` (a 1D or 4D array fails at
once, with its shape, instead of deep inside scikit-image), and builds its radius
neighbourhood with ``footprint``: a disk in 2D, a ball in 3D. Radii are in pixels, the
same along every axis.
"""

from typing import Any

import numpy as np
from skimage import morphology

__all__ = ["SPATIAL_NDIM", "check_same_shape", "check_spatial", "footprint"]

#: the dimensions a built-in stage accepts
SPATIAL_NDIM = (2, 3)


def check_spatial(stage: str, array: Any) -> np.ndarray:
    """Return ``array`` as an ndarray, refusing anything but a 2D or 3D image.

    Parameters
    ----------
    stage : str
        The stage's name, for the message.
    array : array_like
        The stage's main data argument.

    Returns
    -------
    (M, N) or (P, M, N) ndarray
        ``array`` itself when it already is an ndarray.

    Raises
    ------
    ValueError
        If ``array`` has neither 2 nor 3 dimensions.
    """
    array = np.asarray(array)
    if array.ndim not in SPATIAL_NDIM:
        raise ValueError(f"{stage} expects a 2D (Y, X) or 3D (Z, Y, X) image, got shape {array.shape}")
    return array


def check_same_shape(
    stage: str, reference: np.ndarray, array: Any, argument: str, reference_name: str = "image"
) -> np.ndarray:
    """Return ``array`` as an ndarray of the same shape as ``reference``.

    Raises
    ------
    ValueError
        If the shapes differ; the message names both arguments and gives both shapes.
    """
    array = np.asarray(array)
    if array.shape != reference.shape:
        raise ValueError(
            f"{stage}: {argument} has shape {array.shape}, expected the shape of the "
            f"{reference_name}, {reference.shape}"
        )
    return array


def footprint(radius: int, ndim: int) -> np.ndarray:
    """The neighbourhood of a pixel within ``radius``: a disk in 2D, a ball in 3D.

    Parameters
    ----------
    radius : int
        Radius in pixels, 0 or more (0: the pixel itself).
    ndim : {2, 3}
        Dimensions of the image it is used on.

    Returns
    -------
    (2r+1, 2r+1) or (2r+1, 2r+1, 2r+1) ndarray of uint8
        ``skimage.morphology.disk(radius)`` or ``skimage.morphology.ball(radius)``.
    """
    if ndim == 2:
        return morphology.disk(radius)
    if ndim == 3:
        return morphology.ball(radius)
    raise ValueError(f"footprints are 2D or 3D, got ndim {ndim}")
