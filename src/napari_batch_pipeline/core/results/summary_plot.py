"""The drawing of ``summary.png`` from plain values: a point per image, a box per group.

:mod:`.summary` chooses what the figure shows (the first measurement, the groups, the
per-image means) and hands it over as a :class:`SummaryPlot`; this module draws it with
matplotlib's Agg backend, without pyplot. It imports only numpy (matplotlib on first
drawing), so that a second process can draw the figure without loading the engine or
pandas (:mod:`.figure_process`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SummaryPlot"]


@dataclasses.dataclass(frozen=True)
class SummaryPlot:
    """What ``summary.png`` shows.

    Attributes
    ----------
    names : tuple of str
        One label per group, in the order shown.
    values : tuple of ndarray
        The per-image values of each group (finite only).
    xlabel, ylabel, title : str
        The axes' labels and the figure's title.
    empty : bool
        True where the run has no measurement to plot: the figure says so.
    """

    names: tuple[str, ...] = ()
    values: tuple[np.ndarray, ...] = ()
    xlabel: str = ""
    ylabel: str = ""
    title: str = ""
    empty: bool = False

    def figure(self) -> Figure:
        """The matplotlib figure (no GUI backend)."""
        from matplotlib import figure as mpl_figure

        if self.empty:
            figure = mpl_figure.Figure(figsize=(5, 3), layout="constrained")
            axes = figure.add_subplot()
            axes.text(0.5, 0.5, "no measurement to plot", ha="center", va="center", transform=axes.transAxes)
            axes.set_axis_off()
            return figure
        names, data = list(self.names), list(self.values)
        width = min(16.0, max(5.0, 3.0 + 0.8 * len(data)))
        figure = mpl_figure.Figure(figsize=(width, 4.5))
        axes = figure.add_subplot()
        positions = np.arange(1, len(data) + 1)
        boxed = [i for i, values in enumerate(data) if len(values)]
        if boxed:
            axes.boxplot(
                [data[i] for i in boxed],
                positions=positions[boxed],
                widths=0.5,
                showfliers=False,
                medianprops={"color": "C1"},
            )
        for position, values in zip(positions, data, strict=True):
            spread = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(len(values))
            axes.plot(position + spread, values, "o", color="C0", alpha=0.7, ms=4, gid="images")
        slanted = len(names) > 4 or max(map(len, names), default=0) > 12
        # margins set, not laid out: the constrained layout took a third of the figure's
        # time, which a one-image run waits for (inches: the y label and ticks, the names)
        longest = max(map(len, names), default=0)
        below = 0.6 + (min(longest, 40) * 0.07 * 0.5 if slanted else 0.0)
        left = max(1.0, 0.075 * min(len(names[0]), 40) - 0.4) if slanted and names else 1.0
        figure.subplots_adjust(
            left=left / width, right=1 - 0.2 / width, top=1 - 0.45 / 4.5, bottom=below / 4.5
        )
        axes.set_xticks(positions, names, rotation=30 if slanted else 0, ha="right" if slanted else "center")
        axes.set_xlim(0.4, len(data) + 0.6)
        axes.set_xlabel(self.xlabel)
        axes.set_ylabel(self.ylabel)
        # placed, not fitted above the ticks: the fitting was a sixth of the drawing
        axes.set_title(self.title, y=1.0, pad=6.0)
        return figure

    def save(self, path: str | Path) -> Path:
        """Draw the figure into the PNG file ``path``, whole or not at all."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        target = Path(path)
        with atomic_path(target) as temporary:
            FigureCanvasAgg(self.figure()).print_png(str(temporary))
        return target
