"""What guards a task in a worker: a time limit, and words for a worker that died.

:class:`Guarded` wraps the function a process or dask worker runs for each task: past
the task timeout it ends its own process (a stage stuck in C code cannot be stopped any
other way), with an exit status of its own so that the executor can say why the worker
died. :class:`WorkerDied` is the result of a task whose worker died under it twice.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TIMEOUT_EXIT", "Guarded", "WorkerDied", "worker_fate"]

#: the exit status of a worker that ended itself because its task ran past the time limit
TIMEOUT_EXIT = 124


class WorkerDied(Exception):
    """A task's worker process died under it (crash, kill, time limit): the task's error."""


@dataclass(frozen=True)
class Guarded:
    """``function``, ended with its process when one call runs past ``timeout`` seconds."""

    function: Callable[[Any], Any]
    timeout: float | None = None

    def __call__(self, job: Any) -> Any:
        if not self.timeout:
            return self.function(job)
        timer = threading.Timer(self.timeout, os._exit, args=(TIMEOUT_EXIT,))
        timer.daemon = True
        timer.start()
        try:
            return self.function(job)
        finally:
            timer.cancel()


def worker_fate(error: BaseException, timeout: float | None = None) -> str:
    """Why a worker died, in words, from the pool's error (exit statuses, signals)."""
    statuses = re.findall(r"\{([^{}]*)\}", str(error))
    status = statuses[-1].strip() if statuses else ""
    if timeout and f"({TIMEOUT_EXIT})" in status:
        return f"ran past the task timeout of {timeout:g} s; its worker process was stopped"
    if status:
        return f"its worker process died ({_readable(status)})"
    return f"its worker process died ({type(error).__name__})"


_SIGNALS = {
    "SIGKILL": "killed, for instance by the system when memory ran out",
    "SIGSEGV": "a crash in compiled code",
    "SIGABRT": "aborted",
    "SIGBUS": "a crash in compiled code",
    "SIGTERM": "terminated",
}


def _readable(status: str) -> str:
    """``SIGSEGV(-11)`` -> ``signal SIGSEGV: a crash in compiled code``; ``EXIT(3)`` -> ``exit status 3``."""
    words = []
    for part in status.split(","):
        name, _, code = part.strip().partition("(")
        if name in _SIGNALS:
            words.append(f"signal {name}: {_SIGNALS[name]}")
        elif name.startswith("SIG"):
            words.append(f"signal {name}")
        else:
            words.append(f"exit status {code.rstrip(')') or name}")
    return "; ".join(words)
