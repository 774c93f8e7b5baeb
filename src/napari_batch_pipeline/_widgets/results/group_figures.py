"""Drawing the by-group plots of the results view into a matplotlib figure.

The data comes from :mod:`napari_batch_pipeline.core.results.group_plots`: a measurement per
image in each group (a point per image, a box per group), and a measurement against a
parameter (a point per image, coloured by its group).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ...core.results.group_plots import GROUP_COLUMN

__all__ = ["draw_against_parameter", "draw_by_group"]

#: the ``gid`` of each group's points, ``'images:<group>'``, and of the boxes
IMAGES_GID, BOXES_GID = "images", "boxes"


def draw_by_group(
    figure: Figure, groups: Sequence[tuple[str, np.ndarray]], measurement: str, group_by: Sequence[str]
) -> None:
    """A box per group (median, quartiles) over a point per image."""
    axes = figure.add_subplot()
    positions = np.arange(1, len(groups) + 1)
    filled = [i for i, (_, values) in enumerate(groups) if len(values)]
    if filled:
        boxes = axes.boxplot(
            [groups[i][1] for i in filled],
            positions=positions[filled],
            widths=0.5,
            showfliers=False,
            medianprops={"color": "C1"},
        )
        for box in boxes["boxes"]:
            box.set_gid(BOXES_GID)
    for position, (name, values) in zip(positions, groups, strict=True):
        spread = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(len(values))
        axes.plot(position + spread, values, "o", color="C0", alpha=0.7, ms=4, gid=f"{IMAGES_GID}:{name}")
    names = [name for name, _ in groups]
    slanted = len(names) > 4 or max(map(len, names), default=0) > 12
    axes.set_xticks(positions, names, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    axes.set_xlim(0.4, len(groups) + 0.6)
    axes.set_xlabel(", ".join(group_by) or GROUP_COLUMN)
    axes.set_ylabel(f"{measurement} (per image)")
    images = sum(len(values) for _, values in groups)
    axes.set_title(f"{measurement}: {images} images in {len(groups)} group(s)", fontsize="small")


def draw_against_parameter(
    figure: Figure, points: pd.DataFrame, parameter: str, measurement: str, group_by: Sequence[str]
) -> None:
    """A point per image at its parameter value, one colour per group, with a legend."""
    axes = figure.add_subplot()
    numeric = pd.api.types.is_numeric_dtype(points["parameter"])
    order = list(dict.fromkeys(points["parameter"]))
    for number, (group, rows) in enumerate(points.groupby(GROUP_COLUMN, sort=False)):
        x = rows["parameter"] if numeric else [order.index(v) for v in rows["parameter"]]
        axes.plot(
            x, rows["value"], "o", color=f"C{number % 10}", alpha=0.8, ms=5, label=str(group), gid=str(group)
        )
    if not numeric:
        axes.set_xticks(range(len(order)), [str(v) for v in order])
    axes.set_xlabel(parameter)
    axes.set_ylabel(f"{measurement} (per image)")
    axes.set_title(
        f"{measurement} against {parameter}, by {', '.join(group_by) or GROUP_COLUMN}", fontsize="small"
    )
    if len(points):
        axes.legend(fontsize="x-small", title=", ".join(group_by) or None, title_fontsize="x-small")
