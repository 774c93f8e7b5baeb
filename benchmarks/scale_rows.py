"""The rows of the scale benchmark, each run in a fresh Python process.

    python benchmarks/scale_rows.py ROW FOLDER OUT VARIANT RESULT.json

``ROW`` is one of :data:`ROWS`. Everything the rows use (numpy, scikit-image, pandas,
tifffile, joblib and the engine) is imported before the clock starts, in every row alike,
so that a row's time is its run: worker processes started by the row (joblib's, the
engine's pool, dask's LocalCluster) and what they import are counted, as a user would
wait for them; this process's own imports are not (they are reported apart, as
``imports``). The result file holds the seconds, the object count of every image and the
imports' seconds.

The hand-written chain (:func:`process_image`) does what the engine's stages do, with the
same scikit-image calls, and the writes a careful user would make: the label image as
TIFF and a CSV per image, then one concatenated table.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tifffile  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402
from skimage import filters  # noqa: E402

from napari_batch_pipeline import run_batch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_data import make_pipeline  # noqa: E402
from workload import label_measure_write  # noqa: E402

__all__ = ["ENGINE_ROWS", "ROWS", "WORKERS", "prepare_output", "process_image"]

WORKERS = 2
ENGINE_ROWS = ("serial", "threads", "processes", "dask", "auto")
ROWS = ("loop", "halves", "joblib", *ENGINE_ROWS)
#: the table the engine writes for the measure stage, and the hand loop likewise
TABLE = "nuclei"


def process_image(path: str, out_dir: str, variant: str) -> pd.DataFrame:
    """The chain on one image, by hand: read, filter, segment, measure, write.

    Writes ``<out_dir>/labels/<stem>.tif`` and ``<out_dir>/parts/<stem>.csv``; returns the
    image's table (one row per object).
    """
    pixels = tifffile.imread(path)
    dna, cyto = (pixels, pixels) if variant == "single" else (pixels[0], pixels[1])
    blurred = np.asarray(filters.gaussian(dna, sigma=2.0, preserve_range=True), np.float32)
    mask = blurred > filters.threshold_otsu(blurred)
    return label_measure_write(mask, cyto, path, out_dir)


def _paths(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.tif"))


def prepare_output(out: Path) -> None:
    """Make the folders :func:`process_image` writes into."""
    (out / "labels").mkdir(parents=True, exist_ok=True)
    (out / "parts").mkdir(parents=True, exist_ok=True)


def _counts(table: pd.DataFrame) -> dict[str, int]:
    return {str(image): int(n) for image, n in table.groupby("image").size().items()}


def hand_loop(paths: list[Path], out: Path, variant: str) -> dict[str, int]:
    prepare_output(out)
    frames = [process_image(str(path), str(out), variant) for path in paths]
    table = pd.concat(frames, ignore_index=True)
    table.to_csv(out / f"{TABLE}.csv", index=False)
    return _counts(table)


def joblib_loop(paths: list[Path], out: Path, variant: str) -> dict[str, int]:
    prepare_output(out)
    frames = Parallel(n_jobs=WORKERS)(delayed(process_image)(str(p), str(out), variant) for p in paths)
    table = pd.concat(frames, ignore_index=True)
    table.to_csv(out / f"{TABLE}.csv", index=False)
    return _counts(table)


def engine(executor: str, folder: Path, out: Path, variant: str) -> tuple[dict[str, int], str]:
    """The engine's run; every image's object count, and the executor that ran (auto's choice)."""
    count = len(_paths(folder))
    report = run_batch(make_pipeline(variant), folder, out, executor=executor, workers=WORKERS, fresh=True)
    if report.done != count:
        raise RuntimeError(f"{executor}: {report.failed} of {count} task(s) failed:\n{report.failures}")
    ran = json.loads((out / "run.json").read_text(encoding="utf-8"))["executor"]
    return _counts(pd.read_csv(out / f"{TABLE}.csv", usecols=["image"])), ran


def half_loops(folder: Path, out: Path, variant: str) -> dict[str, Any]:
    """Two plain loops over the halves of the folder, at once, in two processes.

    Each process imports, says it is ready, and waits; the clock runs from the go to the
    end of both and the concatenated table. Their imports are not counted: this is the
    physical limit of 2 processes on this chain.
    """
    prepare_output(out)
    halves = [
        subprocess.Popen(
            [sys.executable, __file__, "half", str(folder), str(out), variant, str(part)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for part in range(2)
    ]
    for process in halves:
        ready = process.stdout.readline()  # type: ignore[union-attr]
        if ready.strip() != "ready":
            raise RuntimeError(f"a half loop did not start: {ready!r}")
    start = time.perf_counter()
    for process in halves:
        process.stdin.write("go\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]
    reports = [json.loads(process.communicate()[0]) for process in halves]
    table = pd.concat(
        [pd.read_csv(path) for path in sorted((out / "parts").glob("*.csv"))], ignore_index=True
    )
    table.to_csv(out / f"{TABLE}.csv", index=False)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "counts": _counts(table),
        "halves": [report["seconds"] for report in reports],
    }


def _half(folder: Path, out: Path, variant: str, part: int) -> None:
    """One half loop (``part`` 0 or 1): ready, wait for go, loop, print its seconds."""
    paths = _paths(folder)
    middle = (len(paths) + 1) // 2
    mine = paths[:middle] if part == 0 else paths[middle:]
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    for path in mine:
        process_image(str(path), str(out), variant)
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def run_row(row: str, folder: Path, out: Path, variant: str) -> dict[str, Any]:
    """Run ``row`` once; its seconds and every image's object count."""
    if row == "halves":
        return half_loops(folder, out, variant)
    start = time.perf_counter()
    ran = row
    if row == "loop":
        counts = hand_loop(_paths(folder), out, variant)
    elif row == "joblib":
        counts = joblib_loop(_paths(folder), out, variant)
    elif row in ENGINE_ROWS:
        counts, ran = engine(row, folder, out, variant)
    else:
        raise ValueError(f"unknown row {row!r}; expected one of {', '.join(ROWS)}")
    return {"seconds": time.perf_counter() - start, "counts": counts, "executor": ran}


def main(argv: list[str]) -> int:
    if argv[0] == "half":
        _half(Path(argv[1]), Path(argv[2]), argv[3], int(argv[4]))
        return 0
    row, folder, out, variant, result = argv
    imports = time.perf_counter() - _STARTED
    outcome = run_row(row, Path(folder), Path(out), variant)
    outcome["imports"] = imports
    Path(result).write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
