"""The layer queue of the batch widget: a run's layers replace the previous run's one
layer per turn of the event loop, so that showing results never holds the viewer long."""

from __future__ import annotations

import itertools

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import QTimer

from napari_batch_pipeline._widgets.results.run_layers import LayerQueue


def run_layers(run: str) -> list:
    return [
        Image(np.zeros((3, 8, 8)), name=f"{run}: input"),
        Labels(np.zeros((3, 8, 8), int), name=f"{run}: labels"),
    ]


def names(viewer) -> list[str]:
    return [layer.name for layer in viewer.layers]


def test_a_run_replaces_the_previous_layers_one_per_turn(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((8, 8)), name="mine")
    done: list[int] = []
    queue = LayerQueue(viewer, lambda: done.append(len(queue.layers)))
    queue.show(run_layers("run1"))
    qtbot.waitUntil(lambda: not queue.loading)
    assert names(viewer) == ["mine", "run1: input", "run1: labels"] and done == [2]

    seen = [names(viewer)]  # the viewer's layers before, then at each turn of the event loop
    every_turn = QTimer()
    every_turn.timeout.connect(lambda: seen.append(names(viewer)))
    every_turn.start(0)
    second = run_layers("run2")
    queue.show(second)
    assert names(viewer) == ["mine", "run1: labels"] and queue.loading  # one step in the call
    qtbot.waitUntil(lambda: not queue.loading)
    every_turn.stop()
    assert names(viewer) == ["mine", "run2: input", "run2: labels"]
    assert queue.layers == second and done == [2, 2]
    changes = [set(a) ^ set(b) for a, b in itertools.pairwise(seen)]
    assert all(len(change) <= 1 for change in changes)  # never two layers in one turn
    assert sum(map(len, changes)) >= 3  # the rest: removed and added over several turns


def test_a_run_shown_while_the_last_is_still_loading_replaces_it(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    done: list[int] = []
    queue = LayerQueue(viewer, lambda: done.append(1))
    queue.show(run_layers("run1"))  # its first layer is in; the second would come next turn
    queue.show(run_layers("run2"))
    qtbot.waitUntil(lambda: not queue.loading)
    assert names(viewer) == ["run2: input", "run2: labels"]
    qtbot.wait(50)
    assert done == [1]  # one chain of turns, one end
