"""What the batch widget says of a run, and how a run outlives its viewer's window.

- :func:`summary_text`: the status line once a run has ended (counts, time, failures).
- :func:`offer_version_folder`: where to write when the chosen
  output folder holds a run of another pipeline (tuning changed it between two runs).
- :class:`CloseGuard`: closing the viewer's window while a batch runs cancels the batch
  and waits until the engine has ended it cleanly (tables written, ``run.json`` says
  "cancelled", the folder's lock released), so that it resumes later; without it the
  process would end mid-run and leave a run that says "running".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from magicgui.widgets import FileEdit
from qtpy.QtCore import QEvent, QEventLoop, QObject
from qtpy.QtWidgets import QApplication

from ...core.engine.report import Report
from ...core.errors import PipelineError
from ...core.pipeline.model import Pipeline
from ...core.run_folder.layout import RunLayout
from ...core.run_folder.writer import RunFolder

__all__ = ["CLOSE_TIMEOUT", "CloseGuard", "offer_version_folder", "summary_text"]

#: seconds a closing window waits for a cancelled run to end
CLOSE_TIMEOUT = 120.0


def summary_text(report: Report, failures: list[tuple[str, str]]) -> str:
    """One line for the status label: counts, time, and the failures with their messages."""
    what = "cancelled" if report.cancelled else "finished"
    text = f"{what} in {report.seconds:.1f} s: {report.done} done, {report.failed} failed"
    if report.skipped:
        text += f", {report.skipped} resumed"
    pending = report.total - report.done - report.failed - report.skipped
    if pending:
        text += f", {pending} not run"
    if failures:
        text += "\nfailed: " + "; ".join(f"{image}: {error}" for image, error in failures[:5])
        if len(failures) > 5:
            text += f" (and {len(failures) - 5} more, see the table)"
    return text


class VersionFolderOffer(PipelineError):
    """A run refused only to keep another pipeline's run: the output field now holds this
    pipeline's own folder, and the next Run writes there. A notice, not an error."""


def offer_version_folder(output_field: FileEdit, output_dir: Path, pipeline: Pipeline) -> None:
    """Refuse a run of ``pipeline`` into ``output_dir`` if it holds another pipeline's run,
    and set ``output_field`` to this version's folder (``RunLayout.version_folder``) instead:
    the next Run writes there.

    Raises
    ------
    VersionFolderOffer
        If the folder holds another pipeline's run; the message says what changed.
    """
    if not RunFolder(output_dir).holds_other_pipeline(pipeline):
        return
    target = RunLayout.version_folder(output_dir, pipeline.hash)
    output_field.value = target
    raise VersionFolderOffer(
        f"{str(output_dir)!r} holds a run of another pipeline (changed since?): the output "
        f"folder is now {target.name!r}, this pipeline's own; click Run to write there, or "
        "choose another folder, or tick 'start fresh' to replace the old run"
    )


class CloseGuard(QObject):
    """Watches a window; when it closes while ``running()``, calls ``cancel()`` and waits
    until ``ended()`` (at most :data:`CLOSE_TIMEOUT` seconds), before the
    window goes on closing.

    Install it on the window with ``window.installEventFilter(guard)``.
    """

    def __init__(
        self,
        running: Callable[[], bool],
        cancel: Callable[[], None],
        ended: Callable[[], bool],
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._running, self._cancel, self._ended = running, cancel, ended

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Close and self._running():
            self._cancel()
            self.wait()
        return False  # the window closes as it would have

    def wait(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Wait until ``ended()``; False if ``timeout`` seconds passed first.

        Events are processed meanwhile (the widget shows the run's last events), but not
        the user's input, nor deletions the closing window has asked for: a nested event
        loop would delete the viewer's parts before the window has closed.
        """
        deadline = time.monotonic() + timeout
        while not self._ended() and time.monotonic() < deadline:
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
            time.sleep(0.02)
        return self._ended()
