"""Before and after an illumination correction: intensity against distance from the centre.

An unevenly lit field is bright in the middle and dark towards the corners; corrected, its
background is as bright everywhere. :func:`radial_profile` gives the median intensity of
the images in rings around the centre; :func:`illumination_figure` draws it for the
images before and after, and :func:`save_illumination_plot` writes it for a run that
saved its corrected images. The figure is made without pyplot (no GUI backend).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..files import atomic_path
from ..images.sources import read_image
from ..run_folder.reader import RunResults

__all__ = ["illumination_figure", "radial_profile", "save_illumination_plot"]


def radial_profile(images: Iterable[np.ndarray], bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """The median intensity of the images in rings around their centre.

    Parameters
    ----------
    images : iterable of (M, N) ndarray
        Images of one shape.
    bins : int
        How many rings, of equal width, from the centre to the corners.

    Returns
    -------
    distance : (bins,) ndarray of float64
        Each ring's middle, as a fraction of the distance from the centre to a corner.
    intensity : (bins,) ndarray of float64
        The median of the images' pixels in each ring (NaN for a ring without pixels).

    Raises
    ------
    ValueError
        If there is no image, or the images differ in shape.
    """
    stack = [np.asarray(image, dtype=np.float64) for image in images]
    if not stack or len({image.shape for image in stack}) != 1 or stack[0].ndim != 2:
        shapes = sorted({image.shape for image in stack})
        raise ValueError(f"radial_profile needs 2D images of one shape, got shapes {shapes or 'none'}")
    rows, cols = np.indices(stack[0].shape, dtype=np.float64)
    centre = (np.asarray(stack[0].shape, dtype=np.float64) - 1) / 2
    distance = np.hypot(rows - centre[0], cols - centre[1]) / max(np.hypot(*centre), 1.0)
    ring = np.minimum((distance * bins).astype(int), bins - 1)
    pixels = np.stack(stack)
    intensity = np.array(
        [np.median(pixels[:, ring == k]) if np.any(ring == k) else np.nan for k in range(bins)]
    )
    return (np.arange(bins) + 0.5) / bins, intensity


def illumination_figure(before: Iterable[np.ndarray], after: Iterable[np.ndarray], title: str = "") -> Figure:
    """Median intensity against distance from the centre, before and after a correction,
    each relative to its value at the centre (1: as bright as the middle)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    for images, label, style in ((before, "before", "o-"), (after, "after correction", "s-")):
        distance, intensity = radial_profile(images)
        axes.plot(distance, intensity / intensity[0], style, label=label)
    axes.axhline(1.0, color="grey", linewidth=0.8)
    axes.set_xlabel("distance from the centre (fraction of the way to a corner)")
    axes.set_ylabel("median intensity / at the centre")
    axes.set_title(title or "illumination")
    axes.legend()
    return figure


def save_illumination_plot(run_folder: str | Path, stage: str, path: str | Path) -> Path:
    """Write the before and after plot of a run that saved its corrected images.

    Parameters
    ----------
    run_folder : path
        The run folder.
    stage : str
        The stage whose saved outputs are the corrected images (``flat``).
    path : path
        Where to write the PNG (outside the run folder: the run did not write it).

    Returns
    -------
    Path
        The PNG written.
    """
    results = RunResults(run_folder)
    rows = results.done_rows()
    before = [read_image(p) for p in (results.input_path(i) for i in rows) if p is not None]
    after = [read_image(p) for p in (results.task_outputs(i).get(stage) for i in rows) if p is not None]
    target = Path(path)
    figure = illumination_figure(before, after, title=f"{len(after)} images, stage {stage!r}")
    with atomic_path(target) as temporary:
        figure.savefig(str(temporary), format="png")
    return target
