"""A plate's heat map: the screen's readout per well, at the well's place on the plate.

The grid is the plate's format: 8 x 12 (96 wells) while every well lies within H12,
16 x 24 (384) within P24, 32 x 48 (1536) within AF48, else as large as the wells need.
A well's value is the median (or mean) of its usable images (done, not flagged), as in
wells.csv; a well with none is empty (NaN). Wells with a flagged image are crossed; control wells are outlined
(negative: white, positive: red). The figure's artists carry ``gid`` names (``wells``,
``flagged``, ``negative``, ``positive``) so that its data can be read back. The title
names the measurement shown and, when it is not a readout named by the pipeline's
``screen: readout`` or the readout option, says so (:func:`.screen.choose_readout`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..files import atomic_path
from ..run_folder.layout import RunLayout
from ..run_folder.records import DONE
from ..run_folder.tables import COLUMN, ROW, STATUS
from .annotations import plate_column, plate_row, row_letters
from .screen import Control, ScreenSettings, choose_readout, plates
from .summary import usable
from .wells import check_well_aggregate

if TYPE_CHECKING:  # named apart from the summary's Figure: an exported script holds both
    from matplotlib.figure import Figure as PlateFigure

__all__ = [
    "PLATE_FORMATS",
    "PlateGrid",
    "draw_plate",
    "plate_figure",
    "plate_figures",
    "plate_grid",
    "plate_shape",
    "well_rows",
    "write_plate_plots",
]

#: (rows, columns) of the common plate formats, smallest first
PLATE_FORMATS = ((8, 12), (16, 24), (32, 48))


def plate_shape(rows: int, columns: int) -> tuple[int, int]:
    """The smallest plate format holding row ``rows`` and column ``columns`` (from 1)."""
    for shape in PLATE_FORMATS:
        if rows <= shape[0] and columns <= shape[1]:
            return shape
    return rows, columns


@dataclass(frozen=True)
class PlateGrid:
    """One plate's wells on its grid; arrays of shape (rows, columns), row A first.

    Attributes
    ----------
    measurement : str
        The images.csv column shown.
    values : ndarray of float64
        The median (or mean) of each well's usable images; NaN for none.
    flagged, negative, positive : ndarray of bool
        Wells with a flagged image; wells of the negative and positive controls.
    note : str
        What the title says of ``measurement`` (the screen's readout, or why another is
        shown); empty: nothing.
    """

    measurement: str
    values: np.ndarray
    flagged: np.ndarray
    negative: np.ndarray
    positive: np.ndarray
    note: str = ""

    @property
    def row_labels(self) -> list[str]:
        return [row_letters(number) for number in range(1, self.values.shape[0] + 1)]


def plate_grid(
    images: pd.DataFrame,
    measurement: str,
    negative: Control | None = None,
    positive: Control | None = None,
    aggregate: str = "median",
) -> PlateGrid:
    """The wells of one plate's images (images.csv rows with ``row`` and ``column``).

    Parameters
    ----------
    images : DataFrame
        The plate's rows of images.csv; rows without a well are left out.
    measurement : str
        A per-image column of images.csv.
    negative, positive : Control, optional
        The controls, outlined.
    aggregate : {'median', 'mean'}
        How a well's usable images give its value (as wells.csv's ``--well-aggregate``).
    """
    # rows as letters or numbers (1 is A), columns as numbers; rows without a well left out
    positions = [(plate_row(r), plate_column(c)) for r, c in zip(images[ROW], images[COLUMN], strict=True)]
    at_well = [(r, c) for r, c in positions if r is not None and c is not None]
    placed = images[np.array([None not in position for position in positions], dtype=bool)]
    rows = np.array([r for r, _ in at_well], dtype=int)
    columns = np.array([c for _, c in at_well], dtype=int)
    shape = plate_shape(int(rows.max(initial=1)), int(columns.max(initial=1)))
    flagged, negatives, positives = (np.zeros(shape, dtype=bool) for _ in range(3))
    values = pd.to_numeric(placed[measurement], errors="coerce").to_numpy(dtype=float)
    kept = usable(placed) & np.isfinite(values)
    done = (placed[STATUS] == DONE).to_numpy()
    at = (rows - 1, columns - 1)
    by_well = pd.Series(values[kept]).groupby([at[0][kept], at[1][kept]]).agg(check_well_aggregate(aggregate))
    shown = np.full(shape, np.nan)
    for (row, column), value in by_well.items():
        shown[row, column] = value
    flagged[at[0][done & ~usable(placed)], at[1][done & ~usable(placed)]] = True
    for control, marks in ((negative, negatives), (positive, positives)):
        if control is not None:
            hit = control.mask(placed)
            marks[at[0][hit], at[1][hit]] = True
    return PlateGrid(measurement, shown, flagged, negatives, positives)


def plate_figure(grid: PlateGrid, plate: str) -> PlateFigure:
    """The heat map of ``grid``, titled with ``plate``; a matplotlib figure made without
    pyplot. ``figure.axes[0].images[0].get_array()`` holds ``grid.values``."""
    from matplotlib.figure import Figure

    n_rows, n_columns = grid.values.shape
    figure = Figure(figsize=(2.5 + 0.45 * n_columns, 1.5 + 0.45 * n_rows), layout="constrained")
    draw_plate(figure, grid, plate)
    return figure


def draw_plate(figure: PlateFigure, grid: PlateGrid, plate: str) -> None:
    """Draw the heat map of ``grid`` into ``figure`` (one axes: well ``(row, column)``,
    from 0, at ``x = column, y = row``)."""
    from matplotlib.patches import Rectangle

    n_rows, n_columns = grid.values.shape
    axes = figure.add_subplot()
    shown = axes.imshow(np.ma.masked_invalid(grid.values), cmap="viridis", gid="wells")
    figure.colorbar(shown, ax=axes, label=grid.measurement, shrink=0.8)
    crossed = np.argwhere(grid.flagged)
    axes.plot(crossed[:, 1], crossed[:, 0], "x", color="C3", ms=9, mew=2, ls="none", gid="flagged")
    for name, marks, colour in (("negative", grid.negative, "white"), ("positive", grid.positive, "red")):
        for row, column in np.argwhere(marks):
            box = Rectangle((column - 0.45, row - 0.45), 0.9, 0.9, fill=False, ec=colour, lw=2, gid=name)
            axes.add_patch(box)
    axes.set_xticks(range(n_columns), [str(c) for c in range(1, n_columns + 1)])
    axes.set_yticks(range(n_rows), grid.row_labels)
    axes.tick_params(labelsize=7)
    said = f"\n{grid.note}" if grid.note else ""
    axes.set_title(f"plate {plate}: {grid.measurement}{said}\nx: flagged; outlined: controls", fontsize=9)


def well_rows(images: pd.DataFrame, row: int, column: int) -> list[int]:
    """The positions in ``images`` (one plate's rows of images.csv) of the images of the well
    at grid place ``(row, column)``, from 0 (as :func:`draw_plate` draws them)."""
    rows = [plate_row(r) for r in images[ROW]]
    columns = [plate_column(c) for c in images[COLUMN]]
    return [i for i, (r, c) in enumerate(zip(rows, columns, strict=True)) if (r, c) == (row + 1, column + 1)]


def plate_figures(
    images: pd.DataFrame, columns: Sequence[str], named: str | None, settings: ScreenSettings
) -> dict[str, PlateFigure]:
    """The heat map of every plate of ``images`` (images.csv, typed), by plate: the readout
    ``named`` per well (else the default, said in the title; see
    :func:`.screen.choose_readout`), flagged wells crossed, controls outlined."""
    readout, note = choose_readout(columns, named)
    plate = plates(images)
    figures = {}
    for name in pd.unique(plate):
        grid = plate_grid(
            images[plate == name], readout, settings.negative, settings.positive, settings.well_aggregate
        )
        figures[str(name)] = plate_figure(replace(grid, note=note), str(name))
    return figures


def write_plate_plots(
    layout: RunLayout,
    images: pd.DataFrame,
    columns: Sequence[str],
    named: str | None,
    settings: ScreenSettings,
) -> list[Path]:
    """Write ``plate_<plate>.png`` of every plate (:func:`plate_figures`); the files written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    written = []
    for name, figure in plate_figures(images, columns, named, settings).items():
        target = layout.plate_plot(name)
        with atomic_path(target) as temporary:
            FigureCanvasAgg(figure).print_png(str(temporary))
        written.append(target)
    return written
