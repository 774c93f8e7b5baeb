"""The batch widget around a run: a row clicked while it runs, the viewer closed mid-run,
messages that go when the fields change, and a tuned pipeline run into the last folder."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest

from napari_batch_pipeline._widgets.batch import widget as batch_module
from napari_batch_pipeline.core.engine.events import RunStarted, TaskFinished
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import write_nuclei_folder


@pytest.fixture
def held_run(monkeypatch):
    """``held_run(widget)``: the widget's engine waits after its first task until
    ``release`` is set; returns ``(shown, release)``: ``shown`` is set once that task's row
    is in the table."""
    from napari_batch_pipeline._widgets.batch import widget as batch_module

    events_then_layers = batch_module.events_then_layers

    def hold(widget):
        shown, release = threading.Event(), threading.Event()

        def held_after_first_task(batch):
            for event in events_then_layers(batch):
                yield event
                if isinstance(event, TaskFinished) and not release.is_set():
                    assert release.wait(timeout=120), "not released"

        def on_event(event):
            if isinstance(event, TaskFinished):
                shown.set()

        monkeypatch.setattr(batch_module, "events_then_layers", held_after_first_task)
        widget.engine_event.connect(on_event)
        return shown, release

    return hold


@pytest.fixture
def many_images(tmp_path: Path) -> Path:
    write_nuclei_folder(tmp_path / "many", count=12)
    return tmp_path / "many"


def test_a_row_clicked_while_the_batch_runs_shows_the_task_with_its_objects(
    make_batch_widget, many_images, held_run, qtbot
):
    widget = make_batch_widget(many_images)
    shown, release = held_run(widget)
    widget.start()
    qtbot.waitUntil(shown.is_set, timeout=120_000)
    assert widget.running and widget.table.rowCount() == 1

    layers = widget.show_row(0)  # raised "... is not a run folder" before

    labels = layers[-1]
    assert labels.name.endswith("labels")
    # the task's objects from its own part of nuclei.csv, written by its worker
    assert len(labels.features) == len(set(labels.data.ravel()) - {0}) > 5
    assert list(labels.features["index"]) == sorted(set(labels.data.ravel()) - {0})
    release.set()
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    assert widget.report is not None and widget.report.done == 12


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_closing_the_viewer_mid_run_cancels_the_run_cleanly(
    make_batch_widget, many_images, held_run, qtbot, tmp_path, executor
):
    widget = make_batch_widget(many_images, executor=executor)
    widget.workers.value = 2
    shown, release = held_run(widget)
    widget.start()
    qtbot.waitUntil(shown.is_set, timeout=120_000)
    # the engine waits until released: the window closes meanwhile, as a user closes it
    threading.Timer(0.5, release.set).start()

    widget.viewer.close()

    out = tmp_path / "out"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "cancelled"  # was "running", with no tables and a lock left
    assert not (out / ".lock").exists()
    images = pd.read_csv(out / "images.csv")
    assert 1 <= (images["status"] == "done").sum() < 12


def test_a_message_about_the_fields_goes_when_they_change(make_batch_widget, tmp_path, many_images):
    empty = tmp_path / "empty"
    empty.mkdir()
    widget = make_batch_widget(empty)
    widget.run_button.native.click()
    assert "no files" in widget.status.value
    # a folder without subfolders: looking in subfolders is no advice
    assert "subfolders" not in widget.status.value and "recursive" not in widget.status.value

    widget.input_dir.value = many_images

    assert widget.status.value == ""


def test_a_tuned_pipeline_run_into_the_last_folder_gets_a_folder_of_its_own(
    make_batch_widget, image_folder, tmp_path, run_to_end, pipeline_yaml, qtbot, monkeypatch
):
    widget = make_batch_widget(image_folder)
    assert run_to_end(widget).done == 6
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(pipeline_yaml.replace("sigma: 2", "sigma: 3"), encoding="utf-8")
    assert "sigma: 3" in tuned.read_text()
    widget.pipeline.value = tuned
    shown: dict[str, list[str]] = {"info": [], "error": []}
    monkeypatch.setattr(batch_module, "show_info", shown["info"].append)
    monkeypatch.setattr(batch_module, "show_error", shown["error"].append)

    widget.run_button.native.click()  # refused: "holds a run of a different pipeline"

    # an offer, not an error: a notice, never a red toast
    assert shown["error"] == [] and "holds a run of another pipeline" in shown["info"][0]

    version = tmp_path / f"out-{Pipeline.from_yaml(tuned).hash[:8]}"
    assert Path(widget.output_dir.value) == version
    assert repr(version.name) in widget.status.value and not widget.running
    with qtbot.waitSignal(widget.run_finished, timeout=300_000) as blocker:
        widget.run_button.native.click()  # as offered
    assert blocker.args[0].done == 6
    assert Pipeline.from_yaml(version / "pipeline.yaml").hash == Pipeline.from_yaml(tuned).hash
    # the first run is untouched, and running this version again resumes its own folder
    assert Pipeline.from_yaml(tmp_path / "out" / "pipeline.yaml").hash != Pipeline.from_yaml(tuned).hash
    assert run_to_end(widget).skipped == 6


def test_the_results_say_which_image_is_on_screen(make_batch_widget, tmp_path, run_to_end):
    long_names = tmp_path / "long"
    for index, path in enumerate(write_nuclei_folder(tmp_path / "plain", count=4)):
        long_names.mkdir(exist_ok=True)
        path.rename(long_names / f"17P1_POS000{index}_plate_A01_field_{index:02d}_nuclei.tif")
    widget = make_batch_widget(long_names)
    run_to_end(widget)
    viewer, table = widget.viewer, widget.table

    # the stacks' slider is named, and the text overlay names the image shown
    assert viewer.dims.axis_labels[0] == "image"
    viewer.dims.set_current_step(0, 2)
    overlay = viewer.canvas.overlays["text"]
    assert overlay.visible
    assert overlay.text.startswith("17P1_POS0002_plate_A01_field_02_nuclei.tif")
    assert viewer.layers.selection.active is widget.layer_queue.layers[-1]
    # image names are not cut short; no empty parameters column before the measurements
    name_width = table.fontMetrics().horizontalAdvance(table.text(0, "image"))
    assert table.columnWidth(0) >= name_width
    assert table.isColumnHidden(table.columns.index("parameters"))
    assert not table.isColumnHidden(table.columns.index("nuclei.count"))


def test_the_worker_processes_start_when_the_widget_is_shown(make_napari_viewer, qtbot):
    from napari_batch_pipeline._widgets.batch.widget import BatchWidget
    from napari_batch_pipeline.core.engine import process_pool

    viewer = make_napari_viewer(show=True)
    widget = BatchWidget(viewer)
    widget.executor.value, widget.workers.value = "processes", 2
    process_pool._POOLS.pop((2, process_pool.NICE), None)

    viewer.window.add_dock_widget(widget)  # shown: the first Run need not start them

    warming = lambda: widget.warming is not None and not widget.warming.thread.is_alive()  # noqa: E731
    qtbot.waitUntil(warming, timeout=60_000)
    pool = process_pool._POOLS[(2, process_pool.NICE)]
    qtbot.waitUntil(lambda: len(pool._processes or {}) == 2, timeout=60_000)
    assert widget.worker is None  # nothing has run


def test_the_first_run_does_not_wait_for_starting_workers(batch_widget, run_to_end):
    """Run clicked before a warm-up worker is ready: threads now; once one is, processes."""
    from concurrent import futures

    from napari_batch_pipeline._widgets.batch.warm_up import WarmUp

    widget = batch_widget
    widget.executor.value = "auto"
    starting: futures.Future = futures.Future()  # a worker that has not finished its imports
    widget.warming = WarmUp(threading.Thread(target=lambda: None), [starting])
    started = []
    widget.engine_event.connect(
        lambda event: started.append((event, widget.status.value)) if isinstance(event, RunStarted) else None
    )
    report = run_to_end(widget)
    assert report.failed == 0
    event, status = started[0]
    assert event.executor == "threads" and "still starting" in event.executor_reason
    assert "worker processes are still starting" in status  # says why threads

    starting.set_result(None)  # a worker is ready: the next run takes the niced processes
    assert not widget.warming.workers_starting
    batch = widget.make_batch()
    assert batch.options.executor == "processes" and batch.options.low_priority


def test_a_count_that_is_always_one_does_not_clutter_the_table_or_the_plate_map(
    make_batch_widget, image_folder, pipeline_yaml, tmp_path, run_to_end
):
    from napari_batch_pipeline._widgets.results.plate_view import plate_measurements
    from napari_batch_pipeline.core.run_folder.reader import RunResults

    with_quality = tmp_path / "quality.yaml"
    with_quality.write_text(
        pipeline_yaml + "  - {name: quality, function: image_quality, inputs: {image: input}}\n",
        encoding="utf-8",
    )
    widget = make_batch_widget(image_folder)
    widget.pipeline.value = with_quality
    run_to_end(widget)
    table = widget.table
    # image_quality gives one row per image: its count is 1 for every image, and hidden
    assert table.isColumnHidden(table.columns.index("quality.count"))
    assert not table.isColumnHidden(table.columns.index("quality.mean_focus_score"))
    assert not table.isColumnHidden(table.columns.index("nuclei.count"))
    choices = plate_measurements(RunResults(tmp_path / "out"))
    assert "quality.count" not in choices
    assert {"nuclei.count", "quality.mean_focus_score"} <= set(choices)


def test_after_a_row_click_the_corner_names_the_clicked_image(batch_widget, run_to_end):
    widget = batch_widget
    run_to_end(widget)
    viewer = widget.viewer
    overlay = viewer.canvas.overlays["text"]
    viewer.dims.set_current_step(0, 0)
    stack_text = overlay.text
    row = next(
        r for r in range(widget.table.rowCount()) if not stack_text.startswith(widget.table.text(r, 0))
    )
    clicked = widget.table.text(row, "image")
    layers = widget.show_row(row)
    assert layers and overlay.visible
    assert overlay.text.startswith(clicked) and "clicked" in overlay.text
    viewer.dims.set_current_step(0, 2)  # the slider: the stack's image again
    assert not overlay.text.endswith("clicked)")


def test_a_measurement_constant_over_the_images_is_hidden_and_not_offered(
    make_batch_widget, tmp_path, run_to_end
):
    import shutil

    from napari_batch_pipeline._widgets.results.plate_view import plate_measurements
    from napari_batch_pipeline.core.run_folder.reader import RunResults
    from napari_batch_pipeline.core.synthetic import write_nuclei_folder

    # three copies of one image: every measurement has one value
    write_nuclei_folder(tmp_path / "one", count=1)
    (first,) = sorted((tmp_path / "one").iterdir())
    same = tmp_path / "same"
    same.mkdir()
    for index in range(3):
        shutil.copy(first, same / f"copy_{index}.tif")
    widget = make_batch_widget(same)
    run_to_end(widget)
    table = widget.table
    hidden = {column for position, column in enumerate(table.columns) if table.isColumnHidden(position)}
    # every image alike: the mean area says nothing; an object count that is no 1 stays
    assert "nuclei.mean_area" in hidden and "nuclei.count" not in hidden
    assert not {"image", "status", "seconds"} & hidden
    choices = plate_measurements(RunResults(tmp_path / "out"))
    assert "nuclei.mean_area" not in choices and "nuclei.count" in choices
