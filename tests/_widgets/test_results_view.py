"""The Batch results view: tables to copy and save, and plots of a run."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from qtpy.QtWidgets import QApplication

from napari_batch_pipeline import run_batch
from napari_batch_pipeline._widgets.results import ResultsView
from napari_batch_pipeline.core.run_folder.reader import RunResults


@pytest.fixture
def sweep_run(image_folder, pipeline, tmp_path):
    """A run of the DESIGN pipeline over six images with blurred.sigma swept over 1 and 3."""
    run_batch(pipeline, image_folder, tmp_path / "run", sweep={"blurred.sigma": [1, 3]})
    return tmp_path / "run"


@pytest.fixture
def view(qtbot, sweep_run):
    widget = ResultsView(run_folder=sweep_run)
    qtbot.addWidget(widget)
    return widget


def test_tables_show_copy_and_save(view, sweep_run, tmp_path):
    objects = pd.read_csv(sweep_run / "nuclei.csv")
    assert view.table_choice.choices == ("images", "nuclei")
    assert view.table_choice.value == "nuclei"
    assert view.model.rowCount() == len(objects) and view.model.columnCount() == len(objects.columns)

    view.table_choice.value = "images"
    assert view.model.rowCount() == 12
    text = view.copy()
    assert QApplication.clipboard().text() == text
    pd.testing.assert_frame_equal(
        pd.read_csv(io.StringIO(text), sep="\t"), pd.read_csv(sweep_run / "images.csv")
    )
    saved = view.save_csv(tmp_path / "copy.csv")
    pd.testing.assert_frame_equal(pd.read_csv(saved), pd.read_csv(sweep_run / "images.csv"))


def test_objects_per_image(view, sweep_run):
    view.plot_kind.value = "objects per image"
    assert view.measurement.value == "nuclei.count"
    (axes,) = view.figure.axes
    heights = [bar.get_height() for bar in axes.patches]
    np.testing.assert_array_equal(heights, pd.read_csv(sweep_run / "images.csv")["nuclei.count"])
    assert axes.get_xticklabels()[1].get_text() == "nuclei_01.tif [blurred.sigma=3.0]"


def test_histogram_of_a_measurement(view, sweep_run):
    view.plot_kind.value = "histogram"
    assert "nuclei: area" in view.measurement.choices
    view.measurement.value = "nuclei: area"
    (axes,) = view.figure.axes
    assert sum(bar.get_height() for bar in axes.patches) == len(pd.read_csv(sweep_run / "nuclei.csv"))
    assert axes.get_xlabel() == "area"


def test_a_measurement_against_the_swept_parameter(view, sweep_run):
    view.plot_kind.value = "against a parameter"
    assert view.parameter.value == "blurred.sigma"
    view.measurement.value = "nuclei.mean_area"
    (axes,) = view.figure.axes
    (mean,) = [line for line in axes.lines if line.get_gid() == "mean"]
    images = pd.read_csv(sweep_run / "images.csv")
    expected = images.groupby("blurred.sigma")["nuclei.mean_area"].mean()
    np.testing.assert_allclose(mean.get_xdata(), [1.0, 3.0])
    np.testing.assert_allclose(mean.get_ydata(), expected.to_numpy())
    assert view.canvas.figure is view.figure


def test_a_run_without_a_sweep_says_so(qtbot, image_folder, pipeline, tmp_path):
    run_batch(pipeline, image_folder, tmp_path / "plain")
    view = ResultsView(run_folder=tmp_path / "plain")
    qtbot.addWidget(view)
    view.plot_kind.value = "against a parameter"
    assert "no swept parameter" in view.status.value
    assert RunResults(tmp_path / "plain").param_columns == []


def test_the_batch_widget_opens_the_results_of_its_run(batch_widget, run_to_end):
    widget = batch_widget
    assert not widget.results_button.enabled
    run_to_end(widget)
    assert widget.results_button.enabled
    widget.results_button.changed.emit(True)
    view = widget.results_view
    assert view is not None and view.results.path == (widget.batch.folder.path)
    assert view.model.rowCount() == len(widget.report.tables["nuclei"])


def test_batch_results_opens_from_the_plugins_menu(make_napari_viewer, sweep_run):
    viewer = make_napari_viewer()
    _, view = viewer.window.add_plugin_dock_widget("napari-batch-pipeline", "Batch results")
    assert isinstance(view, ResultsView)
    view.folder.value = sweep_run
    assert view.results is not None and view.model.rowCount() > 0
