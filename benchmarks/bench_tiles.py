"""Images larger than memory: the tiled run against the whole image, side by side.

Rows (DESIGN's performance table):
- a tiled run (serial, tile 1024) vs a hand script running the same chain with scikit-image
  on the whole image (which fits here): target at most 2x the time;
- tiled labelling (the engine's seam join) vs ``dask_image.ndmeasure.label`` on the same mask
  in 64 chunks or more: target at least 20x faster;
- peak memory of the whole process tree, a tiled run of a 2N x 2N slide vs an N x N one:
  target at most 1.2x (``--memory``; slow: it writes both slides).

Usage: python benchmarks/bench_tiles.py [--side 4096] [--memory] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import tifffile
from skimage import filters, measure

from napari_batch_pipeline import Pipeline, run_batch
from napari_batch_pipeline.core.demo import LARGE_PIPELINE, write_slide
from napari_batch_pipeline.core.tiles.grid import TileGrid
from napari_batch_pipeline.core.tiles.seams import join, tile_objects

PROPERTIES = ["area", "intensity_mean", "centroid", "eccentricity"]


def hand_script(path: Path) -> int:
    image = tifffile.imread(path)
    blurred = filters.gaussian(image, sigma=2, preserve_range=True).astype(np.float32)
    labels = measure.label(blurred > filters.threshold_otsu(blurred), connectivity=2)
    tifffile.imwrite(path.parent.parent / "hand_labels.tif", labels.astype(np.int32))
    table = measure.regionprops_table(labels, intensity_image=image, properties=["label", *PROPERTIES])
    return len(table["label"])


def tiled_vs_whole(folder: Path) -> float:
    path = folder / "images" / "slide.tif"
    start = time.perf_counter()
    objects = hand_script(path)
    whole = time.perf_counter() - start
    start = time.perf_counter()
    report = run_batch(
        Pipeline.from_text(LARGE_PIPELINE), path.parent, folder / "tiled", executor="serial", tile=1024
    )
    tiled = time.perf_counter() - start
    assert report.failed == 0 and int(report.images["nuclei.count"].iloc[0]) == objects
    print(
        f"whole image, hand script: {whole:.2f} s ({objects} objects); tiled at 1024, serial: {tiled:.2f} s"
    )
    print(f"tiled run / whole-image hand script, time: {tiled / whole:.2f}x (target <= 2x)")
    return tiled / whole


def labelling(folder: Path, chunks: int) -> float:
    import dask.array as da
    from dask_image import ndmeasure

    image = tifffile.imread(folder / "images" / "slide.tif")
    blurred = filters.gaussian(image, sigma=2, preserve_range=True)
    mask = blurred > filters.threshold_otsu(blurred)
    tile = mask.shape[0] // chunks
    start = time.perf_counter()
    grid = TileGrid(mask.shape, (tile, tile))
    local = {t.index: measure.label(mask[t.core], connectivity=2).astype(np.int32) for t in grid}
    joined = join([tile_objects(local[t.index], t, mask.shape) for t in grid], grid, 2)
    ours = np.zeros(mask.shape, np.int64)
    for t in grid:
        ours[t.core] = joined.tile_map(t.index)[local[t.index]]
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs, count = ndmeasure.label(da.from_array(mask, chunks=tile), structure=np.ones((3, 3)))
    theirs = theirs.compute()
    theirs_seconds = time.perf_counter() - start
    assert np.array_equal(ours, measure.label(mask, connectivity=2))
    assert int(count.compute()) == joined.count
    print(
        f"labelling {mask.shape[0]}x{mask.shape[1]} in {len(grid)} chunks: ours {ours_seconds:.2f} s, "
        f"dask_image.ndmeasure.label {theirs_seconds:.2f} s ({joined.count} objects)"
    )
    print(f"dask-image / tiled labelling, time: {theirs_seconds / ours_seconds:.1f}x faster (target >= 20x)")
    return theirs_seconds / ours_seconds


def peak_of_run(folder: Path, side: int) -> int:
    images = folder / f"slide{side}"
    images.mkdir()
    write_slide(images / "slide.tif", side)
    pipeline = folder / "slide.yaml"
    pipeline.write_text(LARGE_PIPELINE)
    command = [sys.executable, "-m", "napari_batch_pipeline.cli", "run", str(pipeline), str(images)]
    command += ["-o", str(folder / f"out{side}"), "--tile", "1024", "--workers", "2", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    shutil.rmtree(images)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--chunks", type=int, default=8, help="chunks per axis for the labelling row (8: 64)")
    parser.add_argument("--memory", action="store_true", help="also the peak memory row (8192 vs 16384)")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(dir=args.workdir))
    try:
        (folder / "images").mkdir()
        write_slide(folder / "images" / "slide.tif", args.side)
        tiled_vs_whole(folder)
        labelling(folder, args.chunks)
        if args.memory:
            small, large = peak_of_run(folder, 8192), peak_of_run(folder, 16384)
            print(
                f"peak memory, process tree, tiled at 1024, 2 workers: 8192^2 {small / 2**20:.0f} MiB, "
                f"16384^2 {large / 2**20:.0f} MiB"
            )
            print(f"peak memory, 16k / 8k: {large / small:.2f}x (target <= 1.2x; under 1.5 GB)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
