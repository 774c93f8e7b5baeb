"""The batch widget's progress: its own bar and napari's activity bar, moved without a stall.

A repaint of a dock composes the whole viewer window with its canvas: 50 ms and more on
a software-OpenGL display (Xvfb, a remote desktop). A ``QProgressBar`` repaints at once
(synchronously) whenever its value moves, and napari's activity bar also turns the event
loop itself (``processEvents``) when it moves. :class:`RunProgress` moves the widget's
bar at most every :data:`BAR_EVERY` seconds, its repaint left to the turn's one repaint
of the dock (the table's, the status's), and napari's bar every :data:`ACTIVITY_EVERY`
seconds, from a slot of its own so that no later event is handled before it.
"""

from __future__ import annotations

import time

from magicgui.widgets import ProgressBar
from napari.utils import progress
from qtpy.QtCore import QTimer

__all__ = ["ACTIVITY_EVERY", "BAR_EVERY", "RunProgress"]

#: seconds between two moves of the widget's bar (the batch widget shows its table as often)
BAR_EVERY = 0.5
#: seconds between two moves of napari's activity bar
ACTIVITY_EVERY = 2.0


class RunProgress:
    """The progress of one run at a time, shown on ``bar`` and on napari's activity bar.

    Attributes
    ----------
    ended : int
        Tasks ended (done or failed, resumed ones too) by the latest event shown.
    """

    def __init__(self, bar: ProgressBar):
        self.bar = bar
        self.ended = 0
        self._activity: progress | None = None
        self._steps = 0  # steps napari's bar has not shown yet
        self._bar_at = self._activity_at = 0.0  # when each bar last moved

    def start(self, total: int) -> None:
        """A run of ``total`` tasks begins: both bars at 0."""
        self.bar.max, self.bar.value = max(1, total), 0
        self.ended = 0
        self._activity = progress(total=total, desc="Batch processing")
        self._steps, self._bar_at, self._activity_at = 0, 0.0, time.monotonic()

    def advance(self, steps: int, *, flush: bool = False) -> None:
        """``steps`` more tasks ended (:attr:`ended` says how many in all); the bars move
        when their time has come, or at once with ``flush``."""
        self._steps += steps
        now = time.monotonic()
        if flush or now - self._bar_at >= BAR_EVERY:
            self._bar_at = now
            native = self.bar.native
            native.setUpdatesEnabled(False)  # no repaint at once...
            self.bar.value = self.ended
            native.setUpdatesEnabled(True)  # ...but one scheduled, with the turn's others
        if not (flush or now - self._activity_at >= ACTIVITY_EVERY):
            return
        self._activity_at = now
        if self._activity is not None and self._steps:
            activity, steps = self._activity, self._steps
            self._steps = 0
            QTimer.singleShot(0, lambda: activity.update(steps))

    def close(self) -> None:
        """The run has ended: both bars show it, napari's goes (after its last move)."""
        self.advance(0, flush=True)
        if self._activity is not None:
            QTimer.singleShot(0, self._activity.close)
            self._activity = None
