"""The built-in measurement stage: labels (and intensities) in, one table row per object.

Labels are 2D (Y, X) or 3D (Z, Y, X); sizes are in pixels (voxels) or, with
``units='physical'``, scaled by the image's pixel size.
"""

from typing import Literal

import numpy as np
import pandas as pd
from skimage import measure as sk_measure

from .registry import stage
from .spatial import check_same_shape, check_spatial

__all__ = ["DEFAULT_PROPERTIES", "ONLY_2D_PROPERTIES", "UNITS", "measure", "measure_table"]

DEFAULT_PROPERTIES = ("area", "intensity_mean")
try:  # the names regionprops_table accepts
    from skimage.measure._regionprops import PROPS as _PROPS

    PROPERTY_NAMES = frozenset(_PROPS.values()) | frozenset(_PROPS) | {"label"}
except ImportError:  # a future scikit-image may move it: then any name passes here
    _PROPS = {}
    PROPERTY_NAMES = frozenset()
UNITS = ("pixels", "physical")
#: properties scikit-image computes for 2D objects only
ONLY_2D_PROPERTIES = frozenset(
    {"eccentricity", "moments_hu", "moments_weighted_hu", "orientation", "perimeter", "perimeter_crofton"}
)


def _check(params: dict, connected: set[str]) -> str | None:
    """Known property names, and an intensity image for the intensity ones (see ``stage``)."""
    if params["units"] not in UNITS:
        return f"units must be one of {', '.join(UNITS)}; got {params['units']!r}"
    wanted = params["properties"]
    if not wanted:
        return "properties: expected at least one regionprops property name"
    unknown = [p for p in wanted if PROPERTY_NAMES and p not in PROPERTY_NAMES]
    if unknown:
        known = ", ".join(sorted(PROPERTY_NAMES)[:12])
        return f"properties: unknown {unknown}; known names include {known}, ..."
    needs = [p for p in wanted if "intensity" in p]
    if needs and "intensity" not in connected:
        return f"properties {needs} need an intensity image; add inputs: {{intensity: input}}"
    return None


@stage(menu="measure", returns="table", check=_check)
def measure(
    labels: "napari.types.LabelsData",
    intensity: "napari.types.ImageData | None" = None,
    properties: list[str] = list(DEFAULT_PROPERTIES),  # noqa: B006
    units: Literal["pixels", "physical"] = "pixels",
    spacing: tuple[float, ...] | None = None,
) -> "pandas.DataFrame":
    """Measure every labelled object: one row per label.

    Parameters
    ----------
    labels : (M, N) or (P, M, N) ndarray of int
        Label image, 0 for background.
    intensity : ndarray, same shape as ``labels``, optional
        Intensity image for the ``intensity_*`` properties.
    properties : list of str
        Names accepted by ``skimage.measure.regionprops_table``; ``label`` always comes
        first. Multi-valued properties give several columns (``centroid-0``, ``centroid-1``).
        In 3D, the 2D-only ones (``ONLY_2D_PROPERTIES``: eccentricity, perimeter,
        orientation, ...) are refused.
    units : {'pixels', 'physical'}
        ``'pixels'`` measures sizes and positions in pixels (voxels in 3D);
        ``'physical'`` scales them by ``spacing`` (``regionprops_table(spacing=...)``).
        Column names are the same either way.
    spacing : tuple of float, optional
        The pixel size, ``(z, y, x)`` or ``(y, x)``, in micrometres; the engine gives
        the image's own. Only ``units='physical'`` uses it; when it has more values
        than ``labels`` has axes, the last ones are taken.

    Returns
    -------
    pandas.DataFrame
        Column ``label``, then one column per (expanded) property.

    Raises
    ------
    ValueError
        If ``labels`` is neither 2D nor 3D, ``intensity`` has another shape, a property
        does not exist in this dimension, or ``units='physical'`` has no ``spacing``.
    """
    labels = check_spatial("measure", labels)
    if intensity is not None:
        intensity = check_same_shape("measure", labels, intensity, "intensity image", "labels")
    scale = _physical_spacing(spacing, labels.ndim) if units == "physical" else None
    return measure_table(labels, intensity, properties, spacing=scale)


