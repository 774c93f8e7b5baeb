"""Built-in segmentation stages: from an image to a mask, from a mask to labels, and back.

A mask is a boolean array; labels are an integer array where 0 is background. Every
stage takes 2D (Y, X) and 3D (Z, Y, X) arrays; radius footprints are disks in 2D and
balls in 3D, and sizes count pixels (voxels in 3D).
"""

from typing import Literal

import numpy as np
from scipy import ndimage as ndi
from skimage import feature, filters, measure, morphology, segmentation

from .registry import stage
from .spatial import check_same_shape, check_spatial, footprint

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
    image : (M, N) or (P, M, N) ndarray
        Input image.
    method : str
        A global method of ``skimage.filters`` (``threshold_<method>``), or ``'local'``
        for an adaptive threshold over ``block_size`` neighbourhoods.
    block_size : int
        Odd size of the neighbourhood of the local method, in pixels along every axis
        (a cube in 3D); ignored otherwise.
    offset : float
        Subtracted from the local threshold; ignored by global methods.

    Returns
    -------
    ndarray of bool, same shape as ``image``
        True where ``image`` is above the threshold.
    """
    image = check_spatial("threshold", image)
    if method == "local":
        return image > filters.threshold_local(image, block_size=block_size, offset=offset)
    return image > getattr(filters, f"threshold_{method}")(image)


@stage(menu="segment")
def remove_small_objects(labels: "napari.types.LabelsData", min_size: int = 64) -> "napari.types.LabelsData":
    """Remove objects smaller than ``min_size`` pixels from a mask or a label image.

    Parameters
    ----------
    labels : (M, N) or (P, M, N) ndarray of bool or int
        A mask (connected components, by faces, are the objects) or a label image.
    min_size : int
        Objects with fewer pixels (voxels in 3D) than this are removed.

    Returns
    -------
    ndarray
        Same shape, kind and dtype as ``labels``.
    """
    labels = check_spatial("remove_small_objects", labels)
    if min_size < 1:
        return labels.copy()
    return morphology.remove_small_objects(labels, max_size=min_size - 1)


@stage(menu="segment", returns="mask")
def binary_opening(mask: "napari.types.LabelsData", radius: int = 1) -> "napari.types.LabelsData":
    """Open a mask with a disk (a ball in 3D): removes specks and bridges narrower than it.

    Parameters
    ----------
    mask : (M, N) or (P, M, N) ndarray
        Foreground mask (non-zero is foreground).
    radius : int
        Radius of the footprint in pixels: a disk in 2D, a ball in 3D.

    Returns
    -------
    ndarray of bool, same shape as ``mask``
    """
    mask = check_spatial("binary_opening", mask)
    return morphology.opening(mask.astype(bool), footprint(radius, mask.ndim))


@stage(menu="segment", returns="mask")
def fill_holes(mask: "napari.types.LabelsData", max_size: int = 0) -> "napari.types.LabelsData":
    """Fill holes in a mask.

    Parameters
    ----------
    mask : (M, N) or (P, M, N) ndarray
        Foreground mask (non-zero is foreground). In 3D a hole is a cavity: background
        enclosed on every side, not a hole in one plane.
    max_size : int
        Fill only holes of at most this many pixels (voxels in 3D); 0 fills every hole.

    Returns
    -------
    ndarray of bool, same shape as ``mask``
    """
    mask = check_spatial("fill_holes", mask).astype(bool)
    if max_size <= 0:
        return ndi.binary_fill_holes(mask)
    return morphology.remove_small_holes(mask, max_size=max_size)


@stage(menu="segment")
def label(mask: "napari.types.LabelsData", connectivity: int = 2) -> "napari.types.LabelsData":
    """Number the connected components of a mask.

    Parameters
    ----------
    mask : (M, N) or (P, M, N) ndarray
        Foreground mask (non-zero is foreground).
    connectivity : int
        How many axes two neighbours may differ along, 1 to ``mask.ndim``: in 2D, 1
        joins pixels that share an edge, 2 also those that share a corner; in 3D, 1
        joins voxels that share a face, 2 also an edge, 3 also a corner.

    Returns
    -------
    ndarray of int32, same shape as ``mask``
        0 for background, 1..n for the objects.
    """
    mask = check_spatial("label", mask)
    if not 1 <= connectivity <= mask.ndim:
        raise ValueError(
            f"connectivity must be 1 to {mask.ndim} for a {mask.ndim}D image, got {connectivity}"
        )
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
    image : (M, N) or (P, M, N) ndarray
        Input image, bright objects on a dark background.
    spot_sigma : float
        Blur before seed detection, in pixels; larger merges nearby seeds.
    outline_sigma : float
        Blur before thresholding, in pixels; larger gives smoother outlines.

    Returns
    -------
    ndarray of int32, same shape as ``image``
    """
    image = check_spatial("voronoi_otsu_labeling", image).astype(np.float32, copy=False)
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
    image : (M, N) or (P, M, N) ndarray
        The landscape; with ``invert`` bright objects are basins.
    markers : ndarray of int, same shape as ``image``
        Seed labels, 0 where there is no seed.
    mask : ndarray, same shape as ``image``, optional
        Only pixels where the mask is non-zero are labelled.
    compactness : float
        0 for a classic watershed; larger values give more regular regions.
    invert : bool
        Flood ``-image`` instead of ``image`` (bright objects on a dark background).

    Returns
    -------
    ndarray of int32, same shape as ``image``
    """
    image = check_spatial("watershed", image)
    markers = check_same_shape("watershed", image, markers, "markers")
    if mask is not None:
        mask = check_same_shape("watershed", image, mask, "mask")
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
    labels : (M, N) or (P, M, N) ndarray of int
        Label image.
    distance : float
        How far each label grows, in pixels (Euclidean, the same along every axis).

    Returns
    -------
    ndarray
        Same shape and dtype as ``labels``.
    """
    labels = check_spatial("expand_labels", labels)
    return segmentation.expand_labels(labels, distance=distance)
