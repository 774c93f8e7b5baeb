"""The project's error type for user mistakes.

A :class:`PipelineError` is caught at the edge (command line exit status 2, a napari
notification) and shown as its message alone, without a traceback.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence

__all__ = ["ConclusionsError", "PipelineError", "StageError", "listening_for_ctrl_c"]


class PipelineError(ValueError):
    """A user mistake: an invalid pipeline file, an unusable folder, a bad option.

    Parameters
    ----------
    message : str
        What was given and what was expected.
    stage : str, optional
        The stage the mistake is in, when there is one.
    key : str, optional
        The key of that stage (``function``, ``params.sigma``, ``inputs.labels`` ...).
    options : sequence of str, optional
        The batch options the message speaks of, by their names in the Python API
        (``fresh``, ``workers``, ``memory_budget`` ...). The message itself names them by
        their meaning ("start fresh"); the command line and the widgets add how to set
        them there (``--fresh``, a check box).
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str | None = None,
        key: str | None = None,
        options: Sequence[str] = (),
    ):
        self.stage = stage
        self.key = key
        self.options = tuple(options)
        where = ""
        if stage is not None:
            where = f"stage {stage!r}"
            if key is not None:
                where += f", {key}"
            where += ": "
        super().__init__(where + message)


class ConclusionsError(PipelineError):
    """A run whose tasks finished, but whose tables or conclusions (summary, figures,
    screen tables) could not be written at the end; ``run.json`` says failed. Its tasks
    are kept: the run started again, or the conclusions written again, completes it.
    The command line exits with status 1 (tasks ran), not 2."""


class StageError(RuntimeError):
    """A stage failed on one image: names the stage and keeps the cause.

    Raised while running, never while loading a pipeline; the batch engine records it as
    that task's error and goes on with the others.
    """

    def __init__(self, stage: str, function: str, cause: BaseException | str):
        self.stage = stage
        self.function = function
        detail = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"stage {stage!r} ({function}) failed: {detail}")


def listening_for_ctrl_c() -> bool:
    """Whether a KeyboardInterrupt here may be Ctrl-C: this is the main thread, and Ctrl-C
    raises one (Python's default handler).

    Worker processes ignore Ctrl-C, other threads never get it, and the command line
    cancels on the first Ctrl-C without raising: there, a KeyboardInterrupt comes from a
    stage's own code and fails one image, not the run.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGINT) is signal.default_int_handler
