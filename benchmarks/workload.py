"""The workload of the benchmarks: synthetic images, the chain, and the same chain by hand.

The chain is CPU-bound on purpose (a white top-hat over a disk dominates):

    gaussian(sigma=2) -> white_tophat(radius) -> threshold(otsu) -> label (saved)
    -> measure(area, intensity_mean of the input)

:func:`process_image` does exactly what the engine's stages do, with the same
scikit-image calls, and the writes a careful user would make (the label TIFF and a CSV
per image), without the engine: it is the baseline the engine is measured against.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
from skimage import filters, measure, morphology

from napari_batch_pipeline import Pipeline
from napari_batch_pipeline.core.synthetic import write_nuclei_folder

__all__ = [
    "PROPERTIES",
    "hand_loop",
    "label_measure_write",
    "make_images",
    "make_pipeline",
    "process_image",
    "timed",
]

PROPERTIES = ["area", "intensity_mean"]


def make_pipeline(radius: int = 10) -> Pipeline:
    """The benchmark chain as an engine pipeline; ``radius`` sets the top-hat disk."""
    return Pipeline(
        [
            {"name": "blurred", "function": "gaussian", "params": {"sigma": 2.0}},
            {"name": "background_free", "function": "white_tophat", "params": {"radius": radius}},
            {"name": "mask", "function": "threshold", "params": {"method": "otsu"}},
            {"name": "labels", "function": "label", "save": True},
            {
                "name": "nuclei",
                "function": "measure",
                "inputs": {"labels": "labels", "intensity": "input"},
                "params": {"properties": PROPERTIES},
            },
        ],
        name="benchmark",
    )


def make_group_pipeline(radius: int = 10, statistic: str = "mean") -> Pipeline:
    """The benchmark chain after an illumination correction learnt from every image at
    once (one group stage, ``group_by: []``), the chain running on the corrected image."""
    chain = make_pipeline(radius).to_dict()["stages"]
    chain[0]["inputs"] = {"image": "flat"}
    group = [
        {"name": "illum", "function": "illumination", "group_by": [], "params": {"statistic": statistic}},
        {
            "name": "flat",
            "function": "correct_illumination",
            "inputs": {"image": "input", "illumination": "illum"},
        },
    ]
    return Pipeline([*group, *chain], name=f"benchmark with a group stage ({statistic})")


def make_images(folder: Path, count: int, shape: tuple[int, int]) -> list[Path]:
    """Write ``count`` synthetic 16-bit nuclei images of ``shape`` into ``folder``.

    The number of nuclei scales with the area (60 on 512 x 512).
    """
    n_nuclei = max(8, round(60 * shape[0] * shape[1] / 512**2))
    return write_nuclei_folder(folder, count, seed=0, shape=shape, n_nuclei=n_nuclei)


def process_image(path: str, out_dir: str, radius: int = 10) -> pd.DataFrame:
    """The chain on one image, by hand: read, filter, segment, measure, write.

    Writes ``<out_dir>/labels/<stem>.tif`` and ``<out_dir>/parts/<stem>.csv``; returns
    the image's table (one row per nucleus).
    """
    image = tifffile.imread(path)
    blurred = np.asarray(filters.gaussian(image, sigma=2.0, preserve_range=True), np.float32)
    background_free = morphology.white_tophat(blurred, morphology.disk(radius))
    mask = background_free > filters.threshold_otsu(background_free)
    return label_measure_write(mask, image, path, out_dir)


def label_measure_write(mask: np.ndarray, intensity: np.ndarray, path: str, out_dir: str) -> pd.DataFrame:
    """The end of the chain by hand: label, measure, write the labels and the table part.

    Writes ``<out_dir>/labels/<stem>.tif`` (int32, as the engine's ``label`` gives) and
    ``<out_dir>/parts/<stem>.csv`` (``image`` first); returns that table.
    """
    labels = measure.label(mask, connectivity=2).astype(np.int32)
    table = pd.DataFrame(
        measure.regionprops_table(labels, intensity_image=intensity, properties=["label", *PROPERTIES])
    )
    stem = Path(path).stem
    out = Path(out_dir)
    tifffile.imwrite(out / "labels" / f"{stem}.tif", labels)
    table.insert(0, "image", Path(path).name)
    table.to_csv(out / "parts" / f"{stem}.csv", index=False)
    return table


def hand_loop(
    paths: Sequence[Path],
    out_dir: Path,
    radius: int = 10,
    run_all: Callable[[Callable[..., pd.DataFrame], Iterable[tuple[Any, ...]]], list[Any]] | None = None,
) -> pd.DataFrame:
    """The chain over every image, then one concatenated ``nuclei.csv``.

    ``run_all(function, argument_tuples)`` maps the per-image function (default: a plain
    loop); pass a joblib call to run it in parallel.
    """
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    (out_dir / "parts").mkdir(parents=True, exist_ok=True)
    arguments = [(str(path), str(out_dir), radius) for path in paths]
    if run_all is None:
        frames = [process_image(*args) for args in arguments]
    else:
        frames = run_all(process_image, arguments)
    table = pd.concat(frames, ignore_index=True)
    table.to_csv(out_dir / "nuclei.csv", index=False)
    return table


def timed(function: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start
