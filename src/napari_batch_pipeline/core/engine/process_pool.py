"""The process executor: a warm pool of worker processes that survives its workers.

A worker that dies (a segfault in compiled code, the system's out-of-memory killer, a
stage that ends its process, the task time limit) breaks a process pool: every task in
flight fails with it. Here the pool is replaced at once, and the tasks that were in
flight run again, one at a time, so that a second death is the fault of the task that
was running: that task alone fails, with its worker's fate (signal or exit status) as
its error, and the batch goes on.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .executor_base import Executor
from .worker_guard import Guarded, WorkerDied, worker_fate

__all__ = ["ProcessExecutor", "prestart", "shut_down_pools", "warm_workers"]

#: seconds between looks at the cancel flag while waiting for results
_POLL = 0.2


class ProcessExecutor(Executor):
    """A pool of worker processes (loky), kept warm between runs.

    The pool is this package's own, not loky's shared one that joblib uses, so that a
    batch neither breaks nor replaces the workers of joblib (or scikit-learn) in the same
    Python session.

    Parameters
    ----------
    workers : int
        Worker processes.
    task_timeout : float, optional
        Seconds one task may run; past that its worker process ends and the task fails.
    low_priority : bool
        The workers run niced (:data:`NICE`), below this process.
    code : tuple of str
        What the user's stage code is (``Pipeline.user_code``): warm workers that
        imported other code (another version of a module, another import path) are
        replaced by new ones, which import it afresh.
    """

    name = "processes"

    def __init__(
        self,
        workers: int = 2,
        *,
        task_timeout: float | None = None,
        low_priority: bool = False,
        code: tuple[str, ...] = (),
    ):
        super().__init__(workers)
        self.task_timeout = task_timeout
        self.nice = NICE if low_priority else 0
        self.code = code
        self._key, self._executor = _process_pool(self.workers, self.nice, self.code)
        self._stopping: list[Any] = []

    def map(self, function: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """Submit the first window now (workers start at once); iterate to collect results."""
        run = _Supervised(self, Guarded(function, self.task_timeout), iter(jobs))
        run.submit(self.window)
        return run.results()

    def cancel(self) -> None:
        super().cancel()
        if not self._stopping:
            # shutdown(wait=False) lets go of the manager thread and the workers; keep them so
            # that close() can wait until the killed workers are gone (and write no more)
            pool = self._executor
            self._stopping = [
                getattr(pool, "_executor_manager_thread", None),
                *(getattr(pool, "_processes", None) or {}).values(),
            ]
        self._executor.shutdown(wait=False, kill_workers=True)
        _POOLS.pop(self._key, None)

    def close(self) -> None:
        if self._cancelled.is_set():
            self._executor.shutdown(wait=True, kill_workers=True)
            for item in self._stopping:
                if item is not None:
                    item.join(timeout=30)

    def _renew(self) -> None:
        """Replace a broken pool (its workers are gone) with a new one."""
        with _sigint_ignored():
            self._key, self._executor = _process_pool(self.workers, self.nice, self.code)

    def _submit(self, function: Callable[[Any], Any], job: Any) -> futures.Future | None:
        """Submit ``job``; None when the pool was shut down by cancel() or just broke."""
        try:
            with _sigint_ignored():
                return self._executor.submit(function, job)
        except RuntimeError:  # BrokenProcessPool is one; cancel() shut the pool down
            if self._cancelled.is_set() or _broken(self._executor):
                return None
            raise


class _Supervised:
    """One map over the pool: jobs in flight, and what to run again after a death."""

    def __init__(self, owner: ProcessExecutor, function: Callable[[Any], Any], jobs: Iterator[Any]):
        self.owner, self.function, self.jobs = owner, function, jobs
        self.pending: dict[futures.Future, Any] = {}
        self.backlog: list[Any] = []

    @property
    def cancelled(self) -> bool:
        return self.owner.cancelled

    def submit(self, count: int) -> None:
        """Put up to ``count`` more jobs in flight (jobs put back after a death first)."""
        while count > 0 and not self.cancelled:
            job = self.backlog.pop(0) if self.backlog else next(self.jobs, _END)
            if job is _END:
                return
            future = self.owner._submit(self.function, job)
            if future is None:
                self.backlog.insert(0, job)
                return
            self.pending[future] = job
            count -= 1

    def results(self) -> Iterator[tuple[Any, Any]]:
        while (self.pending or self.backlog) and not self.cancelled:
            finished, _ = futures.wait(self.pending, timeout=_POLL, return_when=futures.FIRST_COMPLETED)
            suspects: list[Any] = []
            for future in finished:
                job = self.pending.pop(future)
                outcome = _outcome(future)
                if isinstance(outcome, BrokenProcessPool):
                    suspects.append((job, outcome))
                elif not (self.cancelled and isinstance(outcome, BaseException)):
                    yield job, outcome
                if self.cancelled:
                    break
            if suspects or (_broken(self.owner._executor) and not self.cancelled):
                yield from self._recover(suspects)
            if not self.cancelled:
                self.submit(self.owner.window - len(self.pending))
        for future in self.pending:
            future.cancel()

    def _recover(self, suspects: list[tuple[Any, BaseException]]) -> Iterator[tuple[Any, Any]]:
        """The pool broke: collect its other tasks, renew it, run each suspect again alone."""
        for future in futures.wait(self.pending).done:  # a broken pool ends every future
            job = self.pending.pop(future)
            outcome = _outcome(future)
            if isinstance(outcome, BrokenProcessPool):
                suspects.append((job, outcome))
            else:
                yield job, outcome
        self.owner._renew()
        for job, _ in suspects:
            if self.cancelled:
                return
            outcome = self._alone(job)
            if outcome is not _CANCELLED:
                yield job, outcome

    def _alone(self, job: Any) -> Any:
        """Run ``job`` with nothing else in flight: a death now is its own."""
        future = self.owner._submit(self.function, job)
        if future is None:
            return _CANCELLED
        while not futures.wait([future], timeout=_POLL).done:
            if self.cancelled:
                future.cancel()
                return _CANCELLED
        outcome = _outcome(future)
        if isinstance(outcome, BrokenProcessPool):
            if self.cancelled:
                return _CANCELLED
            self.owner._renew()
            return WorkerDied(f"{worker_fate(outcome, self.owner.task_timeout)}, twice")
        return outcome


_END = object()
_CANCELLED = object()


def _outcome(future: futures.Future) -> Any:
    """A finished future's result, or the exception it raised (any, even SystemExit)."""
    try:
        return future.result()
    except BaseException as error:  # a task's exception is its result
        return error


