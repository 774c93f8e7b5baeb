"""The engine at the seed's scale: 1,000 images of 1024 x 1024, 16-bit, side by side in one run.

    .venv/bin/python benchmarks/bench_scale.py                     # 1,000 images: under 15 min, quiet
    .venv/bin/python benchmarks/bench_scale.py --images 40         # a quick look (about 2 min)
    .venv/bin/python benchmarks/bench_scale.py --images 150,1000 --variants single   # both scales
    .venv/bin/python benchmarks/bench_scale.py --rows loop,serial --variants single
    .venv/bin/python benchmarks/bench_scale.py --gui               # also bench_gui.py's rows

The chain is CPU-bound: gaussian(sigma 2) -> threshold(otsu) -> label (saved) ->
measure(area, intensity_mean), on one-channel plain TIFFs (``single``) and on
three-channel ImageJ hyperstacks named by the pipeline's ``channels:`` section
(``three``). Every row runs once per variant, in a fresh Python process (see
``scale_rows.py``): the hand loop, two half loops at once (the physical limit of two
processes), joblib, and the engine's serial, threads, processes and dask executors (2
workers each). Then reading the single variant's TIFFs through the format layer against
``tifffile.imread``. Every row's object counts, image by image, must equal the hand
loop's. The ratios of DESIGN's performance table are printed next to their targets and
saved, with a plot, under ``benchmarks/results/``. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from results import ForeignLoad, compile_package, machine
from scale_data import VARIANTS, make_folder
from scale_read import read_target
from scale_report import Target, TimeRow, markdown, plot, save
from scale_rows import ROWS, prepare_output, process_image

HERE = Path(__file__).resolve().parent
#: the order of one pass: the rows a target compares run next to each other
ORDER = ("loop", "serial", "halves", "processes", "joblib", "auto", "dask", "threads")


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    compile_package()  # fresh processes are timed: as installed, with bytecode
    workdir = Path(tempfile.mkdtemp(prefix="nbp-scale-", dir=args.workdir or _default_workdir(args)))
    started = time.perf_counter()
    times: list[TimeRow] = []
    targets: list[Target] = []
    loads = [os.getloadavg()]
    log(f"working in {workdir}; load average {_loadavg()}")
    try:
        with ForeignLoad() as load:
            runs = [(count, variant) for count in args.counts for variant in args.variants]
            for number, (count, variant) in enumerate(runs):
                folder = workdir / variant
                made = time.perf_counter()
                make_folder(folder, count, variant, args.size)
                log(f"{variant}: {count} images written in {time.perf_counter() - made:.1f} s")
                passes = [
                    _run_pass(args, folder, variant, workdir, load, p + number) for p in range(args.repeat)
                ]
                # several counts in one run: each row and target says its count
                label = variant if len(args.counts) == 1 else f"{count} {variant}"
                times += _time_rows(label, passes, count)
                targets += _targets(label, passes)
                if variant == "single" and args.read and count == args.counts[-1]:
                    target, rounds = read_target(folder, args.read_rounds)
                    targets.append(target)
                    log(rounds)
                shutil.rmtree(folder, ignore_errors=True)
                loads.append(os.getloadavg())
            foreign = load.summary()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    minutes = (time.perf_counter() - started) / 60
    where = "RAM (/dev/shm)" if str(workdir).startswith("/dev/shm") else f"disk ({workdir.parent})"
    counts = " and ".join(f"{count:,}" for count in args.counts)
    title = f"bench_scale: {counts} images of {args.size}x{args.size} uint16, {args.repeat} pass(es)"
    context = [
        machine(),
        foreign,
        "load average (1, 5, 15 min) before and after each variant: "
        + " / ".join(", ".join(f"{v:.2f}" for v in triple) for triple in loads),
        f"took {minutes:.1f} min; images and outputs on {where}",
        "each row: one fresh Python process, its own imports not counted; worker start-up counted",
    ]
    text = markdown(title, context, times, targets)
    gui = _gui(args) if args.gui else ""
    text += gui
    print("\n" + text)
    if not args.no_save:
        stem = "scale-" + "-".join(map(str, args.counts))
        payload = {
            "title": title,
            "context": context,
            "arguments": {k: str(v) for k, v in vars(args).items()},
        }
        written = save(args.results, stem, text, times, targets, payload | {"gui": gui})
        figure = plot(args.results / f"{stem}.png", title, targets)
        log("saved " + ", ".join(str(p) for p in [*written, *([figure] if figure else [])]))
    failed = [t for t in targets if t.met is False] + [t for t in times if t.equal is False]
    return 1 if failed else 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument(
        "--images", default="1000", help="images per variant, or counts run in turn: 150,1000 (1000)"
    )
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels (1024)")
    parser.add_argument("--rows", default=",".join(ORDER), help=f"rows to run, of {','.join(ORDER)}")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="single,three (both)")
    parser.add_argument("--repeat", type=int, default=1, help="passes per variant, order rotated (1)")
    parser.add_argument("--no-read", dest="read", action="store_false", help="skip the reading row")
    parser.add_argument("--read-rounds", type=int, default=5, help="rounds of the reading row (5)")
    parser.add_argument("--gui", action="store_true", help="also run bench_gui.py (under Xvfb)")
    parser.add_argument("--workdir", type=Path, help="where the images go (default: RAM if room)")
    parser.add_argument("--on-disk", action="store_true", help="use the system's temporary folder")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where to save")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    try:
        args.counts = [int(count) for count in str(args.images).split(",") if count]
    except ValueError:
        parser.error(f"--images takes a count or counts like 150,1000; got {args.images!r}")
    if not args.counts or min(args.counts) < 1:
        parser.error(f"--images takes counts of 1 or more; got {args.images!r}")
    args.images = max(args.counts)
    wanted = {row for row in args.rows.split(",") if row}
    if not wanted or not wanted <= set(ROWS):
        parser.error(f"--rows takes some of {','.join(ORDER)}; got {args.rows!r}")
    args.rows = [row for row in ORDER if row in wanted]
    args.variants = [v for v in args.variants.split(",") if v]
    if not set(args.variants) <= set(VARIANTS):
        parser.error(f"--variants takes some of {','.join(VARIANTS)}")
    return args


def _default_workdir(args: argparse.Namespace) -> str | None:
    """RAM (/dev/shm) when it holds the largest variant's images and a row's outputs with
    room to spare: the shared disk here writes at 15 to 50 MB/s, which a run at this
    scale (2 GiB of images per channel, 4 GiB of labels per row) would measure instead of
    the engine."""
    if args.on_disk or not Path("/dev/shm").is_dir():
        return None
    channels = 3 if "three" in args.variants else 1
    needed = args.images * args.size**2 * (2 * channels + 4 + 1)
    room = min(shutil.disk_usage("/dev/shm").free, psutil.virtual_memory().available - 4 * 2**30)
    return "/dev/shm" if needed < room else None


def _run_pass(
    args: argparse.Namespace, folder: Path, variant: str, workdir: Path, load: ForeignLoad, number: int
) -> dict[str, dict[str, Any]]:
    """Every row once, in :data:`ORDER` rotated by ``number``; each row's outcome."""
    rows = args.rows[number % len(args.rows) :] + args.rows[: number % len(args.rows)]
    outcomes = {}
    for row in rows:
        out = workdir / f"out-{row}"
        result = workdir / f"{row}.json"
        probe = _speed_probe(folder, variant, workdir / "probe")
        mark = load.mark()
        command = [
            sys.executable,
            str(HERE / "scale_rows.py"),
            row,
            str(folder),
            str(out),
            variant,
            str(result),
        ]
        subprocess.run(command, check=True)
        outcome = json.loads(result.read_text())
        outcome["load"] = load.mean_since(mark)
        outcome["probe"] = probe
        outcomes[row] = outcome
        shutil.rmtree(out, ignore_errors=True)
        extra = (
            f" (halves {', '.join(f'{s:.1f}' for s in outcome['halves'])} s)" if "halves" in outcome else ""
        )
        log(
            f"{variant} {row}: {outcome['seconds']:.2f} s{extra}, imports {outcome['imports']:.1f} s "
            f"(not counted); other processes {outcome['load']:.2f} cores; one image before it "
            f"{probe * 1e3:.0f} ms; load average {_loadavg()}"
        )
    return outcomes


