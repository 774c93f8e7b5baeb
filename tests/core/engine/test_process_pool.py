"""The process pool's set-up: workers started early, their priority, their thread share,
and the words for a worker that died."""

from __future__ import annotations

import os
import time

import pytest

from napari_batch_pipeline.core.engine import process_pool
from napari_batch_pipeline.core.engine.process_pool import (
    NICE,
    ProcessExecutor,
    _process_pool,
    prestart,
    shut_down_pools,
)
from napari_batch_pipeline.core.engine.worker_guard import TIMEOUT_EXIT, worker_fate
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.plan.options import BatchOptions


def _niceness(job: int) -> int:
    return os.nice(0)


def _threads(job: int) -> str | None:
    return os.environ.get("OMP_NUM_THREADS")


@pytest.mark.parametrize(("low_priority", "expected"), [(False, 0), (True, NICE)])
def test_low_priority_workers_run_below_this_process(low_priority: bool, expected: int) -> None:
    executor = ProcessExecutor(2, low_priority=low_priority)
    niceness = dict(executor.map(_niceness, [1, 2, 3]))
    assert set(niceness.values()) == {os.nice(0) + expected}


def test_workers_get_their_share_of_the_cores_for_library_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    executor = ProcessExecutor(2)
    share = dict(executor.map(_threads, [1, 2]))
    if "OMP_NUM_THREADS" in os.environ:  # what the user set stays
        assert set(share.values()) == {os.environ["OMP_NUM_THREADS"]}
    else:
        assert set(share.values()) == {str(max(1, (os.cpu_count() or 1) // 2))}


def test_prestart_starts_the_workers_without_waiting() -> None:
    shut_down_pools()  # cold: no warm pool to take the workers from
    started = time.perf_counter()
    prestart(3, ["json"])
    assert time.perf_counter() - started < 2  # returns before the workers have imported
    key, pool = _process_pool(3)
    assert key == (3, 0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(getattr(pool, "_processes", {})) < 3:
        time.sleep(0.05)
    assert len(pool._processes) == 3


@pytest.mark.parametrize(
    ("message", "timeout", "expected"),
    [
        (
            "The exit codes of the workers are {SIGSEGV(-11)}",
            None,
            "signal SIGSEGV: a crash in compiled code",
        ),
        ("The exit codes of the workers are {SIGKILL(-9)}", None, "killed, for instance by the system"),
        ("The exit codes of the workers are {EXIT(3)}", None, "exit status 3"),
        (
            f"The exit codes of the workers are {{EXIT({TIMEOUT_EXIT})}}",
            2.5,
            "ran past the task timeout of 2.5 s",
        ),
        ("A worker process was unexpectedly terminated", None, "its worker process died (RuntimeError)"),
    ],
)
def test_the_worker_fate_in_words(message: str, timeout: float | None, expected: str) -> None:
    assert expected in worker_fate(RuntimeError(message), timeout)


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), True, "3"])
def test_a_task_timeout_must_be_a_positive_number_of_seconds(value: object) -> None:
    with pytest.raises(PipelineError, match="task timeout"):
        BatchOptions(executor="processes", task_timeout=value)  # type: ignore[arg-type]


# -- Ctrl-C while workers start ---------------------------------------------------------------

_CTRL_C_IN_THE_WINDOW = """
import os, signal
from napari_batch_pipeline.core.engine.process_pool import _sigint_ignored
seen = []
signal.signal(signal.SIGINT, lambda *_: seen.append("cancel"))
with _sigint_ignored():
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while a job is submitted
    assert not seen
print(seen)
"""


def test_a_ctrl_c_while_a_job_is_submitted_still_cancels() -> None:
    # It was lost: this process ignored Ctrl-C while it submitted a job, so a Ctrl-C at
    # that moment let the whole batch run on (seen as a flaky Ctrl-C test under load).
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _CTRL_C_IN_THE_WINDOW], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['cancel']"


def _ctrl_c_state(job: int) -> tuple[bool, bool]:
    import signal

    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN, blocked


def test_workers_started_in_the_window_ignore_ctrl_c_and_block_nothing() -> None:
    import signal

    from napari_batch_pipeline.core.engine.process_pool import _sigint_ignored

    with _sigint_ignored():
        _, pool = _process_pool(1, 0)
        future = pool.submit(_ctrl_c_state, 0)
    assert future.result(timeout=120) == (True, False)
    # and this process takes Ctrl-C again
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


def test_a_run_of_fewer_tasks_takes_its_workers_from_a_larger_warm_pool() -> None:
    """One image in a session whose pool has two warm workers: no new worker starts; and
    a warm pool of any size serves a prestart (the command line started it for the run)."""
    shut_down_pools()
    prestart(2, [])
    pools = dict(process_pool._POOLS)
    assert list(pools) == [(2, 0)]
    one = ProcessExecutor(1)
    assert dict(one.map(_niceness, [1])) == {1: os.nice(0)}
    prestart(4, [])
    assert pools == process_pool._POOLS  # the same pool object, nothing started
    assert ProcessExecutor(4)._key == (4, 0)  # a run that needs more workers gets them
    shut_down_pools()
