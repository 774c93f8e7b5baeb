"""A full disk: recognised wherever a write fails for want of space, and one clear error.

A run that finds its disk full stops (the tasks after it would all fail the same way),
keeps every finished task (the ledger is never left with a torn line), and the same
command run again once space is freed goes on where it stopped.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import PipelineError
from .records import TaskRecord

__all__ = ["DiskFullError", "is_disk_full", "record_says_disk_full"]

#: errno values of a write that failed for want of space (a full disk, a quota)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
#: how the messages of those errors read (``[Errno 28] No space left on device``)
_NO_SPACE_TEXTS = tuple(f"[Errno {code}] {os.strerror(code)}" for code in _NO_SPACE)


class DiskFullError(PipelineError):
    """The disk of the output folder is full: the run stopped, its finished tasks kept.

    Parameters
    ----------
    folder : Path
        The run folder.
    what : str
        What was being written (``'the task ledger'``, ``'the outputs of a.tif'``).
    detail : str
        The system's message.
    """

    def __init__(self, folder: Path, what: str, detail: str):
        self.folder = folder
        super().__init__(
            f"the disk of the output folder {str(folder)!r} is full ({detail}) while writing "
            f"{what}; the run stopped, and every task finished so far is kept. Free some space, "
            "then run the same command again: it goes on where it stopped"
        )


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is a write that failed for want of space."""
    return isinstance(error, OSError) and error.errno in _NO_SPACE


def record_says_disk_full(record: TaskRecord) -> bool:
    """Whether a failed task failed for want of space (its worker could not write)."""
    return not record.done and any(text in record.error for text in _NO_SPACE_TEXTS)
