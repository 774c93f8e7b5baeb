"""The scale benchmark's tables: times per row, targets met or missed; saved and plotted.

Two tables per run: the **times** (every row's seconds per variant, its images per
second, its time against the hand loop's, whether its object counts equal the hand
loop's, and how busy other processes kept the machine meanwhile) and the **targets**
(each ratio of DESIGN's performance table next to its target, met or missed). Both are
printed, and saved under ``benchmarks/results/`` as Markdown, CSV and JSON, with a bar
chart of the ratios against their targets.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Target", "TimeRow", "markdown", "plot", "save"]


@dataclass(frozen=True)
class TimeRow:
    """One row run once over one variant's folder."""

    variant: str
    row: str
    seconds: float
    images_per_s: float
    vs_loop: float | None
    objects: int
    equal: bool | None  # object counts per image equal the hand loop's (None: no loop)
    load: float  # cores other processes used meanwhile
    probe: float  # seconds of the hand chain on one image just before the row
    detail: str = ""


@dataclass(frozen=True)
class Target:
    """One line of DESIGN's performance table: a measured ratio and its target.

    ``limit`` is None for a line given for information; ``at_most`` says which way the
    target points.
    """

    what: str
    ratio: float
    limit: float | None
    at_most: bool
    detail: str = ""

    @property
    def met(self) -> bool | None:
        if self.limit is None:
            return None
        return self.ratio <= self.limit if self.at_most else self.ratio >= self.limit

    @property
    def verdict(self) -> str:
        return "info" if self.met is None else "met" if self.met else "MISSED"

    @property
    def target(self) -> str:
        if self.limit is None:
            return "(info)"
        return f"{'<=' if self.at_most else '>='} {self.limit:.2f}x"

    @property
    def by(self) -> str:
        """By how much a missed target is missed, in percent of its limit."""
        if self.met is not False or self.limit is None:
            return ""
        return f"missed by {abs(self.ratio / self.limit - 1) * 100:.0f} %"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def time_cells(row: TimeRow) -> list[str]:
    equal = {None: "-", True: "yes", False: "NO"}[row.equal]
    vs = f"{row.vs_loop:.2f}x" if row.vs_loop is not None else "-"
    return [
        row.variant,
        row.row,
        f"{row.seconds:.2f}",
        f"{row.images_per_s:.1f}",
        vs,
        f"{row.objects}",
        equal,
        f"{row.load:.2f}",
        f"{row.probe * 1e3:.0f}",
        row.detail,
    ]


TIME_HEADER = (
    "variant",
    "row",
    "seconds",
    "images/s",
    "time vs loop",
    "objects",
    "same counts",
    "other load",
    "1 image ms",
    "detail",
)
TARGET_HEADER = ("what", "measured", "target", "result", "detail")


def target_cells(target: Target) -> list[str]:
    detail = "; ".join(part for part in (target.by, target.detail) if part)
    return [target.what, f"{target.ratio:.2f}x", target.target, target.verdict, detail]


def markdown(title: str, context: Sequence[str], times: Sequence[TimeRow], targets: Sequence[Target]) -> str:
    lines = [f"## {title}", "", *[f"- {line}" for line in context], ""]
    lines += [*_table(TARGET_HEADER, [target_cells(t) for t in targets]), ""]
    lines += [*_table(TIME_HEADER, [time_cells(t) for t in times]), ""]
    return "\n".join(lines)


def save(
    folder: Path,
    stem: str,
    text: str,
    times: Sequence[TimeRow],
    targets: Sequence[Target],
    context: dict[str, Any],
) -> list[Path]:
    """Write ``<stem>.md``, ``<stem>.csv`` (the targets, then the times) and ``<stem>.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{stem}.md", folder / f"{stem}.csv", folder / f"{stem}.json"]
    written[0].write_text(text + "\n")
    with written[1].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["table", *TARGET_HEADER])
        writer.writerows(["targets", *target_cells(t)] for t in targets)
        writer.writerow(["table", *TIME_HEADER])
        writer.writerows(["times", *time_cells(t)] for t in times)
    payload = {
        "context": context,
        "targets": [{**asdict(t), "target": t.target, "result": t.verdict} for t in targets],
        "times": [asdict(t) for t in times],
    }
    written[2].write_text(json.dumps(payload, indent=1) + "\n")
    return written


def plot(path: Path, title: str, targets: Sequence[Target]) -> Path | None:
    """A bar per ratio, its target as a black tick; green met, red missed, grey info."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(targets) + 1.5))
    positions = list(range(len(targets)))[::-1]
    colours = {True: "tab:green", False: "tab:red", None: "tab:grey"}
    axes.barh(positions, [t.ratio for t in targets], color=[colours[t.met] for t in targets])
    for position, target in zip(positions, targets, strict=True):
        axes.text(target.ratio, position, f" {target.ratio:.2f}", va="center", fontsize=8)
        if target.limit is not None:
            axes.plot([target.limit] * 2, [position - 0.4, position + 0.4], color="black", linewidth=2)
    axes.set_yticks(positions, [t.what for t in targets], fontsize=8)
    axes.axvline(1.0, color="grey", linewidth=0.5, linestyle=":")
    axes.set_xlabel("ratio (black: target)")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
