"""Synthetic nuclei images, made on the fly with a fixed seed: for the demo, sample data and
tests; and strokes painted as a person paints a classifier's training, from a mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

__all__ = ["gradient_nuclei", "nuclei_image", "painted_strokes", "vignetting", "write_nuclei_folder"]


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


def gradient_nuclei(shape: tuple[int, int] = (192, 192), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Nuclei on a background that rises from left to right by more than their brightness
    (a global threshold cuts the bright side's background with the nuclei), and the nuclei.

    Returns
    -------
    image : (M, N) ndarray of uint16
    truth : (M, N) ndarray of bool
        The nuclei: Otsu's threshold of the blurred image without the gradient.
    """
    from skimage.filters import threshold_otsu

    clean = ndi.gaussian_filter(
        nuclei_image(shape, max(1, shape[0] * shape[1] // 2600), 8.0, seed=seed).astype(np.float64), 2
    )
    ramp = np.indices(shape)[1] / shape[1] * (clean.max() - clean.min()) * 1.2
    return np.clip(clean + ramp, 0, 65535).astype(np.uint16), clean > threshold_otsu(clean)


def painted_strokes(truth: np.ndarray, seed: int = 0, objects: int = 8, background: int = 8) -> np.ndarray:
    """A classifier's training as a person paints it on one image whose objects are ``truth``.

    Class 2 in objects, 1 around them: a stroke across each of ``objects`` objects (kept
    2 pixels from its edge); along half the outline of half of them, the last pixels
    inside (2) and the first outside (1), as one paints up to an edge; and ``background``
    strokes of 12 pixels in the background (2 pixels or more from any object), half of
    them near the objects (4 to 15 pixels away), half far (more than 15). A few hundred
    pixels in all, chosen with ``seed``.

    Returns
    -------
    ndarray of uint8, shaped as ``truth``
        0 unpainted, 1 background, 2 objects.
    """
    from skimage.draw import line

    truth = np.asarray(truth, dtype=bool)
    rng = np.random.default_rng(seed)
    inside, outside = ndi.distance_transform_edt(truth), ndi.distance_transform_edt(~truth)
    labels, count = ndi.label(truth)
    painted = np.zeros(truth.shape, np.uint8)
    chosen = [k for k in rng.permutation(count) + 1 if np.count_nonzero(labels == k) >= 40][:objects]
    for number, k in enumerate(chosen):
        ys, xs = np.nonzero(labels == k)
        row, centre = int(ys.mean()), xs.mean()
        across = (ys == row) & (inside[ys, xs] > 2)
        painted[ys[across], xs[across]] = 2
        if number >= len(chosen) // 2:
            continue
        near = ndi.binary_dilation(labels == k, iterations=5)
        ys, xs = np.nonzero(near)
        half = (np.arctan2(ys - ys.mean(), xs - centre) - rng.uniform(-np.pi, np.pi)) % (2 * np.pi) < np.pi
        edge_in, edge_out = half & (inside[ys, xs] == 1), half & (outside[ys, xs] == 1)
        painted[ys[edge_in], xs[edge_in]] = 2
        painted[ys[edge_out], xs[edge_out]] = 1
    for low, high in ((4, 15), (15, np.inf)):
        starts = np.flatnonzero((outside >= low) & (outside < high))
        for start in rng.choice(starts, min(background // 2, starts.size), replace=False):
            y, x = np.unravel_index(start, truth.shape)
            angle = rng.uniform(0, np.pi)
            rr, cc = line(int(y), int(x), int(y + 11 * np.sin(angle)), int(x + 11 * np.cos(angle)))
            keep = (rr < truth.shape[0]) & (cc >= 0) & (cc < truth.shape[1])
            rr, cc = rr[keep], cc[keep]
            keep = outside[rr, cc] >= 2
            painted[rr[keep], cc[keep]] = 1
    return painted
