"""The garbage collector held off the viewer's objects while a batch runs, and given back."""

from __future__ import annotations

import gc
import weakref

from napari_batch_pipeline._widgets.batch.collector import hold_collector, holders
from napari_batch_pipeline.core.engine.events import TaskFinished
from napari_batch_pipeline.core.synthetic import write_nuclei_folder


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_holds_nest_and_frozen_garbage_is_collected_after_the_release():
    assert holders() == 0 and gc.get_freeze_count() == 0
    cycle = Node()
    alive = weakref.ref(cycle)
    release_a = hold_collector()  # the cycle is frozen while still referenced
    del cycle
    release_b = hold_collector()
    gc.collect()
    assert alive() is not None, "a collection during the hold does not walk frozen objects"
    release_a()
    release_a()  # a second call does nothing
    assert holders() == 1 and gc.get_freeze_count() > 0
    release_b()
    assert holders() == 0 and gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None, "frozen garbage is freed once the hold is released"


def test_a_batch_holds_the_collector_until_its_results_are_in(batch_widget, run_to_end):
    frozen_during_run = []

    def on_event(event: object) -> None:
        if isinstance(event, TaskFinished):
            frozen_during_run.append(gc.get_freeze_count())

    batch_widget.engine_event.connect(on_event)
    report = run_to_end(batch_widget)

    assert report.done == 6
    assert frozen_during_run and min(frozen_during_run) > 0
    assert holders() == 0 and gc.get_freeze_count() == 0


def test_a_cancelled_batch_gives_the_collector_back(batch_widget, qtbot):
    with qtbot.waitSignal(batch_widget.run_finished, timeout=300_000) as blocker:
        batch_widget.start()
        batch_widget.cancel()  # before the worker has run anything: the run is cancelled
    report = blocker.args[0]

    assert report is not None and report.cancelled
    assert holders() == 0 and gc.get_freeze_count() == 0


def test_closing_the_viewer_mid_run_gives_the_collector_back(make_batch_widget, tmp_path, qtbot):
    write_nuclei_folder(tmp_path / "many", count=300)
    widget = make_batch_widget(tmp_path / "many")
    shown = []
    widget.engine_event.connect(lambda event: shown.append(isinstance(event, TaskFinished)))
    widget.start()
    qtbot.waitUntil(lambda: any(shown), timeout=300_000)
    assert holders() == 1

    widget.viewer.close()
    qtbot.waitUntil(lambda: holders() == 0, timeout=10_000)
    assert gc.get_freeze_count() == 0
