"""Peak memory of the whole process tree of a batch, for 400 images against 40.

Each batch runs in a fresh Python process (``--child`` mode of this script). This process
samples it every 20 ms from a background thread: the resident set size (RSS) of the child
plus all its descendants (worker processes, loky's resource tracker), summed; the peak of
that sum is the batch's peak memory. The target: the peak for 400 images is at most 1.2x
the peak for 40, for the vertical and the horizontal strategy, with the processes
executor (and serial, in this process alone).

The images are 256 x 256 (16-bit) so that 400 of them fit in the time; memory that grows
with the number of images shows as well at this size as at any other, and a smaller
per-image footprint makes such growth stand out more against the fixed cost of the
interpreters. Summed RSS counts pages shared between processes (libraries) once per
process; that is the same for both sizes.

With ``--group mean`` or ``--group median`` the chain starts with one group stage over
every image (an illumination function learnt from all of them, then divided out): the
target for a group stage is the same, 1.2x, as the mean streams and the median reads
chunks of rows from the intermediates on disk.

Run: ``python benchmarks/bench_memory.py`` (about 1 minute on 2 cores), ``--quick``
for 100 vs 10 images, ``--images N`` for N vs N/10, ``--markdown`` for the README.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from results import Result, at_most, print_table
from workload import make_images

EXECUTORS = ("serial", "processes")
STRATEGIES = ("vertical", "horizontal")
WORKERS = 2


@dataclass(frozen=True)
class Peak:
    """One batch measured.

    ``images`` done; ``bytes`` and ``processes``: the tree's peak summed RSS and its most
    processes; ``seconds`` of wall time; ``base``: the RSS of the batch process after its
    imports, before the run.
    """

    images: int
    bytes: int
    processes: int
    seconds: float
    base: int

    @property
    def mib(self) -> float:
        return self.bytes / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="images of the large run (400; quick 100)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (256)")
    parser.add_argument("--radius", type=int, default=5, help="top-hat disk radius (5)")
    parser.add_argument("--quick", action="store_true", help="100 vs 10 images")
    parser.add_argument("--executors", default=",".join(EXECUTORS), help="comma-separated (serial,processes)")
    parser.add_argument(
        "--strategies", default=",".join(STRATEGIES), help="comma-separated (vertical,horizontal)"
    )
    parser.add_argument("--interval", type=float, default=0.02, help="sampling period, s")
    parser.add_argument(
        "--group", choices=("mean", "median"), help="start the chain with one group stage of this statistic"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temporary folder)")
    parser.add_argument(
        "--child", nargs=4, metavar=("DATA", "OUT", "EXECUTOR", "STRATEGY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child, radius=args.radius, group=args.group)

    large = args.images or (100 if args.quick else 400)
    small = max(1, large // 10)
    workdir = Path(tempfile.mkdtemp(prefix="nbp-memory-", dir=args.workdir))
    try:
        started = time.perf_counter()
        data = {large: workdir / f"images-{large}", small: workdir / f"images-{small}"}
        paths = make_images(data[large], large, (args.size, args.size))
        data[small].mkdir()
        for path in paths[:small]:
            shutil.copy(path, data[small])
        log(f"{large} images written in {time.perf_counter() - started:.1f} s")
        results = []
        for executor in args.executors.split(","):
            for strategy in args.strategies.split(","):
                peaks = {
                    count: run_child(
                        data[count],
                        workdir / "out",
                        executor,
                        strategy,
                        args.radius,
                        args.interval,
                        args.group,
                    )
                    for count in (small, large)
                }
                results.append(compare(executor, strategy, peaks[large], peaks[small], args.group))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    title = (
        f"bench_memory: whole process tree, summed RSS sampled every {args.interval * 1000:.0f} ms; "
        f"{large} vs {small} images of {args.size}x{args.size} uint16, {WORKERS} workers"
        + (f"; one group stage ({args.group}) over all images" if args.group else "")
    )
    print_table(title, results, markdown=args.markdown)
    return 0 if all(r.passed is not False for r in results) else 1


def compare(executor: str, strategy: str, large: Peak, small: Peak, group: str | None = None) -> Result:
    """The table line of one executor and strategy."""
    what = f", one group stage ({group})" if group else ""
    return at_most(
        f"peak memory {large.images} / {small.images} images{what}, {executor}, {strategy}",
        large.bytes / small.bytes,
        1.2,
        "x",
        f"{large.mib:.0f} vs {small.mib:.0f} MiB in {large.processes} process(es); "
        f"{large.base / 2**20:.0f} MiB after imports; {large.seconds:.0f} s vs {small.seconds:.0f} s",
    )


def run_child(
    data: Path,
    out: Path,
    executor: str,
    strategy: str,
    radius: int,
    interval: float,
    group: str | None = None,
) -> Peak:
    """Run one batch in a fresh process; sample its tree until it ends."""
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        __file__,
        "--radius",
        str(radius),
        *(["--group", group] if group else []),
        "--child",
        str(data),
        str(out),
        executor,
        strategy,
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sampler = TreeSampler(process.pid, interval)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    sampler.stop()
    shutil.rmtree(out, ignore_errors=True)
    if process.returncode != 0:
        raise RuntimeError(f"the batch ({executor}, {strategy}) failed: exit {process.returncode}")
    info = json.loads(output.strip().splitlines()[-1])
    peak = Peak(info["done"], sampler.peak, sampler.processes, seconds, info["base"])
    log(
        f"{executor:9s} {strategy:10s} {peak.images:4d} images: peak {peak.mib:.0f} MiB "
        f"in {peak.processes} process(es), {peak.seconds:.1f} s"
    )
    return peak


class TreeSampler(threading.Thread):
    """Every ``interval`` seconds: the summed RSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.processes = 0
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            self.sample()
            self._stopped.wait(self.interval)

    def sample(self) -> None:
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for process in tree:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        self.peak = max(self.peak, total)
        self.processes = max(self.processes, len(tree))

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def child(data: str, out: str, executor: str, strategy: str, radius: int, group: str | None = None) -> int:
    """One batch, in this process: the engine as a user would run it."""
    from workload import make_group_pipeline, make_pipeline

    from napari_batch_pipeline import run_batch

    base = psutil.Process().memory_info().rss
    report = run_batch(
        make_group_pipeline(radius, group) if group else make_pipeline(radius),
        data,
        out,
        executor=executor,
        workers=WORKERS,
        strategy=strategy,
        fresh=True,
    )
    if report.done != report.total:
        print(report.failures, file=sys.stderr)
        return 1
    print(json.dumps({"base": base, "seconds": report.seconds, "done": report.done}))
    return 0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
