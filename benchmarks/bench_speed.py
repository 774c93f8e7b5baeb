"""Speed of the batch engine against hand-written code and against itself, as ratios.

Every contender runs the same CPU-bound chain (see ``workload.py``) on the same synthetic
512 x 512 16-bit images and writes the same results (a label TIFF per image and one
concatenated table). The contenders run in turn, in a rotating order, for several rounds;
each ratio is the median over the rounds of the ratio measured within one round, so slow
drifts of a noisy machine hit both sides of a ratio alike. Rounds in which other processes
used more than 0.2 cores (the machine is shared) are run again, a few times at most, and
left out of the medians when enough quiet rounds were had.

- (a) serial engine vs the hand loop (``process_image`` in a plain loop)
- (b) processes, 2 workers, vs serial engine
- (c) processes vs ``joblib.Parallel(n_jobs=2)`` over the hand loop's per-image function
- (d) dask LocalCluster, 2 workers, vs processes. Start-up is excluded from both: the
  loky pool is warm (the engine keeps it between runs) and the LocalCluster is started
  once, before the rounds, and given to the engine as ``scheduler``. A cold-start line
  (the engine's own LocalCluster vs a fresh process pool) is printed for information.
- (e) first result, vertical: from building the run to its first TaskFinished, vs one
  image's time in the hand loop, for the serial and processes executors.

Run: ``python benchmarks/bench_speed.py`` (about 2.5 minutes on 2 quiet cores, longer on a
busy machine), ``--quick`` for a smaller run, ``--images N`` to scale, ``--markdown`` for the README.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joblib import Parallel, delayed
from results import QUIET, ForeignLoad, Result, at_least, at_most, median, print_table
from workload import hand_loop, make_images, make_pipeline, process_image, timed

from napari_batch_pipeline import Pipeline, run_batch
from napari_batch_pipeline.core.batch import BatchRun
from napari_batch_pipeline.core.engine.events import TaskFinished

WORKERS = 2
Contender = Callable[["Images", Path], int]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="images per run (default 40, quick 12)")
    parser.add_argument("--rounds", type=int, help="quiet rounds wanted (default 5, quick 2)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (512)")
    parser.add_argument("--radius", type=int, default=10, help="top-hat disk radius (10)")
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 40 s)")
    parser.add_argument("--no-dask", action="store_true", help="skip the dask lines")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temporary folder)")
    args = parser.parse_args(argv)
    images = args.images or (12 if args.quick else 40)
    rounds = args.rounds or (2 if args.quick else 5)

    workdir = Path(tempfile.mkdtemp(prefix="nbp-bench-", dir=args.workdir))
    try:
        bench = Bench(workdir, images, (args.size, args.size), args.radius)
        with bench.load:
            results = bench.run(rounds, dask=not args.no_dask)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    title = (
        f"bench_speed: {images} images of {args.size}x{args.size} uint16, "
        f"white_tophat radius {args.radius}; medians of per-round ratios over {bench.counted}"
    )
    print_table(title, results, markdown=args.markdown, load=bench.load)
    return 0 if all(r.passed is not False for r in results) else 1


@dataclass(frozen=True)
class Round:
    """One round: every contender's seconds, and the cores other processes used meanwhile."""

    times: dict[str, float]
    busy: float


@dataclass(frozen=True)
class Images:
    """A folder of input images and their paths."""

    folder: Path
    paths: list[Path]


