"""The ``auto`` executor: which one runs a batch, from what the pipeline holds and the machine.

Threads share one process: no worker starts, nothing is pickled, and the built-in
stages spend their time in scikit-image, SciPy and numpy code that releases the GIL, so
two threads run about as fast as two processes. A process, though, isolates a crash:
code the pipeline brings of its own may end its process, and only a worker process keeps
that from taking the run down. So ``auto`` chooses:

1. dask, when a scheduler address is given;
2. processes, when a task timeout is asked for (a thread cannot be stopped);
3. threads (serial with one worker), when a user's function exists in this session only
   (registered under a plain name, or defined in a script's or notebook's ``__main__``):
   a worker process could not find it;
4. processes, when a stage is a user's function (its crash fails its task alone);
5. processes, when the batch runs beside an interactive program (``low_priority``, the
   napari widget): niced worker processes leave the viewer the CPU, threads cannot;
   but threads while those processes are still starting (``workers_starting``): a
   first run right after the widget opened would wait seconds for them, the niced
   imports of scikit-image in each;
6. serial, with one worker or one core;
7. threads otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["AUTO", "EXECUTORS", "ExecutorChoice", "choose_executor"]

AUTO = "auto"
#: the executors a batch may name (this module is light: the command line's parser reads it)
EXECUTORS = (AUTO, "serial", "threads", "processes", "dask")


class _Pipeline(Protocol):
    @property
    def user_code(self) -> tuple[str, ...]: ...

    @property
    def session_functions(self) -> list[str]: ...


@dataclass(frozen=True)
class ExecutorChoice:
    """The executor ``auto`` chose, and why, in words for the log and ``run.json``."""

    executor: str
    reason: str


def choose_executor(
    pipeline: _Pipeline,
    *,
    workers: int,
    cores: int,
    scheduler: str | None = None,
    task_timeout: float | None = None,
    low_priority: bool = False,
    workers_starting: bool = False,
) -> ExecutorChoice:
    """The executor for ``pipeline`` on ``workers`` workers of a machine of ``cores`` cores."""
    if scheduler:
        return ExecutorChoice("dask", "a dask scheduler address was given")
    if task_timeout is not None:
        return ExecutorChoice(
            "processes", "a task timeout stops a worker process; a thread cannot be stopped"
        )
    here = pipeline.session_functions
    if here:
        executor = "serial" if workers <= 1 or cores <= 1 else "threads"
        return ExecutorChoice(
            executor,
            f"the pipeline's function(s) {', '.join(here)} exist in this session only (registered "
            "or defined in a script or notebook), where no worker process can find them",
        )
    own = sorted({code.partition(":")[0] for code in pipeline.user_code})
    if own:
        return ExecutorChoice(
            "processes",
            f"the pipeline runs code of its own ({', '.join(own)}): worker processes keep a crash "
            "of it to its task",
        )
    if low_priority and workers_starting:
        return ExecutorChoice(
            "serial" if workers <= 1 or cores <= 1 else "threads",
            "beside an interactive program whose worker processes are still starting: this run "
            "goes on threads rather than wait for them",
        )
    if low_priority:
        return ExecutorChoice(
            "processes", "beside an interactive program, worker processes run niced and leave it the CPU"
        )
    if workers <= 1 or cores <= 1:
        what = "one core" if cores <= 1 else "one worker"
        return ExecutorChoice("serial", f"built-in stages only, and {what}")
    return ExecutorChoice(
        "threads",
        "built-in stages only: they release the GIL, so threads run them in parallel with no "
        "worker processes to start",
    )
