"""The large-image demo: a synthetic slide of nuclei larger than one would load whole,
written as a tiled BigTIFF block by block (never whole in memory), and its pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["LARGE_PIPELINE", "LargeDemo", "prepare_large_demo", "write_slide"]

LARGE_PIPELINE = """\
version: 1
name: slide
stages:
  - name: blurred
    function: gaussian
    params: {sigma: 2}
  - name: mask
    function: threshold
    params: {method: otsu}
  - name: labels
    function: label
    save: true
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: input}
    params: {properties: [area, intensity_mean, centroid, eccentricity]}
"""

_BLOCK = 512
_RADIUS = 9


class LargeDemo(NamedTuple):
    """What :func:`prepare_large_demo` writes."""

    images: Path
    pipeline: Path


def prepare_large_demo(folder: str | Path, side: int = 8192) -> LargeDemo:
    """Write ``slide/slide.tif`` (``side`` x ``side`` uint16, tiled BigTIFF) and ``slide.yaml``."""
    folder = Path(folder)
    images = folder / "slide"
    images.mkdir(parents=True, exist_ok=True)
    write_slide(images / "slide.tif", side)
    pipeline = folder / "slide.yaml"
    pipeline.write_text(LARGE_PIPELINE, encoding="utf-8")
    return LargeDemo(images, pipeline)


def write_slide(path: Path, side: int, seed: int = 0) -> None:
    """A ``side`` x ``side`` slide of round nuclei (one per 40 x 40 pixels on average, some
    touching, many across the blocks it is written in), written block by block."""
    import tifffile

    rng = np.random.default_rng(seed)
    count = side * side // 1600
    centres = rng.uniform(0, side, size=(count, 2))
    radii = rng.uniform(0.6, 1.3, size=count) * _RADIUS
    brightness = rng.uniform(0.5, 1.0, size=count)
    tifffile.imwrite(
        path,
        _blocks(side, centres, radii, brightness, seed),
        shape=(side, side),
        dtype=np.uint16,
        tile=(_BLOCK, _BLOCK),
        bigtiff=True,
        compression="zlib",
    )


def _blocks(
    side: int, centres: np.ndarray, radii: np.ndarray, brightness: np.ndarray, seed: int
) -> Iterator[np.ndarray]:
    """The slide's blocks in raster order, each drawn from the nuclei that reach into it."""
    order = np.argsort(centres[:, 0])
    rows = centres[order, 0]
    for top in range(0, side, _BLOCK):
        near = order[
            np.searchsorted(rows, top - 2 * _RADIUS) : np.searchsorted(rows, top + _BLOCK + 2 * _RADIUS)
        ]
        for left in range(0, side, _BLOCK):
            rng = np.random.default_rng((seed, top, left))
            block = rng.normal(0.08, 0.01, size=(_BLOCK, _BLOCK))
            for i in near[np.abs(centres[near, 1] - (left + _BLOCK / 2)) < _BLOCK / 2 + 2 * _RADIUS]:
                cy, cx = centres[i, 0] - top, centres[i, 1] - left
                r = radii[i]
                y0, y1 = max(int(cy - r - 2), 0), min(int(cy + r + 3), _BLOCK)
                x0, x1 = max(int(cx - r - 2), 0), min(int(cx + r + 3), _BLOCK)
                if y0 >= y1 or x0 >= x1:
                    continue
                yy, xx = np.mgrid[y0:y1, x0:x1]
                distance = np.hypot(yy - cy, xx - cx)
                block[y0:y1, x0:x1] += brightness[i] * np.clip(r + 0.5 - distance, 0, 1)
            yield (np.clip(block, 0, 1) * 40000).astype(np.uint16)
