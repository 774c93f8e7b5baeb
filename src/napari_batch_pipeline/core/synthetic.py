"""Synthetic nuclei images, made on the fly with a fixed seed: for the demo, sample data and tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

__all__ = ["nuclei_image", "vignetting", "write_nuclei_folder"]


def nuclei_image(
    shape: tuple[int, int] = (256, 256),
    n_nuclei: int = 25,
    radius: float = 9.0,
    seed: int = 0,
    dtype: type = np.uint16,
    brightness: float = 1.0,
) -> np.ndarray:
    """A fluorescence-like image of round nuclei on a dim, uneven, noisy background.

    Parameters
    ----------
    shape : (int, int)
        Image shape (M, N).
    n_nuclei : int
        How many nuclei to place (they may touch).
    radius : float
        Mean nucleus radius in pixels; each varies by about 20 %.
    seed : int
        Seed of the random generator: the same seed gives the same image.
    dtype : numpy dtype
        ``uint16`` (default, 12-bit range) or ``uint8``.
    brightness : float
        Scales the nuclei's intensity above the background (1: up to about 85 % of the range).

    Returns
    -------
    (M, N) ndarray of ``dtype``
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape, dtype=np.float32)
    signal = np.zeros(shape, dtype=np.float32)
    margin = radius * 1.5
    for _ in range(n_nuclei):
        r0 = rng.uniform(margin, shape[0] - margin)
        c0 = rng.uniform(margin, shape[1] - margin)
        a = radius * rng.uniform(0.8, 1.2)
        b = a * rng.uniform(0.75, 1.0)
        angle = rng.uniform(0, np.pi)
        dr, dc = rows - r0, cols - c0
        u = dr * np.cos(angle) + dc * np.sin(angle)
        v = -dr * np.sin(angle) + dc * np.cos(angle)
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        signal[inside] = np.maximum(signal[inside], rng.uniform(0.6, 1.0) * brightness)
    signal = ndi.gaussian_filter(signal, 1.0)
    background = 0.08 + 0.05 * (cols / shape[1]) + 0.03 * (rows / shape[0])
    noisy = signal + background + rng.normal(0.0, 0.02, shape).astype(np.float32)
    top = 4095 if np.dtype(dtype) == np.uint16 else 255
    return np.clip(noisy * top, 0, top).astype(dtype)


def vignetting(shape: tuple[int, int], strength: float = 0.6) -> np.ndarray:
    """A microscope's uneven illumination: 1 at the centre, falling with the squared
    distance from it to ``1 - strength`` in the corners.

    Returns
    -------
    (M, N) ndarray of float64
    """
    rows, cols = np.indices(shape, dtype=np.float64)
    centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
    distance = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / max(float((centre**2).sum()), 1.0)
    return 1 - strength * distance


def write_nuclei_folder(folder: str | Path, count: int = 6, seed: int = 0, **kwargs) -> list[Path]:
    """Write ``count`` synthetic nuclei images as TIFF files ``nuclei_01.tif``...; return their paths."""
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"nuclei_{index + 1:02d}.tif"
        tifffile.imwrite(path, nuclei_image(seed=seed + index, **kwargs))
        paths.append(path)
    return paths
