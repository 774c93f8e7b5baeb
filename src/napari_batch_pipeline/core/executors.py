"""Executors: serial, threads, processes and dask.distributed behind one interface.

An executor maps a picklable function over jobs with a bounded number in flight and
yields ``(job, result)`` pairs as they finish; a job whose worker died yields its
exception as the result. ``cancel()`` stops promptly: nothing new starts, process workers
are killed.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any

from .errors import PipelineError
from .options import BatchOptions

__all__ = ["Executor", "make_executor"]


class Executor:
    """Serial: one job after another in this process."""

    name = "serial"

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._cancelled = threading.Event()

    @property
    def window(self) -> int:
        """How many jobs may be in flight at once."""
        return 2 * self.workers if self.workers > 1 else 1

    def map(self, function: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        for job in jobs:
            if self._cancelled.is_set():
                return
            yield job, function(job)

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def close(self) -> None:
        """Release workers (a no-op for serial)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PoolExecutor(Executor):
    """Shared logic of the pools that return concurrent.futures futures (``self._executor``)."""

    _executor: Any

    def map(self, function: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """Submit the first window now (workers start at once); iterate to collect results."""
        pool = self._executor
        pending: dict[futures.Future, Any] = {}
        jobs = iter(jobs)

        def submit(count: int) -> None:
            for job in itertools.islice(jobs, count):
                if self._cancelled.is_set():
                    return
                try:
                    pending[pool.submit(function, job)] = job
                except RuntimeError:  # cancel() shut the pool down from another thread
                    if self._cancelled.is_set():
                        return
                    raise

        submit(self.window)
        return self._collect(pending, submit)

    def _collect(
        self, pending: dict[futures.Future, Any], submit: Callable[[int], None]
    ) -> Iterator[tuple[Any, Any]]:
        while pending and not self._cancelled.is_set():
            finished, _ = futures.wait(pending, timeout=0.2, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                job = pending.pop(future)
                try:
                    result = future.result()
                except Exception as error:
                    if self._cancelled.is_set():
                        continue  # stopped by cancel(): not a failure of the task
                    result = error
                yield job, result
                if self._cancelled.is_set():
                    break
            if not self._cancelled.is_set():
                submit(self.window - len(pending))
        for future in pending:
            future.cancel()


class ThreadExecutor(_PoolExecutor):
    """A pool of threads in this process (numpy and scikit-image release the GIL)."""

    name = "threads"

    def __init__(self, workers: int = 2):
        super().__init__(workers)
        self._executor = futures.ThreadPoolExecutor(self.workers, thread_name_prefix="batch")

    def cancel(self) -> None:
        super().cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class ProcessExecutor(_PoolExecutor):
    """A pool of worker processes (loky), kept warm between runs.

    The pool is this package's own, not loky's shared one that joblib uses, so that a
    batch neither breaks nor replaces the workers of joblib (or scikit-learn) in the same
    Python session.
    """

    name = "processes"

    def __init__(self, workers: int = 2):
        super().__init__(workers)
        self._executor = _process_pool(self.workers)
        self._stopping: list[Any] = []

    def map(self, function: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        # Workers are spawned by the first submissions; with SIGINT ignored meanwhile they
        # inherit that, so a Ctrl-C at the terminal reaches only this process, which
        # cancels cleanly, instead of printing a traceback from every starting worker.
        with _sigint_ignored():
            return super().map(function, jobs)

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
        _POOLS.pop(self.workers, None)

    def close(self) -> None:
        if self._cancelled.is_set():
            self._executor.shutdown(wait=True, kill_workers=True)
            for item in self._stopping:
                if item is not None:
                    item.join(timeout=30)


_POOLS: dict[int, Any] = {}


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _process_pool(workers: int) -> Any:
    """This package's warm loky pool of ``workers`` processes, made anew when it broke."""
    from joblib.externals.loky import ProcessPoolExecutor

    pool = _POOLS.get(workers)
    flags = getattr(pool, "_flags", None)
    if pool is None or getattr(flags, "broken", None) or getattr(flags, "shutdown", False):
        pool = _POOLS[workers] = ProcessPoolExecutor(max_workers=workers, timeout=300)
    return pool


class DaskExecutor(Executor):
    """dask.distributed: an existing scheduler, or a LocalCluster of worker processes."""

    name = "dask"

    def __init__(self, workers: int = 2, scheduler: str | None = None):
        super().__init__(workers)
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise PipelineError(
                "the dask executor needs dask.distributed: pip install 'dask[distributed]'"
            ) from None
        self._cluster = None
        try:
            if scheduler:
                self._client = Client(scheduler, timeout="10s")
            else:
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # any free port: never clashes with another cluster
                    silence_logs=40,
                )
                self._client = Client(self._cluster)
        except OSError as error:
            raise PipelineError(f"cannot connect to the dask scheduler {scheduler!r}: {error}") from None
        if scheduler:
            self.workers = max(1, len(self._client.scheduler_info().get("workers", {})))

    def map(self, function: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        from distributed import as_completed

        jobs = iter(jobs)
        running = as_completed()
        owners: dict[Any, Any] = {}

        def submit(count: int) -> None:
            for job in itertools.islice(jobs, count):
                future = self._client.submit(function, job, pure=False)
                owners[future.key] = job
                running.add(future)

        submit(self.window)
        return self._collect(running, owners, submit)

    def _collect(self, running: Any, owners: dict[Any, Any], submit: Callable[[int], None]) -> Iterator[Any]:
        for future in running:
            job = owners.pop(future.key)
            try:
                result = future.result()
            except Exception as error:
                if self._cancelled.is_set():
                    break
                result = error
            future.release()
            yield job, result
            if self._cancelled.is_set():
                break
            submit(1)
        for future in list(running.futures):
            future.cancel()

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(options: BatchOptions) -> Executor:
    """Build the executor ``options`` name, with ``options.worker_count`` workers."""
    count = options.worker_count
    if options.executor == "threads":
        return ThreadExecutor(count)
    if options.executor == "processes":
        return ProcessExecutor(count)
    if options.executor == "dask":
        return DaskExecutor(count, options.scheduler)
    return Executor(1)
