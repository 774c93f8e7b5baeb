"""A one-image run against a fresh hand-written script doing the same: the fixed costs.

    .venv/bin/python benchmarks/bench_startup.py                 # 1024 x 1024, 3 rounds
    .venv/bin/python benchmarks/bench_startup.py --imports       # and where the imports go

A user who tries the tool on one image waits for a new interpreter to start, import what
the run needs, plan, run the image, write the tables and the summary. Each contender
here is such a fresh process, timed from outside, on the same 16-bit image and the same
chain (:mod:`workload`): a standalone script with the scikit-image calls and the writes
of :func:`workload.process_image` (it imports neither the engine nor this package), and
``napari-batch-pipeline run`` with the serial and the processes executor, and with the
default, auto (serial here: one task). DESIGN's target: at most
1.2x the script's time for each. A value is the median over the rounds.

``--imports`` adds the serial run's imports by top-level import (``python -X
importtime``; what a package imports counts as its own), the largest first: what a
one-image run pays before its first pixel.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from results import Result, at_most, compile_package, print_table
from workload import PROPERTIES, make_images, make_pipeline

#: DESIGN's target: a one-image run at most this times the hand-written script's time
TARGET = 1.2

HAND_SCRIPT = f"""\
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage import filters, measure, morphology

path, out, radius = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
image = tifffile.imread(path)
blurred = np.asarray(filters.gaussian(image, sigma=2.0, preserve_range=True), np.float32)
background_free = morphology.white_tophat(blurred, morphology.disk(radius))
labels = measure.label(background_free > filters.threshold_otsu(background_free), connectivity=2)
labels = labels.astype(np.int32)
(out / "labels").mkdir(parents=True, exist_ok=True)
tifffile.imwrite(out / "labels" / f"{{path.stem}}.tif", labels)
table = pd.DataFrame(
    measure.regionprops_table(labels, intensity_image=image, properties=["label", *{PROPERTIES!r}])
)
table.insert(0, "image", path.name)
table.to_csv(out / "nuclei.csv", index=False)
"""


def timed_process(command: list[str]) -> float:
    """Seconds a fresh process takes, from start to exit (it must succeed)."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{done.stderr[-2000:]}")
    return seconds


def import_costs(arguments: list[str]) -> list[tuple[str, float]]:
    """Seconds of imports by top-level package of the command with ``arguments``."""
    command = [sys.executable, "-X", "importtime", "-c", "from napari_batch_pipeline.cli import run; run()"]
    done = subprocess.run([*command, *arguments], capture_output=True, text=True)
    costs: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)  # top level: no indent
        if found:
            costs[found.group(2).split(".")[0]] += int(found.group(1)) / 1e6
    return sorted(costs.items(), key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--radius", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--imports", action="store_true", help="where the serial run's imports go")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    compile_package()  # fresh processes are timed: as installed, with bytecode

    with tempfile.TemporaryDirectory(dir=args.workdir, ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        (image,) = make_images(root / "one", 1, (args.size, args.size))
        (root / "hand.py").write_text(HAND_SCRIPT, encoding="utf-8")
        pipeline = make_pipeline(args.radius).save(root / "benchmark.yaml")
        script = Path(sys.executable).with_name("napari-batch-pipeline")  # the command users run
        cli = (
            [str(script)]
            if script.exists()
            else [sys.executable, "-c", "from napari_batch_pipeline.cli import run; run()"]
        )
        hand = [sys.executable, str(root / "hand.py"), str(image)]
        run = [*cli, "run", str(pipeline), str(root / "one"), "--executor"]
        contenders = {
            "hand-written script": lambda out: [*hand, out, str(args.radius)],
            "serial": lambda out: [*run, "serial", "-o", out],
            "processes": lambda out: [*run, "processes", "--workers", "2", "-o", out],
            "auto": lambda out: [*run, "auto", "-o", out],
        }
        times: dict[str, list[float]] = defaultdict(list)
        for index in range(args.rounds):
            for name, command in contenders.items():  # interleaved: a slow spell hits all
                times[name].append(timed_process(command(str(root / f"{name}-{index}"))))
            print(
                f"round {index + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()),
                file=sys.stderr,
            )
        serial = contenders["serial"](str(root / "imports"))
        costs = import_costs(serial[serial.index("run") :]) if args.imports else []

    script = statistics.median(times["hand-written script"])
    results: list[Result] = [Result("hand-written script, fresh process", f"{script:.2f} s", "", None)]
    for name in ("serial", "processes", "auto"):
        seconds = statistics.median(times[name])
        what = f"one-image run, {name} / hand-written script"
        results.append(at_most(what, seconds / script, TARGET, "x", f"{seconds:.2f} s"))
    results += [
        Result(f"imports of {package}", f"{seconds:.2f} s", "", None) for package, seconds in costs[:8]
    ]
    title = f"A one-image run, {args.size} x {args.size}, fresh processes, median of {args.rounds}"
    print_table(title, results, markdown=args.markdown)
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
