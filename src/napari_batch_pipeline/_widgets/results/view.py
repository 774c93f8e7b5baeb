"""The *Batch results* view: a run folder's tables, to copy or save, and plots of them.

The tables are images.csv (one row per task), each ``<stage>.csv`` (one row per
object) and the summary (summary.csv: one row per group, or the run regrouped by the
*group by* field), shown through a model over the DataFrame, so a table of 50,000
objects opens at once. Plots: objects per image, the histogram of a measurement, a
measurement against a swept parameter, a measurement by group (a point per image, a
box per group), a measurement against a parameter coloured by group, and a screen's
plate map (a click on a well shows its images; :mod:`.plate_view`); a screen's
``assay.csv`` (Z' per plate) and ``normalized.csv`` are tables too. The data comes
from :mod:`napari_batch_pipeline.core.results` (``plot_data``, ``sweep_plot``,
``summary``, ``group_plots``, ``plate_map``); this module only draws and wires.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.utils.notifications import show_error
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import QApplication, QFileDialog, QTableView, QWidget

from ...core.errors import PipelineError
from ...core.results.group_plots import image_measurements, parameter_points, values_by_group
from ...core.results.plot_data import measurement_columns, measurement_values, object_counts
from ...core.results.summary import read_summary, run_summary
from ...core.results.sweep_plot import sweep_figure
from ...core.run_folder.reader import RunResults
from ...core.run_folder.tables import read_table
from ..viewer.dock_layout import scrolling_layout, wrapping
from ..viewer.home import alive, join_home, join_home_later, mark_page
from .group_figures import draw_against_parameter, draw_by_group
from .plate_view import draw_plate_map, plate_choices, plate_measurements, well_images, well_layers

__all__ = ["PLOTS", "SUMMARY", "DataFrameModel", "ResultsView", "show_results"]

#: the plots the view draws
BY_GROUP, PARAMETER_BY_GROUP, PLATE_MAP = "by group", "against a parameter, by group", "plate map"
PLOTS = ("objects per image", "histogram", "against a parameter", BY_GROUP, PARAMETER_BY_GROUP, PLATE_MAP)
_IMAGES = "images"
#: the table choice of the summary by group
SUMMARY = "summary"
#: above this many tasks the objects-per-image plot drops the bar labels
_MAX_BARS = 60


class DataFrameModel(QAbstractTableModel):
    """A read-only Qt table model over a DataFrame; cells are formatted when shown."""

    def __init__(self, frame: pd.DataFrame | None = None):
        super().__init__()
        self.frame = frame if frame is not None else pd.DataFrame()

    def set_frame(self, frame: pd.DataFrame) -> None:
        self.beginResetModel()
        self.frame = frame
        self.endResetModel()

    def rowCount(self, parent: Any = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.frame)

    def columnCount(self, parent: Any = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.frame.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        value = self.frame.iat[index.row(), index.column()]
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.6g}"
        return str(value)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self.frame.columns[section])
        return str(section + 1)


class ResultsView(QWidget):
    """Tables and plots of a batch run folder.

    Parameters
    ----------
    napari_viewer : napari.Viewer, optional
        Unused; napari passes it when the view opens from the Plugins menu.
    run_folder : path, optional
        A run folder to show at once.

    Attributes
    ----------
    folder : FileEdit
        The run folder (setting it loads it).
    table_choice : ComboBox
        ``images`` (images.csv), a table stage (``<stage>.csv``) or ``summary``.
    group_by : LineEdit
        Columns that group the summary and the by-group plots (``folder,condition``);
        empty: as the run grouped its summary.csv.
    plot_kind, measurement, parameter, plate : ComboBox
        What the plot shows (``plate``: the plate of the plate map).
    results : RunResults or None
    frame : DataFrame
        The table shown.
    figure : matplotlib Figure
        The plot shown.
    """

    def __init__(self, napari_viewer: Any = None, run_folder: str | Path | None = None):
        super().__init__()
        self.viewer = napari_viewer
        self.results: RunResults | None = None
        self.folder = FileEdit(mode=FileDialogMode.EXISTING_DIRECTORY, nullable=True, label="run folder")
        self.table_choice = ComboBox(label="table", choices=[_IMAGES])
        self.group_by = LineEdit(
            label="group by", tooltip="columns that group the summary and its plots; empty: as the run did"
        )
        self.copy_button = PushButton(text="Copy")
        self.save_button = PushButton(text="Save as CSV...")
        self.plot_kind = ComboBox(label="plot", choices=PLOTS)
        self.measurement = ComboBox(label="measurement", choices=[])
        self.parameter = ComboBox(label="parameter", choices=[])
        self.plate = ComboBox(label="plate", choices=[], visible=False)
        self.well_layers: list[Any] = []
        self.status = Label(value="")
        form = Container(
            widgets=[
                self.folder,
                self.table_choice,
                self.group_by,
                Container(widgets=[self.copy_button, self.save_button], layout="horizontal", labels=False),
            ]
        )
        plot_form = Container(
            widgets=[self.plot_kind, self.measurement, self.parameter, self.plate, self.status]
        )
        self.model = DataFrameModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setMinimumHeight(140)
        self.figure = Figure(figsize=(5, 3), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)
        wrapping(self.status)
        layout = scrolling_layout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.table, stretch=1)
        layout.addWidget(plot_form.native)
        layout.addWidget(self.canvas, stretch=1)

        self.folder.changed.connect(self._on_folder_changed)
        self.table_choice.changed.connect(self._show_table)
        self.group_by.changed.connect(self._on_group_by_changed)
        self.copy_button.changed.connect(self.copy)
        self.save_button.changed.connect(self._on_save_clicked)
        self.plot_kind.changed.connect(self._on_plot_kind_changed)
        self.measurement.changed.connect(self.draw)
        self.parameter.changed.connect(self.draw)
        self.plate.changed.connect(self.draw)
        self.canvas.mpl_connect("button_press_event", self._on_canvas_clicked)
        mark_page(self, "results")
        if run_folder is not None:
            self.load(run_folder)

    @property
    def frame(self) -> pd.DataFrame:
        return self.model.frame

    def showEvent(self, event: Any) -> None:
        join_home_later(self)
        super().showEvent(event)

    # -- loading ------------------------------------------------------------------------

    def load(self, run_folder: str | Path) -> RunResults:
        """Show the run folder ``run_folder``.

        Raises
        ------
        PipelineError
            If it is not a run folder.
        """
        results = RunResults(run_folder)
        self.results = results
        with self.folder.changed.blocked():
            self.folder.value = results.path
        with self.table_choice.changed.blocked():
            screen = [p.stem for p in _screen_tables(results) if p.is_file()]
            self.table_choice.choices = [_IMAGES, *results.table_stages, SUMMARY, *screen]
            self.table_choice.value = results.table_stages[0] if results.table_stages else _IMAGES
        with self.parameter.changed.blocked():
            self.parameter.choices = results.param_columns
        self._show_table()
        self._on_plot_kind_changed()
        return results

    def _on_folder_changed(self) -> None:
        folder = self.folder.value
        if isinstance(folder, Path):
            try:
                self.load(folder)
            except PipelineError as error:
                self.status.value = str(error)

    def table_frame(self, name: str | None = None) -> pd.DataFrame:
        """images.csv, the summary, or the table of stage ``name`` (default: the chosen one)."""
        if self.results is None:
            return pd.DataFrame()
        name = name or self.table_choice.value
        if name == SUMMARY:
            return self.summary()[0]
        screen = {p.stem: p for p in _screen_tables(self.results)}
        if name in screen:
            return read_table(screen[name], self.results.metadata_columns)
        return self.results.images if name == _IMAGES else self.results.table(name)

    def summary(self) -> tuple[pd.DataFrame, list[str]]:
        """The summary by group and its grouping columns: summary.csv as the run wrote it,
        or, with *group by* set, the run regrouped (as ``summarize --group-by`` would).

        Raises
        ------
        PipelineError
            For a grouping column the run's images table lacks.
        """
        results = self.results
        if results is None:
            return pd.DataFrame(), []
        text = str(self.group_by.value or "").strip()
        group_by = [c.strip() for c in text.split(",") if c.strip()] if text else None
        table, keys = run_summary(results, group_by)
        if group_by is None and results.layout.summary_table.is_file():
            table = read_summary(results.layout.summary_table)
        return table, keys

    def _show_table(self) -> None:
        try:
            frame = self.table_frame()
        except PipelineError as error:
            self.status.value = str(error)
            frame = pd.DataFrame()
        self.model.set_frame(frame)
        self.table.resizeColumnsToContents()

    def _on_group_by_changed(self) -> None:
        if self.table_choice.value == SUMMARY:
            self._show_table()
        if self.plot_kind.value in (BY_GROUP, PARAMETER_BY_GROUP):
            self.draw()

    # -- copy and save ------------------------------------------------------------------

    def copy(self) -> str:
        """Put the table on the clipboard as tab-separated text (pastes into a spreadsheet)."""
        text = self.frame.to_csv(sep="\t", index=False)
        clipboard = QApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(text)
        self.status.value = f"copied {len(self.frame)} rows"
        return text

    def save_csv(self, path: str | Path) -> Path:
        """Write the table shown to ``path`` as CSV."""
        path = Path(path)
        self.frame.to_csv(path, index=False)
        self.status.value = f"saved {path.name}"
        return path

    def _on_save_clicked(self) -> None:
        name = f"{self.table_choice.value}.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Save table", name, "CSV (*.csv)")
        if path:
            try:
                self.save_csv(path)
            except OSError as error:
                show_error(f"cannot save {path}: {error}")

    # -- plots --------------------------------------------------------------------------

    def _on_plot_kind_changed(self) -> None:
        """Offer the measurements the chosen plot can show, then draw it."""
        kind = self.plot_kind.value
        results = self.results
        choices: list[str] = []
        if results is not None:
            if kind == "histogram":
                for stage in results.table_stages:
                    table = results.table(stage)
                    choices += [f"{stage}: {c}" for c in measurement_columns(table, results.pipeline)]
            elif kind == "against a parameter":
                choices = measurement_columns(results.images, results.pipeline)
            elif kind in (BY_GROUP, PARAMETER_BY_GROUP):
                choices = image_measurements(results.images, results.table_stages)
            elif kind == PLATE_MAP:
                choices = plate_measurements(results)
            else:
                choices = [f"{stage}.count" for stage in results.table_stages]
        with self.measurement.changed.blocked():
            self.measurement.choices = []  # magicgui keeps the places of choices it had
            self.measurement.choices = choices
            if kind == PLATE_MAP and choices:  # the screen's readout, listed first
                self.measurement.value = choices[0]
        with self.parameter.changed.blocked():  # a parameter by group: any parameter column
            every = kind == PARAMETER_BY_GROUP and results is not None
            self.parameter.choices = (
                (results.all_param_columns if every else results.param_columns) if results is not None else []
            )
        self.parameter.visible = kind in ("against a parameter", PARAMETER_BY_GROUP)
        with self.plate.changed.blocked():
            self.plate.choices = plate_choices(results) if results is not None and kind == PLATE_MAP else []
        self.plate.visible = kind == PLATE_MAP
        self.draw()

    def draw(self) -> Figure:
        """Draw the chosen plot; return the figure."""
        figure, results = self.figure, self.results
        figure.clear()
        message = ""
        if results is None:
            message = "open a run folder"
        elif not self.measurement.value:
            message = "no measurements: the pipeline has no table stage"
        else:
            kind = self.plot_kind.value
            try:
                if kind == "objects per image":
                    _draw_counts(figure, results, str(self.measurement.value).removesuffix(".count"))
                elif kind == "histogram":
                    stage, _, column = str(self.measurement.value).partition(": ")
                    _draw_histogram(figure, results.table(stage), stage, column)
                elif kind == BY_GROUP:
                    self._draw_by_group(figure, str(self.measurement.value))
                elif kind == PLATE_MAP and not self.plate.value:
                    message = "no plate map: the run's images have no well (a metadata field or annotation)"
                elif kind == PLATE_MAP:
                    draw_plate_map(figure, results, str(self.plate.value), str(self.measurement.value))
                elif kind == PARAMETER_BY_GROUP and not self.parameter.value:
                    message = "no parameter column: the run has neither a sweep nor a parameter table"
                elif kind == PARAMETER_BY_GROUP:
                    self._draw_against_parameter(
                        figure, str(self.parameter.value), str(self.measurement.value)
                    )
                elif not self.parameter.value:
                    message = "no swept parameter: run a batch with a sweep"
                else:
                    figure = self._draw_sweep(results, self.parameter.value, self.measurement.value)
            except ValueError as error:
                message = str(error)
        if message:
            figure.clear()
            figure.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
        self.status.value = message
        self.canvas.draw_idle()
        return figure

    def show_well(self, x: float, y: float) -> list[Any]:
        """Show the images of the plate map's well at ``(x, y)`` (column and row from 0) in
        the viewer, with their saved outputs; the layers of the previous well are removed."""
        if self.results is None or self.viewer is None or self.plot_kind.value != PLATE_MAP:
            return []
        for layer in self.well_layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        rows = well_images(self.results, str(self.plate.value), x, y)
        self.well_layers = well_layers(self.viewer, self.results, rows)
        return self.well_layers

    def _on_canvas_clicked(self, event: Any) -> None:
        if event.inaxes is not None and event.xdata is not None and event.ydata is not None:
            self.show_well(event.xdata, event.ydata)

    def _draw_by_group(self, figure: Figure, measurement: str) -> None:
        assert self.results is not None
        group_by = self.summary()[1]
        draw_by_group(
            figure, values_by_group(self.results.images, measurement, group_by), measurement, group_by
        )

    def _draw_against_parameter(self, figure: Figure, parameter: str, measurement: str) -> None:
        assert self.results is not None
        group_by = self.summary()[1]
        points = parameter_points(self.results.images, parameter, measurement, group_by)
        draw_against_parameter(figure, points, parameter, measurement, group_by)

    def _draw_sweep(self, results: RunResults, parameter: str, measurement: str) -> Figure:
        """The sweep plot of the command line (``sweep.png``), shown in the canvas."""
        figure = sweep_figure(results.images, parameter, measurement)
        figure.set_dpi(self.figure.get_dpi())
        width, height = self.figure.get_size_inches()
        figure.set_size_inches(float(width), float(height))
        for axes in figure.axes:  # the dock is narrower than the command line's PNG
            axes.title.set_fontsize("small")
        figure.set_canvas(self.canvas)
        self.canvas.figure = figure
        self.figure = figure
        return figure


def show_results(viewer: Any, view: ResultsView | None, run_folder: Path) -> ResultsView | None:
    """Show a run folder's tables and plots in ``view``, or in a new docked view when it is
    None or closed; return the view (None, the error shown, if the folder cannot be read)."""
    try:
        if view is None or not alive(view):
            view = ResultsView(viewer)
            viewer.window.add_dock_widget(view, name="Batch results", area="right")
            join_home(view)
        view.load(run_folder)
    except PipelineError as error:
        show_error(str(error))
        return None
    return view


def _draw_counts(figure: Figure, results: RunResults, stage: str) -> None:
    counts = object_counts(results.images, stage, results.param_columns)
    axes = figure.add_subplot()
    if len(counts) <= _MAX_BARS:
        axes.bar(range(len(counts)), counts["count"], color="C0")
        axes.set_xticks(range(len(counts)), counts["name"], rotation=90, fontsize=7)
    else:
        axes.plot(range(len(counts)), counts["count"], ".", color="C0")
        axes.set_xlabel("task (images.csv order)")
    axes.set_ylabel("objects")
    axes.set_title(f"{stage}: objects per image ({len(counts)} done)")


def _draw_histogram(figure: Figure, table: pd.DataFrame, stage: str, column: str) -> None:
    values = measurement_values(table, column)
    axes = figure.add_subplot()
    axes.hist(values, bins=min(50, max(5, int(np.sqrt(len(values))))), color="C0")
    axes.set_xlabel(column)
    axes.set_ylabel("objects")
    axes.set_title(f"{stage}: {column} ({len(values)} objects)")


def _screen_tables(results: RunResults) -> tuple[Path, ...]:
    """A screen's conclusion tables: Z' per plate, the z-scores, the wells."""
    layout = results.layout
    return (layout.assay_table, layout.normalized_table, layout.wells_table)
