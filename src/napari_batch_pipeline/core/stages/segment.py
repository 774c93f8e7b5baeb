"""Built-in segmentation stages: from an image to a mask, from a mask to labels, and back.

A mask is a boolean array; labels are an integer array where 0 is background.
"""

from typing import Literal

import numpy as np
from scipy import ndimage as ndi
from skimage import feature, filters, measure, morphology, segmentation

from .registry import stage

__all__ = [
    "THRESHOLD_METHODS",
    "binary_opening",
    "expand_labels",
    "fill_holes",
    "label",
    "remove_small_objects",
    "threshold",
    "voronoi_otsu_labeling",
    "watershed",
]

ThresholdMethod = Literal["otsu", "li", "yen", "triangle", "mean", "isodata", "minimum", "local"]
THRESHOLD_METHODS: tuple[str, ...] = ThresholdMethod.__args__  # type: ignore[attr-defined]


def _threshold_check(params: dict, connected: set[str]) -> str | None:
    """A known method, and an odd block size for the local one (see ``stage``)."""
    method = params["method"]
    if method not in THRESHOLD_METHODS:
        return f"method must be one of {', '.join(THRESHOLD_METHODS)}; got {method!r}"
    if method == "local" and params["block_size"] % 2 == 0:
        return f"block_size must be odd for the local method, got {params['block_size']}"
    return None


@stage(menu="segment", returns="mask", check=_threshold_check)
def threshold(
    image: "napari.types.ImageData",
    method: ThresholdMethod = "otsu",
    block_size: int = 35,
    offset: float = 0.0,
) -> "napari.types.LabelsData":
    """Foreground mask: the pixels brighter than a threshold.

    Parameters
    ----------
    image : (M, N) ndarray
        Input image.
    method : str
        A global method of ``skimage.filters`` (``threshold_<method>``), or ``'local'``
        for an adaptive threshold over ``block_size`` neighbourhoods.
    block_size : int
        Odd size of the neighbourhood of the local method; ignored otherwise.
    offset : float
        Subtracted from the local threshold; ignored by global methods.

    Returns
    -------
    (M, N) ndarray of bool
        True where ``image`` is above the threshold.
    """
    if method == "local":
        return image > filters.threshold_local(image, block_size=block_size, offset=offset)
    return image > getattr(filters, f"threshold_{method}")(image)


@stage(menu="segment")
def remove_small_objects(labels: "napari.types.LabelsData", min_size: int = 64) -> "napari.types.LabelsData":
    """Remove objects smaller than ``min_size`` pixels from a mask or a label image.

    Parameters
    ----------
    labels : (M, N) ndarray of bool or int
        A mask (connected components are the objects) or a label image.
    min_size : int
        Objects with fewer pixels than this are removed.

    Returns
    -------
    (M, N) ndarray
        Same kind and dtype as ``labels``.
    """
    if min_size < 1:
        return labels.copy()
    return morphology.remove_small_objects(labels, max_size=min_size - 1)


@stage(menu="segment", returns="mask")
def binary_opening(mask: "napari.types.LabelsData", radius: int = 1) -> "napari.types.LabelsData":
    """Open a mask with a disk: removes specks and thin bridges narrower than it.

    Parameters
    ----------
    mask : (M, N) ndarray
        Foreground mask (non-zero is foreground).
    radius : int
        Radius of the disk-shaped footprint.

    Returns
    -------
    (M, N) ndarray of bool
    """
    return morphology.opening(mask.astype(bool), morphology.disk(radius))


@stage(menu="segment", returns="mask")
def fill_holes(mask: "napari.types.LabelsData", max_size: int = 0) -> "napari.types.LabelsData":
    """Fill holes in a mask.

    Parameters
    ----------
    mask : (M, N) ndarray
        Foreground mask (non-zero is foreground).
    max_size : int
        Fill only holes of at most this many pixels; 0 fills every hole.

    Returns
    -------
    (M, N) ndarray of bool
    """
    mask = mask.astype(bool)
    if max_size <= 0:
        return ndi.binary_fill_holes(mask)
    return morphology.remove_small_holes(mask, max_size=max_size)


@stage(menu="segment")
def label(mask: "napari.types.LabelsData", connectivity: int = 2) -> "napari.types.LabelsData":
    """Number the connected components of a mask.

    Parameters
    ----------
    mask : (M, N) ndarray
        Foreground mask (non-zero is foreground).
    connectivity : int
        1 joins pixels that share an edge, 2 also those that share a corner.

    Returns
    -------
    (M, N) ndarray of int32
        0 for background, 1..n for the objects.
    """
    return measure.label(mask.astype(bool), connectivity=connectivity).astype(np.int32)


@stage(menu="segment")
def voronoi_otsu_labeling(
    image: "napari.types.ImageData", spot_sigma: float = 2.0, outline_sigma: float = 2.0
) -> "napari.types.LabelsData":
    """Label blob-like objects in one step: seeds from blurred maxima, outlines from Otsu.

    The image blurred with ``spot_sigma`` gives one seed per local maximum; the image
    blurred with ``outline_sigma`` and thresholded with Otsu's method gives the
    foreground; a watershed from the seeds splits the foreground between them.

    Parameters
    ----------
    image : (M, N) ndarray
        Input image, bright objects on a dark background.
    spot_sigma : float
        Blur before seed detection; larger merges nearby seeds.
    outline_sigma : float
        Blur before thresholding; larger gives smoother outlines.

    Returns
    -------
    (M, N) ndarray of int32
    """
    image = np.asarray(image, dtype=np.float32)
    spots = filters.gaussian(image, sigma=spot_sigma)
    outline = filters.gaussian(image, sigma=outline_sigma)
    foreground = outline > filters.threshold_otsu(outline)
    peaks = feature.peak_local_max(spots, min_distance=1, labels=foreground.astype(np.int32))
    seeds = np.zeros(image.shape, dtype=np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(-outline, seeds, mask=foreground)
    return labels.astype(np.int32)


@stage(menu="segment")
def watershed(
    image: "napari.types.ImageData",
    markers: "napari.types.LabelsData",
    mask: "napari.types.LabelsData | None" = None,
    compactness: float = 0.0,
    invert: bool = True,
) -> "napari.types.LabelsData":
    """Seeded watershed: grow each marker over the image until the regions meet.

    Parameters
    ----------
    image : (M, N) ndarray
        The landscape; with ``invert`` bright objects are basins.
    markers : (M, N) ndarray of int
        Seed labels, 0 where there is no seed.
    mask : (M, N) ndarray, optional
        Only pixels where the mask is non-zero are labelled.
    compactness : float
        0 for a classic watershed; larger values give more regular regions.
    invert : bool
        Flood ``-image`` instead of ``image`` (bright objects on a dark background).

    Returns
    -------
    (M, N) ndarray of int32
    """
    landscape = -np.asarray(image, dtype=np.float32) if invert else image
    labels = segmentation.watershed(
        landscape,
        markers,
        mask=None if mask is None else mask.astype(bool),
        compactness=compactness,
    )
    return labels.astype(np.int32)


@stage(menu="segment")
def expand_labels(labels: "napari.types.LabelsData", distance: float = 1.0) -> "napari.types.LabelsData":
    """Grow every label outwards by ``distance`` pixels without overlapping its neighbours.

    Parameters
    ----------
    labels : (M, N) ndarray of int
        Label image.
    distance : float
        How far each label grows, in pixels.

    Returns
    -------
    (M, N) ndarray
        Same dtype as ``labels``.
    """
    return segmentation.expand_labels(labels, distance=distance)
