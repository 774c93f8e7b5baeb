"""The reading row of the scale benchmark: plain TIFFs through the format layer vs tifffile.

A task reads its image with :func:`~napari_batch_pipeline.core.images.fields.read_field`;
the baseline is ``tifffile.imread`` of the same file. On a shared machine a hiccup of a
few hundred milliseconds would swamp a round of reads that takes tens of them, so the two
take turns file by file (which goes first alternates) and each round sums both sides;
the ratio is the median over the rounds of one round's ratio (DESIGN: at most 1.05x).
Planning (each file's header opened once per run, before any task) is timed apart.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import tifffile
from scale_report import Target

from napari_batch_pipeline.core.images.fields import plan_fields, read_field
from napari_batch_pipeline.core.images.sources import find_images
from napari_batch_pipeline.core.pipeline.model import INPUT

__all__ = ["TARGET", "read_target"]

TARGET = 1.05


def read_target(folder: Path, rounds: int) -> tuple[Target, str]:
    """The reading line for ``folder``'s TIFFs, and a log line of every round."""
    files = find_images(folder)
    start = time.perf_counter()
    fields = plan_fields(files, (), INPUT)
    planning = (time.perf_counter() - start) / len(files)
    paths = [source.path for source in files]
    if read_field(fields[0]).images[INPUT].shape != tifffile.imread(paths[0]).shape:
        raise RuntimeError("the format layer read another shape than tifffile")
    totals = [_round(paths, fields) for _ in range(rounds)]
    direct = statistics.median(d for d, _ in totals)
    engine = statistics.median(e for _, e in totals)
    detail = (
        f"{len(paths)} files: tifffile {direct:.2f} s, format layer {engine:.2f} s (medians of "
        f"{rounds} rounds, the two taking turns file by file); planning {planning * 1e3:.2f} ms "
        "per file, once per run"
    )
    ratio = statistics.median(e / d for d, e in totals)
    log = ", ".join(f"{d:.2f}/{e:.2f}" for d, e in totals)
    what = "read plain TIFFs: format layer / tifffile, time"
    return Target(what, ratio, TARGET, True, detail), f"read: tifffile/format layer per round {log} s"


def _round(paths: list[Path], fields: list) -> tuple[float, float]:
    """Seconds of tifffile and of the format layer over every file, taking turns."""
    direct = engine = 0.0
    for index, (path, source) in enumerate(zip(paths, fields, strict=True)):
        for side in (0, 1) if index % 2 else (1, 0):
            start = time.perf_counter()
            if side:
                read_field(source)
                engine += time.perf_counter() - start
            else:
                tifffile.imread(path)
                direct += time.perf_counter() - start
    return direct, engine
