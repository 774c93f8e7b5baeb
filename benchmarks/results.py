"""The table the benchmarks print: what was measured, the ratio, the target, PASS or FAIL.

Also where it was measured, and how busy other processes kept the machine meanwhile
(on a shared 2-core machine that is the main source of noise).
"""

from __future__ import annotations

import platform
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = [
    "QUIET",
    "ForeignLoad",
    "Result",
    "at_least",
    "at_most",
    "compile_package",
    "machine",
    "median",
    "print_table",
]


@dataclass(frozen=True)
class Result:
    """One line of the table; ``passed`` is None for a line given for information."""

    what: str
    measured: str
    target: str
    passed: bool | None
    detail: str = ""

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else "PASS" if self.passed else "FAIL"


def at_most(what: str, ratio: float, limit: float, unit: str, detail: str = "") -> Result:
    return Result(what, f"{ratio:.2f}{unit}", f"<= {limit:.2f}{unit}", ratio <= limit, detail)


def at_least(what: str, ratio: float, limit: float, unit: str, detail: str = "") -> Result:
    return Result(what, f"{ratio:.2f}{unit}", f">= {limit:.2f}{unit}", ratio >= limit, detail)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line about where the numbers come from."""
    return (
        f"{time.strftime('%Y-%m-%d')}, {psutil.cpu_count(logical=True)} cores, "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB, Python {platform.python_version()}, "
        f"{platform.platform(terse=True)}"
    )


def compile_package() -> None:
    """Compile the package's bytecode now, as installing it from a wheel does.

    A fresh process then reads each module's cached bytecode instead of compiling it from
    source. From a checkout (an editable install) with ``PYTHONDONTWRITEBYTECODE`` set, as
    on the project's test machines, most modules had no bytecode cached, and every
    fresh process the benchmarks time compiled them again (a tenth of a second or more
    of a one-image run), a cost a user's installed package does not have.
    """
    import compileall

    import napari_batch_pipeline

    compileall.compile_dir(str(Path(napari_batch_pipeline.__file__).parent), quiet=2)


#: other processes using fewer cores than this leave the machine quiet enough to measure
QUIET = 0.2


class ForeignLoad(threading.Thread):
    """CPU used by processes outside this one's tree, in cores, sampled every second.

    Use as a context manager around the measurements.
    """

    def __init__(self, interval: float = 1.0):
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[float] = []
        self._stopped = threading.Event()
        self._me = psutil.Process()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                mine = {self._me.pid, *(p.pid for p in self._me.children(recursive=True))}
            except psutil.Error:
                continue
            total = 0.0
            for process in psutil.process_iter():
                if process.pid in mine:
                    continue
                try:
                    total += process.cpu_percent(None)
                except psutil.Error:
                    continue
            self.samples.append(total / 100)

    def __enter__(self) -> ForeignLoad:
        for process in psutil.process_iter():  # the first cpu_percent call of each is 0.0
            try:
                process.cpu_percent(None)
            except psutil.Error:
                continue
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self.join()

    def mark(self) -> int:
        """A bookmark for :meth:`mean_since`."""
        return len(self.samples)

    def mean_since(self, mark: int) -> float:
        """Mean load of the samples taken since ``mark`` (0.0 if none)."""
        recent = self.samples[mark:]
        return sum(recent) / len(recent) if recent else 0.0

    def wait_quiet(self, timeout: float = 30.0, threshold: float = QUIET) -> float:
        """Wait until other processes used under ``threshold`` cores for two samples running.

        Gives up after ``timeout`` seconds; returns the seconds waited.
        """
        start = time.perf_counter()
        seen = len(self.samples)
        while time.perf_counter() - start < timeout:
            recent = self.samples[seen:][-2:]
            if len(recent) == 2 and max(recent) < threshold:
                break
            time.sleep(self.interval / 4)
        return time.perf_counter() - start

    def summary(self) -> str:
        if not self.samples:
            return "load of other processes: not measured"
        mean = sum(self.samples) / len(self.samples)
        text = (
            f"other processes used {mean:.2f} cores on average "
            f"(most {max(self.samples):.2f}) during the measurements"
        )
        if mean > QUIET:
            text += "; the machine was shared, the ratios are noisier than usual"
        return text


def print_table(
    title: str,
    results: Sequence[Result],
    markdown: bool = False,
    load: ForeignLoad | None = None,
) -> None:
    """Print the results as an aligned text table, or as a Markdown table."""
    header = ("what", "measured", "target", "result", "detail")
    rows = [(r.what, r.measured, r.target, r.verdict, r.detail) for r in results]
    print()
    print(title)
    print(machine())
    if load is not None:
        print(load.summary())
    if markdown:
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        sys.stdout.flush()
        return
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    sys.stdout.flush()
