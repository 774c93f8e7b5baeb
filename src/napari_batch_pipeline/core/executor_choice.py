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
7. otherwise threads first, measured: the first tasks run on threads (no worker starts),
   and :class:`ThreadsMeasure` times them: how much of the time the tasks took this
   process's threads kept the cores busy, against what the other programs on the machine
   left free. A chain whose stages release the GIL keeps both cores busy on threads and
   stays there; one that holds the GIL (``regionprops`` measuring many objects, Python
   loops) keeps about one core busy, and :func:`choose_after_measure` moves the rest of
   the batch to worker processes when their start-up is repaid by the tasks left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "AUTO",
    "EXECUTORS",
    "ExecutorChoice",
    "ThreadsMeasure",
    "choose_after_measure",
    "choose_executor",
    "measured_tasks",
]

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
    #: threads for now, the executor for the rest chosen from the first tasks' timings
    measure: bool = False
    #: the numbers a measured choice came from, for run.json
    numbers: dict[str, Any] | None = None


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
        "built-in stages only: the first tasks run on threads, which start at once, and are "
        "timed; the rest go to worker processes if the stages hold the GIL long enough to repay "
        "starting them",
        measure=True,
    )


#: seconds worker processes take to be ready (each imports numpy, scikit-image and the
#: engine: about 1 s on the 2-core machine of the benchmarks, both starting at once)
WORKER_START_SECONDS = 1.0
#: seconds a task costs more in a worker process: its job pickled there, its record back
PROCESS_TASK_SECONDS = 0.003
#: the share of the free cores' time worker processes are counted to turn into tasks.
#: Two quiet passes of the 1,000-image benchmark (2 cores) disagreed on threads (34.6 s,
#: then 45.3 s) while processes kept joblib's time (39.0 s, 37.4 s): a prediction that
#: takes processes at the CPU time threads measured favours the steady choice where a
#: long batch makes the two close
PROCESS_SPEED = 1.0
#: processes are chosen when they are predicted this much faster: the measurement is
#: short and noisy, and threads keep the batch in one process
MARGIN = 0.9


def measured_tasks(workers: int) -> int:
    """How many first tasks a measured choice times (the first round of ``workers`` is
    left out of the timing: each thread's first task imports and warms up)."""
    return 6 * workers


class ThreadsMeasure:
    """The time, and this process's and the machine's CPU time, over the first tasks.

    :meth:`start` when the first task finishes, :meth:`stop` when the last measured one
    does; every task that finished between counts. The CPU time of the other programs
    is the machine's busy time less this process's (Linux; elsewhere taken as none).
    """

    def __init__(self) -> None:
        self._start: tuple[float, float, float] | None = None
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.foreign_cpu_seconds = 0.0
        self.tasks = 0

    def start(self) -> None:
        self._start = _clocks()

    def finished(self) -> None:
        """One more task finished after :meth:`start`."""
        self.tasks += 1

    def stop(self) -> None:
        if self._start is None:
            return
        wall, cpu, busy = (now - then for now, then in zip(_clocks(), self._start, strict=True))
        self.seconds, self.cpu_seconds = wall, cpu
        self.foreign_cpu_seconds = max(0.0, busy - cpu)


def _clocks() -> tuple[float, float, float]:
    """Wall time, this process's CPU time, the machine's busy CPU time."""
    busy = 0.0
    try:
        import psutil

        times = psutil.cpu_times()
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    except Exception:  # no psutil, or no machine-wide counters here: other programs unseen
        busy = float("nan")
    return time.perf_counter(), time.process_time(), busy


def choose_after_measure(
    measure: ThreadsMeasure, remaining: int, *, workers: int, cores: int, workers_warm: bool = False
) -> ExecutorChoice:
    """Threads or processes for the ``remaining`` tasks, from the first tasks' timings.

    Threads are predicted to go on as they went: ``remaining`` x (seconds per task).
    Processes are predicted from the CPU time a task took, spread over the cores the
    other programs leave free (at most ``workers``) at :data:`PROCESS_SPEED`, plus
    their start-up unless ``workers_warm``. Threads stay unless processes are predicted faster by a margin.
    """
    if measure.tasks < 1 or measure.seconds <= 0:
        return ExecutorChoice("threads", "too few tasks were timed to choose otherwise")
    per_task = measure.seconds / measure.tasks
    cpu_per_task = measure.cpu_seconds / measure.tasks
    foreign = measure.foreign_cpu_seconds / measure.seconds
    if foreign != foreign:  # NaN: the machine's counters could not be read
        foreign = 0.0
    free = max(1.0, min(float(workers), cores - foreign))
    threads = remaining * per_task
    start = 0.0 if workers_warm else WORKER_START_SECONDS
    processes = start + remaining * (cpu_per_task + PROCESS_TASK_SECONDS) / (free * PROCESS_SPEED)
    busy = measure.cpu_seconds / measure.seconds
    numbers = {
        "tasks_timed": measure.tasks,
        "seconds_per_task": round(per_task, 4),
        "cpu_seconds_per_task": round(cpu_per_task, 4),
        "cores_busy_on_threads": round(busy, 2),
        "cores_used_by_other_programs": round(foreign, 2),
        "tasks_left": remaining,
        "predicted_seconds_threads": round(threads, 2),
        "predicted_seconds_processes": round(processes, 2),
        "workers_warm": workers_warm,
    }
    said = (
        f"the first {measure.tasks} tasks kept {busy:.2f} of {free:.1f} free cores busy on threads; "
        f"the {remaining} left: about {threads:.1f} s on threads, {processes:.1f} s on processes"
        + ("" if workers_warm else f" ({start:.1f} s of it to start them)")
    )
    if processes < MARGIN * threads:
        return ExecutorChoice("processes", said + ": processes", numbers=numbers)
    return ExecutorChoice("threads", said + ": threads", numbers=numbers)
