"""The batch widget under a flood of engine events: shown in batches, in order, all of them.

The engine is replaced by a generator that yields 600 ``TaskFinished`` events as fast
as a run of very fast tasks would (a few milliseconds apart), so what is tested is the
widget's side: how many times the table model changes, and that nothing is lost or
reordered on the way.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from napari_batch_pipeline._widgets.batch import widget as batch_module
from napari_batch_pipeline._widgets.batch.widget import SHOW_EVERY
from napari_batch_pipeline._widgets.results.run_layers import LoadedLayers
from napari_batch_pipeline.core.engine.events import RunFinished, RunStarted, TaskFinished
from napari_batch_pipeline.core.engine.report import Report
from napari_batch_pipeline.core.run_folder.records import TaskRecord

TASKS = 600
#: every FAIL_EVERY-th task fails
FAIL_EVERY = 7


def fake_events(batch):
    """What ``events_then_layers`` yields for a run of TASKS fast tasks, a few failed."""
    tasks = batch.tasks
    yield RunStarted(len(tasks), 0, str(batch.folder.path), "vertical", "processes", 2, None)
    done = failed = 0
    for index, task in enumerate(tasks):
        status = "failed" if index % FAIL_EVERY == 0 else "done"
        done, failed = done + (status == "done"), failed + (status == "failed")
        record = TaskRecord(
            key=f"key{index}",
            index=index,
            image=task.image,
            status=status,
            error="it broke" if status == "failed" else "",
            seconds=0.02,
            summary={"nuclei.count": index} if status == "done" else {},
            label=task.label,
        )
        yield TaskFinished(record, done, failed, len(tasks))
        if index % 10 == 9:
            time.sleep(0.01)  # 1 ms a task, the pace of a fast run on many workers
    report = Report(Path(batch.folder.path), len(tasks), done, failed, 0, False, 1.0)
    yield RunFinished(report)
    yield LoadedLayers([])


@pytest.fixture
def flooded_widget(batch_widget, monkeypatch):
    """The batch widget of 6 images x 100 sweep values (600 tasks), fed fake_events."""
    monkeypatch.setattr(batch_module, "events_then_layers", fake_events)
    values = ",".join(str(sigma) for sigma in range(1, 101))
    batch_widget.sweep.value = f"blurred.sigma={values}"
    return batch_widget


def test_a_flood_of_finished_tasks_updates_the_table_in_few_batches_in_order(flooded_widget, run_to_end):
    widget = flooded_widget
    model = widget.table.model()
    changes: list[str] = []
    model.rowsInserted.connect(lambda *_: changes.append("insert"))
    model.modelReset.connect(lambda: changes.append("reset"))
    shown: list[int] = []
    widget.engine_event.connect(
        lambda event: shown.append(event.record.index) if isinstance(event, TaskFinished) else None
    )
    started = time.perf_counter()
    report = run_to_end(widget)
    elapsed = time.perf_counter() - started

    # every task has its row, in the order the engine finished them, with its status
    assert report is not None, widget.status.value
    assert report.total == TASKS and widget.table.rowCount() == TASKS
    tasks = widget.batch.tasks
    assert [task.image for task in widget.table.tasks] == [task.image for task in tasks]
    assert [widget.table.text(row, "parameters") for row in range(TASKS)] == [t.label for t in tasks]
    statuses = [widget.table.text(row, "status") for row in range(TASKS)]
    assert statuses == ["failed" if i % FAIL_EVERY == 0 else "done" for i in range(TASKS)]
    assert widget.table.text(1, "nuclei.count") == "1" and widget.table.text(0, "error") == "it broke"
    assert widget.table.columns[-1] == "error"
    assert len(widget.failures) == len(range(0, TASKS, FAIL_EVERY))
    assert widget.progress_bar.value == TASKS
    assert shown == list(range(TASKS))  # engine_event: each event once, in order
    assert "finished" in widget.status.value

    # ...but in batches: one model change per batch, at most one batch every SHOW_EVERY s
    # (the first at once), and a reset only when columns appear (the summary's)
    assert 2 <= len(changes) <= elapsed / SHOW_EVERY + 3, f"{len(changes)} changes in {elapsed:.2f} s"
    assert len(changes) < TASKS / 10
    assert changes.count("reset") <= 3  # clear at start, the first row, the first summary


def test_a_new_run_starts_with_an_empty_table(flooded_widget, run_to_end, tmp_path):
    widget = flooded_widget
    run_to_end(widget)
    widget.sweep.value = "blurred.sigma=1,2"
    report = run_to_end(widget)
    assert report.total == 12 and widget.table.rowCount() == 12
    assert widget.table.tasks == widget.batch.tasks


def test_the_progress_bar_repaints_with_the_table_never_at_once(make_napari_viewer, qtbot):
    """A repaint composes the whole window with the canvas (50 ms and more on software
    OpenGL): the bar moving must not paint there and then, only in the turn's one repaint."""
    from qtpy.QtCore import QEvent, QObject

    from napari_batch_pipeline._widgets.batch.widget import BatchWidget

    viewer = make_napari_viewer(show=True)
    widget = BatchWidget(viewer)
    viewer.window.add_dock_widget(widget)
    bar = widget.progress_bar.native
    qtbot.waitUntil(bar.isVisible)
    widget.progress_bar.max = 10

    class Paints(QObject):
        count = 0

        def eventFilter(self, watched, event):
            if event.type() == QEvent.Type.Paint:
                Paints.count += 1
            return False

    paints = Paints()
    bar.installEventFilter(paints)
    qtbot.wait(50)
    Paints.count = 0
    widget.run_progress.ended = 3
    widget.run_progress.advance(3, flush=True)
    assert widget.progress_bar.value == 3
    assert Paints.count == 0  # not at once...
    qtbot.waitUntil(lambda: Paints.count >= 1, timeout=5_000)  # ...but in the next repaint
