"""core.strategies: vertical and horizontal behind one interface, on any executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_batch_pipeline.core.batch import BatchRun
from napari_batch_pipeline.core.engine.events import StageProgress
from napari_batch_pipeline.core.engine.executors import Executor
from napari_batch_pipeline.core.engine.strategies import (
    STRATEGY_CLASSES,
    Horizontal,
    Strategy,
    Vertical,
    make_strategy,
)
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.run_folder.records import TaskRecord


def _jobs(pipeline: Pipeline, images: Path, out: Path) -> tuple[BatchRun, list]:
    batch = BatchRun(pipeline, images, out)
    batch.folder.prepare(pipeline)
    return batch, [batch.job(task) for task in batch.tasks]


@pytest.mark.parametrize("name", sorted(STRATEGY_CLASSES))
def test_every_strategy_gives_one_record_per_task(
    name: str, pipeline: Pipeline, image_folder: Path, tmp_path: Path
) -> None:
    _, jobs = _jobs(pipeline, image_folder, tmp_path / "out")
    strategy = make_strategy(name)
    assert strategy.name == name
    items = list(strategy.run(pipeline, jobs, Executor(1)))
    records = [item for item in items if isinstance(item, TaskRecord)]
    assert sorted(r.key for r in records) == sorted(job.key for job in jobs)
    assert all(r.done and r.summary["nuclei.count"] > 0 for r in records)
    progress = [item for item in items if isinstance(item, StageProgress)]
    if name == "horizontal":
        assert [p.stage for p in progress if p.done == p.total] == pipeline.stage_names
    else:
        assert progress == []
    for job in jobs:
        assert job.layout.task_output("labels", job.image, job.label).is_file()


def test_vertical_start_runs_the_first_task_here_measured(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path
) -> None:
    _, jobs = _jobs(pipeline, image_folder, tmp_path / "out")
    started = Vertical().start(jobs, lambda: Executor(1), serial=True)
    assert [r.key for r in started.probes] == [jobs[0].key]
    seconds, held, written = started.measured or (0, 0, 0)
    assert seconds > 0 and held > 0 and written > 0
    assert [j.key for j in started.remaining] == [j.key for j in jobs[1:]]
    assert started.executor is None and started.results is None


def test_horizontal_start_leaves_every_task_to_run(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path
) -> None:
    _, jobs = _jobs(pipeline, image_folder, tmp_path / "out")
    started = Horizontal().start(jobs, lambda: Executor(1), serial=True)
    assert started.probes == [] and started.measured is None and len(started.remaining) == len(jobs)


def test_a_failing_stage_fails_its_task_alone_in_both(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path
) -> None:
    (image_folder / "img1.tif").write_bytes(b"not a tiff")
    for name in STRATEGY_CLASSES:
        _, jobs = _jobs(pipeline, image_folder, tmp_path / name)
        records = [
            i for i in make_strategy(name).run(pipeline, jobs, Executor(1)) if isinstance(i, TaskRecord)
        ]
        failed = [r for r in records if not r.done]
        assert [r.image for r in failed] == ["img1.tif"], name
        assert failed[0].traceback and "img1.tif" in failed[0].error


def test_a_strategy_must_say_how_it_runs() -> None:
    class Incomplete(Strategy):  # no run()
        name = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