def _broken(pool: Any) -> bool:
    flags = getattr(pool, "_flags", None)
    return bool(getattr(flags, "broken", None))


#: how much lower a low-priority worker runs (``nice``: 0 normal, 19 lowest)
NICE = 10

_POOLS: dict[tuple[int, int], Any] = {}
#: each warm pool's workers: the user code they ran, and the import path they started with
_POOL_CODE: dict[tuple[int, int], tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _serves(key: tuple[int, int], code: tuple[str, ...]) -> bool:
    """Whether the warm pool ``key`` can run stages of user ``code`` (``Pipeline.user_code``).

    Built-in stages run alike in every worker. A user's module stays in a worker as it
    was first imported there, and a worker finds modules on the import path it started
    with: user code needs workers that started with this process's import path and ran
    no other version of it.
    """
    if not code:
        return True
    ran, path = _POOL_CODE.get(key, ((), ()))
    return path == tuple(sys.path) and ran in ((), code)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Workers started meanwhile ignore Ctrl-C: it reaches only this process, which cancels.

    Ctrl-C is blocked in this thread meanwhile: a worker inherits the blocked mask through
    fork and exec, and ignores Ctrl-C from its first step (:func:`_start_worker`). A Ctrl-C
    that comes meanwhile stays pending, or is taken by another thread of this process,
    whose handler runs here as usual; it is never lost, as it was when this process set
    Ctrl-C to be ignored while it submitted a job.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def prestart(
    workers: int, modules: Iterable[str], *, low_priority: bool = False, code: tuple[str, ...] = ()
) -> list[futures.Future]:
    """Start the warm pool's workers now, each importing ``modules``; do not wait: return
    the futures of those imports (one done: a worker is ready).

    Called before a batch plans its tasks, so that the workers' start-up (importing
    scikit-image, pandas and the stages' modules takes seconds) overlaps the planning
    instead of following it. A warm pool at that priority that can run ``code`` is
    used as it is, whatever its size: a run takes its workers from a pool at least as
    large as it needs (:func:`_process_pool`), and a pool started for fewer workers than
    a run asks for was started for a run of fewer tasks (the command line's guess).
    """
    nice = NICE if low_priority else 0
    with _sigint_ignored():
        warm = [key for key, pool in _POOLS.items() if key[1] == nice and _live(pool) and _serves(key, code)]
        key, pool = (warm[0], _POOLS[warm[0]]) if warm else _process_pool(workers, nice, code)
        return [pool.submit(_import_all, tuple(modules)) for _ in range(key[0])]


def warm_workers(low_priority: bool = False) -> int:
    """How many worker processes of a warm pool at that priority wait for work (0: a run
    on processes would start its workers first)."""
    nice = NICE if low_priority else 0
    return max((key[0] for key, pool in _POOLS.items() if key[1] == nice and _live(pool)), default=0)


def shut_down_pools() -> None:
    """Stop every warm pool's workers (idle: nothing is lost), for a process about to end."""
    for key, pool in list(_POOLS.items()):
        with contextlib.suppress(Exception):
            pool.shutdown(wait=True, kill_workers=True)
        _POOLS.pop(key, None)


def _import_all(modules: tuple[str, ...]) -> None:
    """In a worker: import the engine's task code and ``modules`` (failures surface later)."""
    for name in ("napari_batch_pipeline.core.engine.jobs", *modules):
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _process_pool(workers: int, nice: int = 0, code: tuple[str, ...] = ()) -> tuple[tuple[int, int], Any]:
    """This package's warm loky pool for ``workers`` processes at ``nice``, and its key.

    The pool of exactly that many workers, else a larger warm one (its extra workers
    wait); made anew when it broke, or when its workers may hold other user code than
    ``code`` (:func:`_serves`): a module imported in a worker stays as it was imported.
    """
    from loky import ProcessPoolExecutor

    for gone in [k for k, p in _POOLS.items() if not _live(p)]:
        _POOLS.pop(gone)  # broken or shut down: its workers are gone
    key = (workers, nice)
    larger = sorted(k for k, p in _POOLS.items() if k[1] == nice and k[0] > workers and _live(p))
    usable = [k for k in ([key] if _live(_POOLS.get(key)) else []) + larger if _serves(k, code)]
    if usable:
        key = usable[0]
    else:
        stale = _POOLS.pop(key, None)
        if stale is not None:
            stale.shutdown(wait=False, kill_workers=True)  # idle between runs: nothing is lost
        share = max(1, (os.cpu_count() or 1) // workers)
        _POOLS[key] = ProcessPoolExecutor(
            workers, timeout=300, initializer=_start_worker, initargs=(share, nice)
        )
        _POOL_CODE[key] = ((), tuple(sys.path))
    if code:
        _POOL_CODE[key] = (code, tuple(sys.path))
    return key, _POOLS[key]


def _live(pool: Any) -> bool:
    """Whether ``pool`` can take work (not missing, broken or shut down)."""
    flags = getattr(pool, "_flags", None)
    return pool is not None and not getattr(flags, "broken", False) and not getattr(flags, "shutdown", False)


#: the thread pools of numerical libraries a stage may use (BLAS, OpenMP, numexpr)
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _start_worker(share: int, nice: int) -> None:
    """In a new worker: its priority, and the libraries' own thread pools get this worker's
    share of the cores, so that N workers do not each start one thread per core (what the
    user set stays). Ctrl-C, blocked since the worker started, is ignored from now on:
    it is for the process that runs the batch, which cancels.

    A worker that crashes does not print Python's crash report (some 3 kB naming every
    extension module) over the command's progress: loky turns the report on in its
    workers unless ``PYTHONFAULTHANDLER`` is set, and the task's ``error`` already says
    how its worker died. Set ``PYTHONFAULTHANDLER=1`` to have the reports."""
    os.environ.setdefault("PYTHONFAULTHANDLER", "")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, str(share))
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(share)