def _speed_probe(folder: Path, variant: str, out: Path) -> float:
    """Seconds of the hand chain on the folder's first image here, median of 3: how fast
    the machine runs just before a row (a shared VM slows down by several times at moments)."""
    first = min(folder.glob("*.tif"))
    prepare_output(out)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        process_image(str(first), str(out), variant)
        times.append(time.perf_counter() - start)
    shutil.rmtree(out, ignore_errors=True)
    return statistics.median(times)


def _time_rows(variant: str, passes: list[dict[str, dict[str, Any]]], images: int) -> list[TimeRow]:
    rows = []
    for row in passes[0]:
        seconds = statistics.median(p[row]["seconds"] for p in passes)
        loop = passes[0].get("loop")
        equal = None if loop is None else all(p[row]["counts"] == p["loop"]["counts"] for p in passes)
        vs_loop = (
            statistics.median(p[row]["seconds"] / p["loop"]["seconds"] for p in passes) if loop else None
        )
        detail = ""
        if row == "halves":
            detail = "the two halves: " + ", ".join(f"{s:.1f} s" for s in passes[0][row]["halves"])
        if len(passes) > 1:
            detail += (detail and "; ") + "passes: " + ", ".join(f"{p[row]['seconds']:.1f}" for p in passes)
        rows.append(
            TimeRow(
                variant,
                row,
                seconds,
                images / seconds,
                vs_loop,
                sum(passes[0][row]["counts"].values()),
                equal,
                statistics.mean(p[row]["load"] for p in passes),
                statistics.median(p[row]["probe"] for p in passes),
                detail,
            )
        )
    return rows