def measure_table(
    labels: np.ndarray,
    intensity: np.ndarray | None,
    properties: list[str],
    *,
    spacing: tuple[float, ...] | None = None,
    offset: tuple[int, ...] | None = None,
) -> pd.DataFrame:
    """The table of :func:`measure`, of ``labels`` cut out of a larger image at ``offset``.

    Positions (``centroid``, ``coords``, ``bbox``...) are then those in the larger image:
    ``offset`` goes to ``regionprops_table`` and is added to ``bbox``, which scikit-image
    does not shift. ``spacing`` is the physical pixel size, or None for pixels.
    """
    wanted = [p for p in properties if p != "label"]
    if labels.ndim == 3:
        flat = [p for p in wanted if _PROPS.get(p, p) in ONLY_2D_PROPERTIES]
        if flat:
            raise ValueError(
                f"properties {flat} are 2D-only in scikit-image and these labels are 3D "
                f"(shape {labels.shape}); remove them from properties"
            )
    try:
        if offset is None:
            table = sk_measure.regionprops_table(
                labels.astype(np.int32, copy=False),
                intensity_image=intensity,
                properties=["label", *wanted],
                spacing=spacing,
            )
        else:  # regionprops_table takes no offset: the same table from regionprops
            regions = sk_measure.regionprops(
                labels.astype(np.int32, copy=False), intensity_image=intensity, spacing=spacing, offset=offset
            )
            # imported here: a module-level name of skimage's would be copied into an
            # exported script as a constant, which a function is not
            from skimage.measure._regionprops import _props_to_dict

            table = _props_to_dict(regions, properties=["label", *wanted], separator="-")
            if "centroid_weighted" in wanted:
                table.update(_centroids_weighted(regions, offset, spacing))
    except NotImplementedError as error:  # e.g. perimeter with an anisotropic pixel size
        if spacing is None:
            raise
        raise ValueError(f"{error} (pixel size {spacing}); measure it with units: pixels") from None
    frame = pd.DataFrame(table)
    if offset is not None and any(offset):
        ndim = labels.ndim
        for column, axis in [(f"bbox-{i}", i % ndim) for i in range(2 * ndim)]:
            if column in frame:
                frame[column] = frame[column] + offset[axis]
    return frame


def _centroids_weighted(
    regions: list, offset: tuple[int, ...], spacing: tuple[float, ...] | None
) -> dict[str, np.ndarray]:
    """``centroid_weighted`` as the whole image gives it: scikit-image adds the object's
    start (not the offset) to its local centroid, so the start is taken in the image."""
    scale = spacing if spacing is not None else (1.0,) * len(offset)
    columns: dict[str, list[float]] = {}
    for region in regions:
        local = np.asarray(region.centroid_weighted_local)
        for axis, values in enumerate(local):
            start = (region.slice[axis].start + offset[axis]) * scale[axis]
            for channel, value in np.ndenumerate(np.asarray(values + start)):
                suffix = "".join(f"-{c}" for c in channel)
                columns.setdefault(f"centroid_weighted-{axis}{suffix}", []).append(value)
    return {name: np.asarray(values) for name, values in columns.items()}


def _physical_spacing(spacing: tuple[float, ...] | None, ndim: int) -> tuple[float, ...]:
    """The pixel size along the last ``ndim`` axes; refuse a missing or unusable one."""
    if spacing is None:
        raise ValueError(
            "units: physical needs the pixel size, and this image has none; "
            "use units: pixels, or save the images with their pixel size"
        )
    if len(spacing) < ndim:
        raise ValueError(f"the pixel size {tuple(spacing)} has fewer values than the labels' {ndim} axes")
    scale = tuple(float(size) for size in spacing[-ndim:])
    if not all(np.isfinite(size) and size > 0 for size in scale):
        raise ValueError(f"the pixel size must be positive, got {scale}")
    return scale
