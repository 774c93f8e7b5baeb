"""Reading plain TIFFs through the format layer vs tifffile directly (DESIGN: at most 1.05x).

    .venv/bin/python benchmarks/bench_read.py              # 200 images of 1024 x 1024, 7 rounds
    .venv/bin/python benchmarks/bench_read.py --images 50 --rounds 3

Each round reads every image once with ``tifffile.imread`` and once with the engine's
``read_field`` (the path a task takes), in alternating order; the ratio is the median of
the per-round ratios. Planning (opening each file's header to find its scenes, time
points and channels, done once per run before any task) is timed too and shown per
image, for information.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_batch_pipeline.core.images.fields import plan_fields, read_field
from napari_batch_pipeline.core.images.sources import find_images
from napari_batch_pipeline.core.pipeline.model import INPUT

TARGET = 1.05


def make_images(folder: Path, count: int, size: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4000, (size, size)).astype(np.uint16)
    for index in range(count):
        tifffile.imwrite(folder / f"img{index:04d}.tif", np.roll(base, index, axis=0))


def read_direct(paths: list[Path]) -> float:
    start = time.perf_counter()
    total = 0
    for path in paths:
        total += int(tifffile.imread(path)[0, 0])
    return time.perf_counter() - start


def read_fields(fields: list) -> float:
    start = time.perf_counter()
    total = 0
    for source in fields:
        total += int(read_field(source).images[INPUT][0, 0])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        make_images(folder, args.images, args.size)
        files = find_images(folder)
        start = time.perf_counter()
        fields = plan_fields(files, (), INPUT)
        planning = (time.perf_counter() - start) / len(files)
        paths = [source.path for source in files]
        read_direct(paths)  # warm the page cache
        ratios = []
        for round_ in range(args.rounds):
            if round_ % 2:
                engine, direct = read_fields(fields), read_direct(paths)
            else:
                direct, engine = read_direct(paths), read_fields(fields)
            ratios.append(engine / direct)
            print(
                f"round {round_ + 1}: tifffile {direct:.3f} s, format layer {engine:.3f} s", file=sys.stderr
            )
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print("| what | measured | target | |\n|---|---|---|---|")
    print(
        f"| reading {args.images} plain {args.size}x{args.size} TIFFs: format layer / tifffile "
        f"| {ratio:.3f}x | <= {TARGET}x | {verdict} |"
    )
    per_image = f"{planning * 1e3:.2f} ms per image"
    print(f"| planning: opening each file's header before the run | {per_image} | info | |")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