def _targets(variant: str, passes: list[dict[str, dict[str, Any]]]) -> list[Target]:
    """DESIGN's ratios for ``variant``: each the median over the passes of one pass's ratio."""
    have = set(passes[0])

    def ratio(top: str, bottom: str) -> float:
        return statistics.median(p[top]["seconds"] / p[bottom]["seconds"] for p in passes)

    def seconds(*rows: str) -> str:
        return ", ".join(
            f"{row} {statistics.median(p[row]['seconds'] for p in passes):.1f} s" for row in rows
        )

    targets = []
    if {"serial", "loop"} <= have:
        targets.append(
            Target(
                f"{variant}: serial engine / hand loop, time",
                ratio("serial", "loop"),
                1.05,
                True,
                seconds("serial", "loop"),
            )
        )
    if {"serial", "processes", "loop", "halves"} <= have:
        limit = ratio("loop", "halves")
        share = statistics.median(
            (p["serial"]["seconds"] / p["processes"]["seconds"])
            / (p["loop"]["seconds"] / p["halves"]["seconds"])
            for p in passes
        )
        detail = (
            f"processes {ratio('serial', 'processes'):.2f}x over serial (loop / processes "
            f"{ratio('loop', 'processes'):.2f}x); two half loops {limit:.2f}x over the loop"
        )
        targets.append(
            Target(f"{variant}: processes (2) speed-up / half loops' speed-up", share, 0.9, False, detail)
        )
    if {"processes", "joblib"} <= have:
        targets.append(
            Target(
                f"{variant}: processes / joblib Parallel(2), time",
                ratio("processes", "joblib"),
                0.95,
                True,
                seconds("processes", "joblib"),
            )
        )
    if {"auto", "joblib"} <= have:
        targets.append(
            Target(
                f"{variant}: auto (the default executor) / joblib Parallel(2), time",
                ratio("auto", "joblib"),
                0.95,
                True,
                seconds("auto", "joblib") + f"; auto ran {passes[0]['auto'].get('executor', '?')}",
            )
        )
    if {"processes", "dask"} <= have:
        detail = seconds("dask", "processes") + "; the engine's own LocalCluster, its start-up counted"
        targets.append(
            Target(
                f"{variant}: dask (2) / processes, throughput", ratio("processes", "dask"), 0.8, False, detail
            )
        )
    if {"threads", "serial"} <= have:
        targets.append(
            Target(
                f"{variant}: threads (2) speed-up over serial",
                ratio("serial", "threads"),
                None,
                False,
                seconds("threads", "serial"),
            )
        )
    if {"loop", "halves"} <= have:
        targets.append(
            Target(
                f"{variant}: two half loops over the loop (the limit)",
                ratio("loop", "halves"),
                None,
                False,
                seconds("halves", "loop"),
            )
        )
    return targets


def _gui(args: argparse.Namespace) -> str:
    """bench_gui.py's table (under Xvfb when there is no display), as Markdown."""
    script = HERE / "bench_gui.py"
    if not script.exists():
        return "\n## GUI\n\nbenchmarks/bench_gui.py is missing: no GUI rows.\n"
    command = [sys.executable, str(script), "--images", str(args.images), "--markdown"]
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        command = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", *command]
    log("GUI: " + " ".join(command))
    done = subprocess.run(
        command, capture_output=True, text=True, env=os.environ | {"QT_QPA_PLATFORM": "xcb"}
    )
    sys.stderr.write(done.stderr[-4000:])
    return f"\n## GUI (bench_gui.py, exit status {done.returncode})\n\n{done.stdout.strip()}\n"


def _loadavg() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