class Bench:
    """The contenders, on one folder of images, with fresh output folders per run."""

    def __init__(self, workdir: Path, count: int, shape: tuple[int, int], radius: int):
        self.workdir = workdir
        self.radius = radius
        started = time.perf_counter()
        paths = make_images(workdir / "images", count, shape)
        self.images = Images(workdir / "images", paths)
        log(f"{count} images written in {time.perf_counter() - started:.1f} s")
        warm = workdir / "warm-up"
        warm.mkdir()
        for path in paths[:4]:
            shutil.copy(path, warm)
        self.warm = Images(warm, sorted(warm.iterdir()))
        self.pipeline: Pipeline = make_pipeline(radius)
        self.scheduler: str | None = None
        self.pools = LokySlots()
        self.load = ForeignLoad()
        self.rounds: list[Round] = []
        self.counted = ""  # which rounds the medians are over

    # -- contenders: each returns the number of table rows it wrote ------------------------

    def loop(self, images: Images, out: Path) -> int:
        return len(hand_loop(images.paths, out, self.radius))

    def joblib(self, images: Images, out: Path) -> int:
        def run_all(function: Callable[..., Any], arguments: Any) -> list[Any]:
            return Parallel(n_jobs=WORKERS)(delayed(function)(*a) for a in arguments)

        with self.pools.use("joblib"):
            return len(hand_loop(images.paths, out, self.radius, run_all=run_all))

    def engine(self, images: Images, out: Path, executor: str, **options: Any) -> int:
        with self.pools.use("engine"):
            report = run_batch(
                self.pipeline,
                images.folder,
                out,
                executor=executor,
                workers=WORKERS,
                fresh=True,
                **options,
            )
        if report.done != len(images.paths):
            raise RuntimeError(f"{executor}: {report.failed} task(s) failed:\n{report.failures}")
        return sum(1 for _ in (out / "nuclei.csv").open()) - 1

    def contenders(self, dask: bool) -> dict[str, Contender]:
        contenders: dict[str, Contender] = {
            "loop": self.loop,
            "serial": lambda images, out: self.engine(images, out, "serial"),
            "processes": lambda images, out: self.engine(images, out, "processes"),
            "joblib": self.joblib,
        }
        if dask:
            contenders["dask"] = lambda images, out: self.engine(
                images, out, "dask", scheduler=self.scheduler
            )
        return contenders

    def measure(self, name: str, contender: Contender, images: Images | None = None) -> tuple[float, int]:
        """Seconds of one run of ``contender`` and the number of table rows it wrote."""
        out = self.workdir / f"out-{name}"
        shutil.rmtree(out, ignore_errors=True)
        gc.collect()
        start = time.perf_counter()
        rows = contender(images or self.images, out)
        seconds = time.perf_counter() - start
        shutil.rmtree(out, ignore_errors=True)
        return seconds, rows

    def first_result(self, executor: str) -> float:
        """Seconds from building a vertical run to its first TaskFinished."""
        out = self.workdir / f"first-{executor}"
        shutil.rmtree(out, ignore_errors=True)
        gc.collect()
        start = time.perf_counter()
        batch = BatchRun(
            self.pipeline, self.images.folder, out, executor=executor, workers=WORKERS, fresh=True
        )
        events = batch.events()
        try:
            for event in events:
                if isinstance(event, TaskFinished):
                    return time.perf_counter() - start
        finally:
            events.close()
            shutil.rmtree(out, ignore_errors=True)
        raise RuntimeError("the run finished without a TaskFinished event")

    def one_image(self) -> float:
        """The hand loop's time for the first image (the one the engine also starts with)."""
        out = self.workdir / "one"
        (out / "labels").mkdir(parents=True, exist_ok=True)
        (out / "parts").mkdir(parents=True, exist_ok=True)
        seconds = timed(lambda: process_image(str(self.images.paths[0]), str(out), self.radius))
        shutil.rmtree(out, ignore_errors=True)
        return seconds

    def wait_quiet(self) -> None:
        """Wait (a while at most) for other processes on the machine to go quiet."""
        waited = self.load.wait_quiet()
        if waited > 3:
            log(f"waited {waited:.0f} s for other processes to go quiet")

    # -- the run ---------------------------------------------------------------------------

    def run(self, rounds: int, dask: bool) -> list[Result]:
        cluster = None
        if dask:
            try:
                from distributed import LocalCluster
            except ImportError:
                log("dask.distributed is not installed: no dask lines")
                dask = False
            else:
                started = time.perf_counter()
                cluster = LocalCluster(
                    n_workers=WORKERS,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=40,
                )
                self.scheduler = cluster.scheduler_address
                log(f"LocalCluster started in {time.perf_counter() - started:.1f} s (not counted)")
        try:
            return self._run(rounds, dask)
        finally:
            if cluster is not None:
                cluster.close()

    def _run(self, rounds: int, dask: bool) -> list[Result]:
        contenders = self.contenders(dask)
        # warm-up: imports here, worker processes started and their imports done
        for name, contender in contenders.items():
            self.measure(name, contender, self.warm)
        log("warmed up: " + ", ".join(contenders))

        names = list(contenders)
        quiet = 0
        while quiet < rounds and len(self.rounds) < rounds + rounds // 2 + 1:
            self.wait_quiet()
            mark = self.load.mark()
            number = len(self.rounds)
            order = names[number % len(names) :] + names[: number % len(names)]
            times: dict[str, float] = {}
            rows: dict[str, int] = {}
            for name in order:
                times[name], rows[name] = self.measure(name, contenders[name])
            if len(set(rows.values())) != 1:
                raise RuntimeError(f"the contenders wrote different tables (rows: {rows})")
            busy = self.load.mean_since(mark)
            quiet += busy < QUIET
            self.rounds.append(Round(times, busy))
            log(
                f"round {number + 1}: "
                + ", ".join(f"{n} {times[n]:.2f} s" for n in names)
                + f" ({rows['loop']} nuclei); other processes {busy:.2f} cores"
            )

        firsts: dict[str, list[float]] = {"serial": [], "processes": []}
        singles: list[float] = []
        self.wait_quiet()
        for _ in range(rounds):
            singles.append(self.one_image())
            for executor in firsts:
                firsts[executor].append(self.first_result(executor))
        log(
            f"one image {median(singles):.3f} s; first result "
            + ", ".join(f"{e} {median(v):.3f} s" for e, v in firsts.items())
        )

        cold: dict[str, float] = {}
        if dask:
            self.wait_quiet()
            self.pools.stop("engine")
            cold["processes"], _ = self.measure("processes", contenders["processes"])
            cold["dask"], _ = self.measure("dask", lambda images, out: self.engine(images, out, "dask"))
            log(
                f"cold start: processes {cold['processes']:.2f} s, "
                f"dask with its own LocalCluster {cold['dask']:.2f} s"
            )
        return self._results(firsts, singles, cold)

    def _results(
        self,
        firsts: dict[str, list[float]],
        singles: list[float],
        cold: dict[str, float],
    ) -> list[Result]:
        rounds = [r for r in self.rounds if r.busy < QUIET]
        self.counted = (
            f"{len(rounds)} round(s) of {len(self.rounds)} in which other processes used under {QUIET} cores"
        )
        if len(rounds) < 2:
            rounds = self.rounds
            self.counted = f"all {len(rounds)} rounds (fewer than 2 were quiet: noisy)"
        times = {name: [r.times[name] for r in rounds] for name in self.rounds[0].times}

        def ratio(top: str, bottom: str) -> float:
            return median([r.times[top] / r.times[bottom] for r in rounds])

        def seconds(*names: str) -> str:
            return ", ".join(f"{name} {median(times[name]):.2f} s" for name in names)

        results = [
            at_most(
                "(a) serial engine / hand loop, time",
                ratio("serial", "loop"),
                1.10,
                "x",
                seconds("serial", "loop"),
            ),
            at_least(
                "(b) processes (2) speed-up over serial",
                ratio("serial", "processes"),
                1.7,
                "x",
                seconds("processes", "serial"),
            ),
            Result(
                "(b') joblib (2) speed-up over hand loop",
                f"{ratio('loop', 'joblib'):.2f}x",
                "(info)",
                None,
                "what this machine gives 2 processes on this chain now (2.00 at best)",
            ),
            at_most(
                "(c) processes / joblib Parallel(2), time",
                ratio("processes", "joblib"),
                1.05,
                "x",
                seconds("processes", "joblib"),
            ),
        ]
        if "dask" in times:
            results.append(
                at_least(
                    "(d) dask (2) / processes, throughput, warm",
                    ratio("processes", "dask"),
                    0.8,
                    "x",
                    seconds("dask", "processes") + "; cluster and pool started beforehand",
                )
            )
            if cold:
                results.append(
                    Result(
                        "(d') same, cold: incl. pool / cluster start",
                        f"{cold['processes'] / cold['dask']:.2f}x",
                        "(info)",
                        None,
                        f"dask {cold['dask']:.2f} s, processes {cold['processes']:.2f} s; one run",
                    )
                )
        single = median(singles)
        for executor, values in firsts.items():
            results.append(
                at_most(
                    f"(e) first result, vertical, {executor} / one image",
                    median(values) / single,
                    2.0,
                    "x",
                    f"first {median(values):.3f} s, one image {single:.3f} s",
                )
            )
        return results


class LokySlots:
    """Keep the engine's process pool and joblib's apart, both warm.

    Both take loky's one reusable executor. After the engine's run, joblib's next
    ``Parallel`` picks up the engine's executor and fails (AttributeError:
    '_ReusablePoolExecutor' object has no attribute '_temp_folder_manager'); the other
    way round, the engine replaces joblib's pool with fresh workers. Here each side gets
    its own executor, swapped in and out of loky's slot around its runs.
    """

    def __init__(self) -> None:
        self._saved: dict[str, tuple[Any, Any]] = {}

    @contextlib.contextmanager
    def use(self, owner: str) -> Iterator[None]:
        from joblib.externals.loky import reusable_executor as loky

        with loky._executor_lock:
            loky._executor, loky._executor_kwargs = self._saved.pop(owner, (None, None))
        try:
            yield
        finally:
            with loky._executor_lock:
                self._saved[owner] = (loky._executor, loky._executor_kwargs)
                loky._executor = loky._executor_kwargs = None

    def stop(self, owner: str) -> None:
        """Shut ``owner``'s pool down, so that its next run starts fresh workers."""
        executor, _ = self._saved.pop(owner, (None, None))
        if executor is not None:
            executor.shutdown(wait=True)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
