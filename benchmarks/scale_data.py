"""The data of the scale benchmark: many 1024 x 1024 16-bit images, fast, and their pipelines.

Making 1,000 images of 1024 x 1024 with :func:`~napari_batch_pipeline.core.synthetic.nuclei_image`
takes about 2 s each (it paints every nucleus over the whole image). Here a few base
images are painted locally (each nucleus only inside its own box) and every image of the
folder is one of them turned (one of the 8 rotations and mirrors) and shifted (a
different roll per image), so that no two files are alike and the object counts vary
from image to image; 1,000 files take seconds to write.

Two variants:

- ``single``: one channel, plain TIFF (``image_0001.tif``...), the chain on ``input``.
- ``three``: three channels in one ImageJ hyperstack (axes CYX, channel names ``DAPI``,
  ``Actin``, ``Marker``), the pipeline's ``channels:`` section naming ``dna`` by index
  and ``cyto`` by the name the file stores; segmented on ``dna``, measured on ``cyto``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from workload import PROPERTIES

from napari_batch_pipeline import Pipeline

__all__ = ["CHANNEL_NAMES", "VARIANTS", "make_folder", "make_pipeline"]

VARIANTS = ("single", "three")
CHANNEL_NAMES = ("DAPI", "Actin", "Marker")
#: distinct base images per channel; every file is one of them turned and shifted
_BASES = 12


def make_pipeline(variant: str) -> Pipeline:
    """The chain gaussian -> otsu -> label (saved) -> measure, for ``variant``."""
    segmented, measured = ("input", "input") if variant == "single" else ("dna", "cyto")
    text = f"""
version: 1
name: scale-{variant}
{"channels: {dna: 0, cyto: Actin}" if variant == "three" else ""}
stages:
  - {{name: blurred, function: gaussian, inputs: {{image: {segmented}}}, params: {{sigma: 2.0}}}}
  - {{name: mask, function: threshold, params: {{method: otsu}}}}
  - {{name: labels, function: label, params: {{connectivity: 2}}, save: true}}
  - name: nuclei
    function: measure
    inputs: {{labels: labels, intensity: {measured}}}
    params: {{properties: {PROPERTIES}}}
"""
    return Pipeline.from_text(text)


def make_folder(folder: Path, count: int, variant: str, size: int = 1024) -> list[Path]:
    """Write ``count`` images of ``size`` x ``size`` uint16 for ``variant`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size, size)
    nuclei = [_painted(shape, seed, radius=9.0, per_512=60) for seed in range(_BASES)]
    paths = []
    if variant == "single":
        for index, image in enumerate(_variants(nuclei, count)):
            path = folder / f"image_{index + 1:04d}.tif"
            tifffile.imwrite(path, image)
            paths.append(path)
        return paths
    cells = [_painted(shape, 100 + seed, radius=16.0, per_512=40, level=0.4) for seed in range(_BASES)]
    marker = [_painted(shape, 200 + seed, radius=4.0, per_512=120, level=0.7) for seed in range(_BASES)]
    metadata = {"axes": "CYX", "Labels": list(CHANNEL_NAMES)}
    channels = zip(_variants(nuclei, count), _variants(cells, count), _variants(marker, count), strict=True)
    for index, planes in enumerate(channels):
        path = folder / f"image_{index + 1:04d}.tif"
        tifffile.imwrite(path, np.stack(planes), imagej=True, metadata=metadata)
        paths.append(path)
    return paths


def _variants(bases: list[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """``count`` images: base ``i % len(bases)``, turned and mirrored, rolled by ``i``."""
    size = bases[0].shape[0]
    for index in range(count):
        image = bases[index % len(bases)]
        turn = (index // len(bases)) % 8
        image = np.rot90(image, turn % 4)
        if turn >= 4:
            image = image[:, ::-1]
        shift = (index * 97 % size, index * 193 % size)
        yield np.ascontiguousarray(np.roll(image, shift, axis=(0, 1)))


def _painted(
    shape: tuple[int, int], seed: int, radius: float, per_512: int, level: float = 1.0
) -> np.ndarray:
    """Round blobs on a dim, uneven, noisy background, as uint16 (12-bit range).

    Like ``nuclei_image``, but each blob is painted inside its own bounding box only.
    """
    rng = np.random.default_rng(seed)
    signal = np.zeros(shape, dtype=np.float32)
    count = max(8, round(per_512 * shape[0] * shape[1] / 512**2))
    margin = radius * 1.5
    for _ in range(count):
        r0 = rng.uniform(margin, shape[0] - margin)
        c0 = rng.uniform(margin, shape[1] - margin)
        a = radius * rng.uniform(0.8, 1.2)
        b = a * rng.uniform(0.75, 1.0)
        angle = rng.uniform(0, np.pi)
        value = rng.uniform(0.6, 1.0) * level
        top, left = int(r0 - a - 1), int(c0 - a - 1)
        rows, cols = np.mgrid[top : int(r0 + a + 2), left : int(c0 + a + 2)].astype(np.float32)
        dr, dc = rows - r0, cols - c0
        u = dr * np.cos(angle) + dc * np.sin(angle)
        v = -dr * np.sin(angle) + dc * np.cos(angle)
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        box = signal[top : top + rows.shape[0], left : left + rows.shape[1]]
        box[inside] = np.maximum(box[inside], value)
    signal = ndi.gaussian_filter(signal, 1.0)
    rows, cols = np.indices(shape, dtype=np.float32)
    background = 0.08 + 0.05 * (cols / shape[1]) + 0.03 * (rows / shape[0])
    noisy = signal + background + 0.02 * rng.standard_normal(shape, dtype=np.float32)
    return np.clip(noisy * 4095, 0, 4095).astype(np.uint16)
