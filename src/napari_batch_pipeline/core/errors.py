"""The project's error type for user mistakes.

A :class:`PipelineError` is caught at the edge (command line exit status 2, a napari
notification) and shown as its message alone, without a traceback.
"""

from __future__ import annotations

__all__ = ["PipelineError", "StageError"]


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
    """

    def __init__(self, message: str, *, stage: str | None = None, key: str | None = None):
        self.stage = stage
        self.key = key
        where = ""
        if stage is not None:
            where = f"stage {stage!r}"
            if key is not None:
                where += f", {key}"
            where += ": "
        super().__init__(where + message)


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
