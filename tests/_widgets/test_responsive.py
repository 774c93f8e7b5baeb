"""A batch is planned in a thread while the viewer's event loop goes on."""

from __future__ import annotations

import threading
import time

import pytest
from qtpy.QtCore import QTimer

from napari_batch_pipeline._widgets.viewer.responsive import call_responsively


class Ticks:
    """A 10 ms timer in the main thread; ``calls`` collects ``probe()`` at each tick."""

    def __init__(self, probe=lambda: None):
        self.calls: list = []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.calls.append(probe()))
        self.timer.start()

    def stop(self) -> list:
        self.timer.stop()
        return self.calls


def test_the_event_loop_turns_while_the_call_runs_and_its_result_comes_back(qtbot):
    ticks = Ticks()
    threads = []

    def slow(a, b=0):
        threads.append(threading.current_thread())
        time.sleep(0.5)
        return a + b

    assert call_responsively(slow, 2, b=3) == 5
    assert len(ticks.stop()) >= 10  # a blocking call would have allowed none
    assert threads and threads[0] is not threading.main_thread()


def test_its_exception_is_raised_in_the_caller(qtbot):
    error = ValueError("bad field")

    def fails():
        time.sleep(0.05)
        raise error

    with pytest.raises(ValueError) as raised:
        call_responsively(fails)
    assert raised.value is error


def test_the_widget_plans_off_the_main_thread_with_its_buttons_held(batch_widget, run_to_end, monkeypatch):
    from napari_batch_pipeline._widgets.batch import widget as batch_module

    real = batch_module.BatchRun
    planned_in = []

    def slow_plan(*args, **kwargs):  # a folder whose headers take 0.4 s to open
        planned_in.append(threading.current_thread())
        time.sleep(0.4)
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_module, "BatchRun", slow_plan)
    widget = batch_widget
    ticks = Ticks(lambda: (bool(planned_in), widget.run_button.enabled, widget.estimate_button.enabled))
    report = run_to_end(widget)
    states = ticks.stop()

    assert report.done == 6
    assert planned_in and planned_in[0] is not threading.main_thread()
    while_planning = [state for state in states if state[0]][:20]
    assert len(while_planning) >= 10, "the event loop turned while the batch was planned"
    assert not any(run or estimate for _, run, estimate in while_planning[:5])
    assert widget.run_button.enabled and widget.estimate_button.enabled
