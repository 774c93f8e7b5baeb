"""The Batch processing widget: a folder run to the end, cancelled, resumed, clicked, timed."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
from napari.layers import Image, Labels
from qtpy.QtCore import Qt, QTimer

from napari_batch_pipeline.core.engine.events import RunFinished, TaskFinished
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.synthetic import write_nuclei_folder

PLUGIN = "napari-batch-pipeline"


def test_batch_runs_a_folder_fills_the_table_and_loads_results(
    batch_widget, qtbot, image_folder, tmp_path, run_to_end
):
    (image_folder / "broken.tif").write_bytes(b"")  # fails alone, listed with its message
    widget = batch_widget
    report = run_to_end(widget)

    assert (report.done, report.failed) == (6, 1)
    assert widget.table.rowCount() == 7
    headers = list(widget.table.columns)
    assert headers[:4] == ["image", "parameters", "status", "seconds"]
    assert "nuclei.count" in headers and headers[-1] == "error"
    rows = {widget.table.text(r, 0): widget.table.text(r, "status") for r in range(widget.table.rowCount())}
    assert rows["broken.tif"] == "failed"
    assert sum(status == "done" for status in rows.values()) == 6
    assert widget.failures[0][0] == "broken.tif" and "empty" in widget.failures[0][1]
    assert "1 failed" in widget.status.value and "broken.tif" in widget.status.value
    assert widget.progress_bar.value == 7

    # saved outputs come back as one lazy stack per saved stage, plus the inputs
    viewer = widget.viewer
    labels = viewer.layers["out: labels"]
    assert isinstance(labels, Labels)
    assert isinstance(labels.data, da.Array) and labels.data.shape == (6, 256, 256)
    third = tifffile.imread(tmp_path / "out" / "labels" / "nuclei_03.tif")
    np.testing.assert_array_equal(np.asarray(labels.data[2]), third)
    inputs = viewer.layers["out: input"]
    assert isinstance(inputs, Image) and inputs.data.shape == (6, 256, 256)
    assert labels.metadata["names"][2] == "nuclei_03.tif"
    assert len(labels.metadata["images"]) == 7


def test_clicking_a_row_shows_that_image_with_its_labels(batch_widget, qtbot, image_folder, run_to_end):
    widget = batch_widget
    run_to_end(widget)
    table = widget.table
    row = next(r for r in range(table.rowCount()) if table.text(r, 0) == "nuclei_04.tif")
    center = table.cell_rect(row, 0).center()
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=center)

    viewer = widget.viewer
    image = viewer.layers["out: nuclei_04.tif"]
    labels = viewer.layers["out: nuclei_04.tif labels"]
    np.testing.assert_array_equal(image.data, tifffile.imread(image_folder / "nuclei_04.tif"))
    assert isinstance(labels, Labels) and labels.data.max() > 5
    assert labels.metadata["image"] == "nuclei_04.tif"

    # another row replaces them
    other = (row + 1) % table.rowCount()
    widget.show_row(other)
    assert "out: nuclei_04.tif" not in viewer.layers
    assert f"out: {table.text(other, 0)} labels" in viewer.layers


def test_a_sweep_gives_one_row_per_parameter_set_and_shows_its_outputs(batch_widget, qtbot, run_to_end):
    widget = batch_widget
    widget.sweep.value = "blurred.sigma=1,3\n"
    report = run_to_end(widget)
    assert report.done == 12 and widget.table.rowCount() == 12
    labels = {widget.table.text(r, 1) for r in range(12)}
    assert labels == {"blurred.sigma=1.0", "blurred.sigma=3.0"}
    row = next(r for r in range(12) if widget.table.text(r, 1) == "blurred.sigma=3.0")
    layers = widget.show_row(row)
    assert [layer.name.split("] ")[-1] for layer in layers] == [layers[0].name, "labels"]
    assert "[blurred.sigma=3.0]" in layers[0].name
    assert widget.viewer.layers["out: labels"].data.shape[0] == 12


def test_cancel_stops_midway_cleanly_and_the_run_resumes(
    make_napari_viewer, qtbot, pipeline_file, tmp_path, run_to_end, monkeypatch
):
    from napari_batch_pipeline._widgets.batch import widget as batch_module

    write_nuclei_folder(tmp_path / "many", count=30)
    viewer = make_napari_viewer()
    widget = batch_module.BatchWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.input_dir.value = tmp_path / "many"
    widget.output_dir.value = tmp_path / "out"
    widget.pipeline.value = pipeline_file
    widget.executor.value = "serial"

    # The engine waits after its first task until Cancel has been clicked: the table shows
    # rows in batches (every 0.1 s), by when a fast machine could have run all 30 tasks.
    clicked = threading.Event()
    events_then_layers = batch_module.events_then_layers

    def held_after_first_task(batch):
        for event in events_then_layers(batch):
            yield event
            if isinstance(event, TaskFinished) and not clicked.is_set():
                assert clicked.wait(timeout=120), "the first row was not shown"

    def click_cancel(event):
        if isinstance(event, TaskFinished) and not clicked.is_set():  # its row is shown
            widget.cancel()
            clicked.set()

    monkeypatch.setattr(batch_module, "events_then_layers", held_after_first_task)
    widget.engine_event.connect(click_cancel)
    report = run_to_end(widget)

    assert report is not None, widget.status.value
    assert report.cancelled
    assert 1 <= report.done < 30
    assert "cancelled" in widget.status.value
    # temporary files are named .<stem>.<random>.part<suffix>; .parts/ is the ledger of table rows
    assert [p for p in (tmp_path / "out").rglob("*.part*") if p.is_file()] == []
    assert widget.run_button.enabled and not widget.cancel_button.enabled

    widget.engine_event.disconnect(click_cancel)
    monkeypatch.undo()
    resumed = run_to_end(widget)
    assert resumed is not None, widget.status.value
    assert not resumed.cancelled
    assert resumed.skipped == report.done
    assert resumed.done + resumed.skipped == 30
    assert widget.viewer.layers["out: labels"].data.shape[0] == 30
    # the tasks done before the cancel are rows too (only the new ones were listed)
    assert widget.table.rowCount() == 30
    assert sorted(task.index for task in widget.table.tasks) == list(range(30))


def test_the_event_loop_stays_responsive_during_a_batch(batch_widget, qtbot, tmp_path, run_to_end):
    """The viewer's event loop keeps running throughout a batch: the engine is off the main thread.

    A 10 ms QTimer ticks in the main thread from the click on Run until the engine's
    RunFinished is shown; the longest gap between ticks is the longest stall. A batch
    run on the main thread would stall for its whole length; here the loop must tick all
    along, the longest gap a small share of the batch. The DESIGN target itself (no stall
    over 100 ms, median tick under 20 ms) is a timing, measured by the benchmarks, not
    asserted here: on these shared two-core machines the background load alone can hold
    the main thread for longer (the figures are printed). Adding the result layers
    afterwards is measured and printed too.
    """
    folder = tmp_path / "large"
    for path in write_nuclei_folder(folder, count=8, shape=(512, 512), n_nuclei=80):
        for copy in range(1, 10):  # 80 images, made quickly
            shutil.copyfile(path, path.with_name(f"{path.stem}_copy{copy}.tif"))
    widget = batch_widget
    widget.input_dir.value = folder
    finished_at: list[float] = []
    widget.engine_event.connect(
        lambda event: finished_at.append(time.perf_counter()) if isinstance(event, RunFinished) else None
    )

    def longest_gaps(output: Path) -> tuple[float, float]:
        widget.output_dir.value = output
        ticks: list[float] = []
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start()
        qtbot.wait(50)
        try:
            report = run_to_end(widget)
        finally:
            timer.stop()
        assert report.done == 80
        times = np.array(ticks)
        gaps = np.diff(times)
        during = gaps[times[1:] <= finished_at[-1] + 0.010]
        after = gaps[times[1:] > finished_at[-1]]
        print(
            f"\nlongest event-loop gap during a {report.seconds:.2f} s batch of 80 images: "
            f"{during.max() * 1000:.1f} ms, median {np.median(during) * 1000:.1f} ms ({len(during)} ticks); "
            f"while adding the result layers: {after.max() * 1000 if len(after) else 0:.1f} ms"
        )
        # a batch on the main thread would give a few ticks and one gap as long as the batch
        assert len(during) >= 20, f"the event loop ticked {len(during)} times in {report.seconds:.1f} s"
        assert np.median(during) < 0.050, f"median tick {np.median(during) * 1000:.0f} ms"
        assert during.max() < 0.5 * report.seconds, f"a stall of {during.max():.2f} s"
        return float(during.max()), report.seconds

    longest_gaps(tmp_path / "out1")


def test_a_finished_folder_run_again_lists_every_task(batch_widget, run_to_end):
    # Re-running a finished folder showed "0 done, 6 resumed" and an empty table.
    first = run_to_end(batch_widget)
    assert first is not None and first.done == 6
    again = run_to_end(batch_widget)
    assert again is not None and again.skipped == 6 and again.done == 0
    table = batch_widget.table
    assert table.rowCount() == 6
    assert [table.text(row, "status") for row in range(6)] == ["done"] * 6


def test_estimate_shows_memory_and_time(batch_widget, qtbot):
    from napari_batch_pipeline.core.engine import process_pool

    widget = batch_widget
    widget.executor.value = "processes"
    pools = dict(process_pool._POOLS)
    worker = widget.estimate()
    qtbot.waitUntil(lambda: "task(s)" in widget.estimate_text.value, timeout=30_000)
    assert worker is widget.estimate_worker
    assert "6 task(s)" in widget.estimate_text.value and "memory" in widget.estimate_text.value
    # Estimate uses the plan alone: the batch's workers are not started, nothing is written
    # (the first image is measured in a worker process of its own)
    assert (2, process_pool.NICE) not in set(process_pool._POOLS) - set(pools)
    assert not Path(widget.output_dir.value).exists()


def test_bad_fields_raise_from_python_and_show_in_the_widget(batch_widget, qtbot, tmp_path):
    widget = batch_widget
    widget.sweep.value = "blurred.sigmaa=1,2"
    with pytest.raises(PipelineError, match="sigmaa"):
        widget.start()
    assert widget.worker is None
    widget.sweep.value = ""
    widget.input_dir.value = tmp_path / "missing"
    widget.run_button.changed.emit(True)
    assert "does not exist" in widget.status.value
    assert widget.run_button.enabled


def test_batch_processing_opens_from_the_plugins_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch processing")
    viewer.add_image(np.zeros((4, 4)), name="probe")
    assert "probe" in widget.viewer.layers  # napari hands plugins a proxy of the viewer
    assert widget.executor.value == "auto"  # niced worker processes beside the viewer


def test_auto_runs_niced_worker_processes_beside_the_viewer(batch_widget, run_to_end):
    batch_widget.executor.value = "auto"
    report = run_to_end(batch_widget)
    assert report is not None and report.done == 6
    info = json.loads((report.output_dir / "run.json").read_text(encoding="utf-8"))
    assert info["executor"] == "processes" and "interactive program" in info["executor_reason"]


def test_estimate_and_the_runs_own_line_agree(batch_widget, qtbot, run_to_end):
    """Estimate plans with the run's options (beside the viewer: niced worker processes
    once warm), and both come from the plan's one estimate: the same executor, workers
    and tasks, and memory of the same size (4.2 MiB against 404.2 MiB before)."""
    from napari_batch_pipeline._widgets.batch.warm_up import warm_up
    from napari_batch_pipeline.core.engine.events import RunStarted

    widget = batch_widget
    widget.executor.value = "auto"
    widget.warming = warm_up("auto", widget.workers.value)  # as a new widget warms its executor
    qtbot.waitUntil(lambda: not widget.warming.workers_starting, timeout=120_000)
    assert widget.make_plan().options.executor == widget.make_batch().options.executor == "processes"

    estimated = []
    worker = widget.estimate()
    worker.returned.connect(estimated.append)
    qtbot.waitUntil(lambda: bool(estimated), timeout=60_000)
    events = []
    widget.engine_event.connect(events.append)
    run_to_end(widget)
    (mine,), run = estimated, next(e for e in events if isinstance(e, RunStarted)).estimate
    assert run is not None
    assert (mine.tasks, mine.workers, mine.in_flight) == (run.tasks, run.workers, run.in_flight)
    assert 0.5 < mine.total_bytes / run.total_bytes < 2, (mine.summary(), run.summary())
    assert widget.estimate_text.value == run.summary()  # the run's line replaced it
    print(f"Estimate: {mine.summary()}\nthe run's: {run.summary()}")
