"""Executors: serial, threads, processes and dask.distributed behind one interface.

An executor maps a picklable function over jobs with a bounded number in flight and
yields ``(job, result)`` pairs as they finish; a job whose worker died yields an
exception as its result (a :class:`~.worker_guard.WorkerDied` when its process died
under it twice). ``cancel()`` stops promptly: nothing new starts, process workers are
killed. The serial one is in :mod:`.executor_base`, the process pool in
:mod:`.process_pool`.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any

from ..errors import PipelineError
from ..plan.options import BatchOptions
from .executor_base import Executor
from .process_pool import ProcessExecutor
from .worker_guard import Guarded, WorkerDied

__all__ = ["DaskExecutor", "Executor", "ProcessExecutor", "ThreadExecutor", "make_executor"]


class ThreadExecutor(Executor):
    """A pool of threads in this process (numpy and scikit-image release the GIL)."""

    name = "threads"

    def __init__(self, workers: int = 2):
        super().__init__(workers)
        self._executor = futures.ThreadPoolExecutor(self.workers, thread_name_prefix="batch")

    def map(self, function: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """Submit the first window now; iterate to collect results."""
        pending: dict[futures.Future, Any] = {}
        jobs = iter(jobs)

        def submit(count: int) -> None:
            for job in itertools.islice(jobs, count):
                if self._cancelled.is_set():
                    return
                try:
                    pending[self._executor.submit(function, job)] = job
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
                except BaseException as error:  # even SystemExit fails one task alone
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

    def cancel(self) -> None:
        super().cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """dask.distributed: an existing scheduler, or a LocalCluster of worker processes.

    A task whose worker dies is tried once more on another worker (a LocalCluster's
    scheduler allows one failure), then fails with :class:`WorkerDied`.
    """

    name = "dask"

    def __init__(self, workers: int = 2, scheduler: str | None = None, *, task_timeout: float | None = None):
        super().__init__(workers)
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise PipelineError(
                "the dask executor needs dask.distributed: pip install 'dask[distributed]'"
            ) from None
        self.task_timeout = task_timeout
        self._cluster = None
        self._config: Any = None
        self._futures: list[Any] = []
        try:
            if scheduler:
                self._client = Client(scheduler, timeout="10s")
            else:
                # kept while the cluster lives: the cluster reads some of it at any time
                self._config = dask.config.set(_LOCAL_CLUSTER_CONFIG)
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # any free port: never clashes with another cluster
                    # critical only: a cancel closes the workers while they heartbeat, and
                    # distributed logged that as an error with its traceback (task errors
                    # reach the tables through the engine, not through these logs)
                    silence_logs=50,
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
        guarded = Guarded(function, self.task_timeout)

        def submit(count: int) -> None:
            for job in itertools.islice(jobs, count):
                if self._cancelled.is_set():
                    return
                future = self._client.submit(guarded, job, pure=False)
                owners[future.key] = job
                self._futures.append(future)
                running.add(future)

        submit(self.window)
        return self._collect(running, owners, submit)

    def _collect(self, running: Any, owners: dict[Any, Any], submit: Callable[[int], None]) -> Iterator[Any]:
        for future in running:
            if self._cancelled.is_set():
                break
            job = owners.pop(future.key)
            try:
                result = future.result()
            except BaseException as error:  # even SystemExit fails one task alone
                if self._cancelled.is_set():
                    break
                result = self._died(error) if type(error).__name__ == "KilledWorker" else error
            future.release()
            self._futures = [f for f in self._futures if f.key != future.key]
            yield job, result
            if self._cancelled.is_set():
                break
            submit(1)
        self._cancel_futures()

    def _died(self, error: BaseException) -> WorkerDied:
        limit = f" (or ran past the task timeout of {self.task_timeout:g} s)" if self.task_timeout else ""
        return WorkerDied(f"its worker process died twice while running this task{limit}")

    def cancel(self) -> None:
        """Stop at once: tasks in flight are cancelled on the workers, nothing new starts."""
        super().cancel()
        self._cancel_futures()

    def _cancel_futures(self) -> None:
        futures_, self._futures = self._futures, []
        if futures_:
            with contextlib.suppress(Exception):
                self._client.cancel(futures_, force=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close(timeout=10)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close(timeout=10)
        if self._config is not None:
            self._config.__exit__(None, None, None)
            self._config = None


#: A LocalCluster's scheduler sends a worker only the task it runs (none waits there), so
#: that a worker's death is blamed on that task alone, which is tried once more; a worker
#: that died is waited for while its nanny restarts it, however slowly it imports.
#: Its workers start without dask's MALLOC_TRIM_THRESHOLD_: setting it turns off glibc's
#: adaptive mmap threshold, so that every image-sized array is mapped afresh and its
#: pages zeroed again. Measured on 1024 x 1024 images: 84 ms a task with it, 63 ms
#: without (53 ms in the engine's own process pool).
_LOCAL_CLUSTER_CONFIG = {
    "distributed.scheduler.worker-saturation": 1.0,
    "distributed.scheduler.allowed-failures": 1,
    "distributed.deploy.lost-worker-timeout": "1h",
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


def make_executor(options: BatchOptions, code: tuple[str, ...] = (), tasks: int | None = None) -> Executor:
    """Build the executor ``options`` name, with ``options.worker_count`` workers (no more
    than ``tasks``, the tasks it will run), for stages of the user's ``code``
    (``Pipeline.user_code``). ``auto`` must have been resolved (``BatchOptions.resolved``)."""
    if options.executor not in ("serial", "threads", "processes", "dask"):
        raise ValueError(f"executor {options.executor!r}: resolve the options for a pipeline first")
    count = options.worker_count if tasks is None else max(1, min(options.worker_count, tasks))
    if options.executor == "threads":
        return ThreadExecutor(count)
    if options.executor == "processes":
        return ProcessExecutor(
            count, task_timeout=options.task_timeout, low_priority=options.low_priority, code=code
        )
    if options.executor == "dask":
        return DaskExecutor(count, options.scheduler, task_timeout=options.task_timeout)
    return Executor(1)
