"""The Batch results view: tables to copy and save, and plots of a run."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from qtpy.QtWidgets import QApplication

from napari_batch_pipeline import run_batch
from napari_batch_pipeline._widgets.results.view import ResultsView
from napari_batch_pipeline.core.results.summary import summary_table
from napari_batch_pipeline.core.run_folder.reader import RunResults
from napari_batch_pipeline.core.synthetic import write_nuclei_folder


@pytest.fixture
def sweep_run(image_folder, pipeline, tmp_path):
    """A run of the DESIGN pipeline over six images with blurred.sigma swept over 1 and 3."""
    run_batch(pipeline, image_folder, tmp_path / "run", sweep={"blurred.sigma": [1, 3]})
    return tmp_path / "run"


@pytest.fixture
def open_view(qtbot):
    """``open_view(run_folder)``: a ResultsView showing it."""

    def open_folder(run_folder):
        widget = ResultsView(run_folder=run_folder)
        qtbot.addWidget(widget)
        return widget

    return open_folder


@pytest.fixture
def view(open_view, sweep_run):
    return open_view(sweep_run)


def test_tables_show_copy_and_save(view, sweep_run, tmp_path):
    objects = pd.read_csv(sweep_run / "nuclei.csv")
    assert view.table_choice.choices == ("images", "nuclei", "summary")
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


# -- many datasets: the summary by group and its plots --------------------------------------


@pytest.fixture
def datasets_run(tmp_path, pipeline):
    """Dataset folders ``a`` (three images, blurred.sigma 1) and ``b`` (two, sigma 3)
    through a parameter table, in one run grouped by folder."""
    folder = tmp_path / "datasets"
    write_nuclei_folder(folder / "a", count=3, seed=0, shape=(96, 96), n_nuclei=6, radius=6)
    write_nuclei_folder(folder / "b", count=2, seed=7, shape=(96, 96), n_nuclei=9, radius=5)
    table = tmp_path / "params.csv"
    table.write_text("folder,blurred.sigma\na,1\nb,3\n", encoding="utf-8")
    report = run_batch(pipeline, folder, tmp_path / "run", recursive=True, params=table, executor="serial")
    assert report.done == 5
    return tmp_path / "run"


@pytest.fixture
def datasets_view(open_view, datasets_run):
    return open_view(datasets_run)


def test_the_summary_table_is_summary_csv_and_regroups(datasets_view, datasets_run):
    view = datasets_view
    assert view.table_choice.choices[-1] == "summary"
    view.table_choice.value = "summary"
    summary = pd.read_csv(datasets_run / "summary.csv")
    pd.testing.assert_frame_equal(view.frame, summary)
    assert list(summary["folder"]) == ["a", "b"] and view.model.rowCount() == 2

    images = pd.read_csv(datasets_run / "images.csv")
    view.group_by.value = "blurred.sigma"  # as `summarize --group-by blurred.sigma`
    expected = summary_table(images, ["nuclei"], ["blurred.sigma"])
    pd.testing.assert_frame_equal(view.frame, expected)
    means = images.groupby("blurred.sigma")["nuclei.mean_area"]
    np.testing.assert_allclose(view.frame["nuclei.area.mean"], means.mean())
    np.testing.assert_allclose(view.frame["nuclei.area.sd"], means.std(ddof=1))

    view.group_by.value = "plate"  # refused in the words of the command line, no traceback
    assert "group by 'plate'" in view.status.value and view.model.rowCount() == 0


def test_a_measurement_by_group_has_a_box_per_group_and_a_point_per_image(datasets_view, datasets_run):
    view = datasets_view
    view.plot_kind.value = "by group"
    assert (
        view.measurement.choices[:1] == ("nuclei.count",) and "nuclei.mean_area" in view.measurement.choices
    )
    view.measurement.value = "nuclei.mean_area"
    (axes,) = view.figure.axes
    boxes = [artist for artist in axes.get_children() if artist.get_gid() == "boxes"]
    assert len(boxes) == 2
    assert [tick.get_text() for tick in axes.get_xticklabels()] == ["a", "b"]
    images = pd.read_csv(datasets_run / "images.csv")
    for folder in ("a", "b"):
        (points,) = [line for line in axes.lines if line.get_gid() == f"images:{folder}"]
        expected = images.loc[images["folder"] == folder, "nuclei.mean_area"]
        np.testing.assert_allclose(points.get_ydata(), expected)
    assert view.canvas.figure is view.figure


def test_a_measurement_against_a_table_parameter_is_coloured_by_group(datasets_view, datasets_run):
    view = datasets_view
    view.plot_kind.value = "against a parameter, by group"
    assert view.parameter.choices == ("blurred.sigma",)  # from the parameter table, not swept
    view.measurement.value = "nuclei.count"
    (axes,) = view.figure.axes
    images = pd.read_csv(datasets_run / "images.csv")
    colours = set()
    for folder, sigma in (("a", 1.0), ("b", 3.0)):
        (points,) = [line for line in axes.lines if line.get_gid() == folder]
        rows = images[images["folder"] == folder]
        np.testing.assert_allclose(points.get_xdata(), [sigma] * len(rows))
        np.testing.assert_allclose(points.get_ydata(), rows["nuclei.count"])
        colours.add(points.get_color())
    assert len(colours) == 2
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["a", "b"]
