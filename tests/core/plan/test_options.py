"""core.options: every batch option checked in one place, messages that speak of meaning."""

from __future__ import annotations

import pytest

from napari_batch_pipeline.core.engine.executors import DaskExecutor, Executor, ProcessExecutor, make_executor
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.plan.options import BatchOptions, cpu_count


@pytest.mark.parametrize(
    ("options", "words", "names"),
    [
        ({"strategy": "diagonal"}, "strategy 'diagonal'", ("strategy",)),
        ({"executor": "gpu"}, "executor 'gpu'", ("executor",)),
        ({"workers": 0}, "workers: expected 1 or more", ("workers",)),
        ({"limit": -1}, "limit: expected 1 or more", ("limit",)),
        ({"memory_budget": 0}, "memory budget", ("memory_budget",)),
        ({"scheduler": "tcp://a:1", "executor": "processes"}, "dask executor", ("scheduler", "executor")),
    ],
)
def test_bad_options_are_refused_by_meaning(options: dict, words: str, names: tuple[str, ...]) -> None:
    with pytest.raises(PipelineError, match=words) as excinfo:
        BatchOptions(**options)
    assert excinfo.value.options == names
    assert "--" not in str(excinfo.value)


def test_worker_count() -> None:
    assert BatchOptions().worker_count == cpu_count()  # auto: threads or processes, one per core
    assert BatchOptions(executor="serial", workers=4).worker_count == 1
    assert BatchOptions(executor="processes", workers=3).worker_count == 3
    assert BatchOptions(executor="threads").worker_count == cpu_count()


def test_sweep_values_become_lists() -> None:
    options = BatchOptions(sweep={"blurred.sigma": (1, 2)})
    assert options.sweep == {"blurred.sigma": [1, 2]}
    assert options.inputs() == {"pattern": None, "recursive": False, "metadata": None, "limit": None}


def test_the_executor_follows_the_options() -> None:
    serial = make_executor(BatchOptions(executor="serial"))
    assert type(serial) is Executor and serial.workers == 1
    with pytest.raises(ValueError, match="resolve"):  # auto means nothing until a pipeline is known
        make_executor(BatchOptions())
    pool = make_executor(BatchOptions(executor="processes", workers=2))
    try:
        assert isinstance(pool, ProcessExecutor) and pool.workers == 2
    finally:
        pool.close()
    assert not issubclass(DaskExecutor, ProcessExecutor)


def test_the_engines_local_cluster_keeps_glibcs_adaptive_malloc() -> None:
    """dask sets MALLOC_TRIM_THRESHOLD_ in its workers, which made every image-sized array
    be mapped and zeroed afresh (a task took 1.3x as long); the engine's own cluster does not."""
    import os

    executor = DaskExecutor(workers=1)
    try:
        environments = executor._client.run(lambda: dict(os.environ))
    finally:
        executor.close()
    (environment,) = environments.values()
    assert "MALLOC_TRIM_THRESHOLD_" not in environment
    assert environment.get("OMP_NUM_THREADS") == "1"  # dask's other settings stay
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ  # nor leaked into this process


def test_a_run_starts_no_more_workers_than_tasks() -> None:
    assert make_executor(BatchOptions(executor="threads", workers=4), tasks=1).workers == 1
    assert make_executor(BatchOptions(executor="threads", workers=4), tasks=3).workers == 3
    assert make_executor(BatchOptions(executor="threads", workers=2), tasks=50).workers == 2
    assert make_executor(BatchOptions(executor="threads", workers=2), tasks=0).workers == 1  # all resumed
