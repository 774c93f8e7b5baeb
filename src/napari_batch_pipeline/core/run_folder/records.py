"""The record of one finished task: what the worker reports and the ledger keeps.

A record is made once, by the worker (or by the engine for a worker that died), and
never mutated: :meth:`TaskRecord.replace` gives a changed copy. One line of the
ledger is :meth:`TaskRecord.to_json`; its traceback goes to ``errors.log`` instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
import traceback as tb
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..images.sources import escaped

__all__ = [
    "DONE",
    "FAILED",
    "TaskRecord",
    "file_stat",
    "format_traceback",
    "input_fingerprint",
    "input_stamp",
]

DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class TaskRecord:
    """One finished task, done or failed.

    Attributes
    ----------
    key : str
        The task's identity across runs (image and parameter set).
    index : int
        Its position in the plan.
    image : str
        The ``image`` column: path relative to the input folder.
    status : {'done', 'failed'}
    error : str
        Why it failed; empty when done.
    seconds : float
        Time the worker spent on it (NaN when unknown).
    summary : dict
        ``<stage>.count`` and ``<stage>.mean_<measurement>`` of each table stage.
    label : str
        The parameter-set label (empty without a sweep).
    input : list of int or None
        Size and modification time (ns) of the input when it ran: a changed input is
        computed again on resume.
    traceback : str or None
        The full traceback of a failure; written to ``errors.log``, not to the ledger.
    held_bytes : int
        Memory the task held at its end (for the estimate); not kept.
    """

    key: str
    index: int
    image: str
    status: str
    error: str = ""
    seconds: float = math.nan
    summary: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    input: list[int] | None = None
    traceback: str | None = None
    held_bytes: int = 0

    @property
    def done(self) -> bool:
        return self.status == DONE

    def replace(self, **changes: Any) -> TaskRecord:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The ledger line: everything but the traceback and the held bytes."""
        return {
            "key": self.key,
            "index": self.index,
            "image": self.image,
            "label": self.label,
            "status": self.status,
            "error": self.error,
            "seconds": self.seconds,
            "summary": dict(self.summary),
            "input": self.input,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskRecord:
        """A record from a ledger line (lines of earlier versions lack ``label``).

        Raises
        ------
        KeyError, TypeError, ValueError
            If the line is not a task record.
        """
        key = str(data["key"])
        return cls(
            key=key,
            index=int(data["index"]),
            image=str(data["image"]),
            status=str(data["status"]),
            error=str(data.get("error") or ""),
            seconds=float(data.get("seconds", math.nan)),
            summary=dict(data.get("summary") or {}),
            label=str(data.get("label", key.partition("|")[2])),
            input=data.get("input"),
        )

    def __post_init__(self) -> None:
        # a file name's bytes that are not UTF-8 reach messages as surrogates, which no
        # table can hold (pandas' Arrow-backed strings refuse them): written as \xff
        object.__setattr__(self, "error", escaped(self.error))

    @classmethod
    def failure(
        cls,
        key: str,
        index: int,
        image: str,
        error: str,
        *,
        label: str = "",
        seconds: float = math.nan,
        traceback: str | None = None,
    ) -> TaskRecord:
        """The record of a failed task."""
        return cls(key, index, image, FAILED, error, seconds, label=label, traceback=traceback)


def format_traceback(error: BaseException) -> str:
    """The full traceback of ``error``, as ``errors.log`` keeps it."""
    return "".join(tb.format_exception(error))


def input_fingerprint(paths: list[Path]) -> list[int] | None:
    """Size and modification time (ns) of a task's input files, the :attr:`TaskRecord.input`
    a record is kept under: a changed file is computed again; None when one is unreadable."""
    stamp: list[int] = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            return None
        stamp += [info.st_size, info.st_mtime_ns]
    return stamp


def input_stamp(fingerprint: list[int] | None) -> str:
    """A short hash of an input's fingerprint (``'unread'`` when a file could not be read)."""
    if fingerprint is None:
        return "unread"
    return hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:12]


def file_stat(path: Path) -> tuple[int | None, str | None]:
    """A file's size and modification time (local, to the second) as run.json lists inputs."""
    try:
        info = path.stat()
    except OSError:
        return None, None
    return info.st_size, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(info.st_mtime))
