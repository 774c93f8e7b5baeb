"""The plan of a batch: built, inspected and estimated with nothing written, no worker
started; everything a run would refuse is refused here; BatchRun runs exactly this plan."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from napari_batch_pipeline.core.batch import BatchRun
from napari_batch_pipeline.core.engine import process_pool
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline import Pipeline
from napari_batch_pipeline.core.plan import BatchOptions, BatchPlan, plan_batch


def _listing(*folders: Path) -> list[tuple[str, int, int]]:
    """Every path under ``folders`` with its size and modification time."""
    return sorted(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns) for folder in folders for p in folder.rglob("*")
    )


def _children() -> set[int]:
    return {child.pid for child in psutil.Process(os.getpid()).children(recursive=True)}


@pytest.mark.parametrize("executor", ["serial", "threads", "processes", "dask"])
def test_a_plan_is_built_and_estimated_without_writing_or_starting_a_worker(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path, executor: str
) -> None:
    before, children, pools = _listing(tmp_path), _children(), dict(process_pool._POOLS)
    plan = plan_batch(
        pipeline,
        image_folder,
        tmp_path / "run",
        executor=executor,
        workers=2,
        sweep={"blurred.sigma": [1, 2]},
    )
    estimate = plan.estimate()
    assert isinstance(plan, BatchPlan)
    assert estimate.tasks == len(plan.tasks) == 8 and estimate.workers == (1 if executor == "serial" else 2)
    assert _listing(tmp_path) == before  # not even the run folder is made
    assert not (tmp_path / "run").exists()
    assert _children() == children and pools == process_pool._POOLS


def test_a_plan_lists_its_tasks_in_order_with_their_values_and_output_names(
    pipeline: Pipeline, image_folder: Path, image_names: list[str]
) -> None:
    plan = plan_batch(pipeline, image_folder, sweep={"blurred.sigma": [1, 2.5]})
    assert [t.image for t in plan.tasks] == [n for n in image_names for _ in range(2)]
    assert [t.index for t in plan.tasks] == list(range(8))
    assert [t.values for t in plan.tasks] == [{"blurred.sigma": 1.0}, {"blurred.sigma": 2.5}] * 4
    assert plan.param_sets == [{"blurred.sigma": 1.0}, {"blurred.sigma": 2.5}]
    assert plan.output_names[:2] == ["img1__blurred.sigma=1.0", "img1__blurred.sigma=2.5"]
    assert len(set(plan.output_names)) == 8
    assert plan.sweep == {"blurred.sigma": [1, 2.5]}
    assert plan.output_dir is None and plan.input_dir == image_folder.resolve()
    assert plan.params_table is None and plan.unmatched == 0
    assert [s.relative for s in plan.files] == image_names


def test_a_plan_takes_checked_options_or_keywords_not_both(pipeline: Pipeline, image_folder: Path) -> None:
    options = BatchOptions(executor="serial", limit=2)
    assert len(plan_batch(pipeline, image_folder, options=options).tasks) == 2
    with pytest.raises(TypeError, match="not both"):
        plan_batch(pipeline, image_folder, options=options, limit=3)
    with pytest.raises(PipelineError, match="workers"):
        plan_batch(pipeline, image_folder, workers=0)


def test_a_plan_takes_the_pipeline_file(pipeline_file: Path, image_folder: Path) -> None:
    plan = plan_batch(pipeline_file, image_folder)
    assert plan.pipeline == Pipeline.from_yaml(pipeline_file) and len(plan.tasks) == 4


def test_a_plan_applies_the_parameter_table(pipeline: Pipeline, image_folder: Path, tmp_path: Path) -> None:
    table = tmp_path / "params.csv"
    table.write_text("image,blurred.sigma\nimg2.tif,3\n")
    plan = plan_batch(pipeline, image_folder, params=table)
    values = {t.image: t.values for t in plan.tasks}
    assert values["img2.tif"] == {"blurred.sigma": 3.0}
    assert plan.unmatched == 3
    assert plan.params_provenance() == {
        **plan.params_table.describe(),  # type: ignore[union-attr]
        "rows": 1,
        "matched_tasks": 1,
        "unmatched_tasks": 3,
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"group_by": ["plate"]}, "plate"),
        ({"pattern": "*.png"}, "no files"),
    ],
)
def test_a_plan_refuses_what_a_run_would_refuse(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path, options: dict, message: str
) -> None:
    before = _listing(tmp_path)
    with pytest.raises(PipelineError, match=message):
        plan_batch(pipeline, image_folder, tmp_path / "run", **options)
    assert _listing(tmp_path) == before


def test_a_plan_refuses_its_input_folder_as_output(pipeline: Pipeline, image_folder: Path) -> None:
    with pytest.raises(PipelineError, match="must differ from the input folder"):
        plan_batch(pipeline, image_folder, image_folder / ".")


def test_the_output_folder_inside_the_input_is_not_planned_as_input(
    pipeline: Pipeline, image_folder: Path, finished_run: object, tmp_path: Path
) -> None:
    nested = image_folder / "run"
    nested.mkdir()
    (nested / "img9.tif").write_bytes((image_folder / "img1.tif").read_bytes())
    planned = plan_batch(pipeline, image_folder, nested, recursive=True)
    assert "run/img9.tif" not in [t.image for t in planned.tasks]
    assert "run/img9.tif" in [t.image for t in plan_batch(pipeline, image_folder, recursive=True).tasks]


@pytest.mark.parametrize("strategy", ["vertical", "horizontal"])
def test_batch_run_runs_exactly_the_plan(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path, strategy: str
) -> None:
    options = {"executor": "serial", "strategy": strategy, "sweep": {"blurred.sigma": [1, 2]}}
    planned = plan_batch(pipeline, image_folder, tmp_path / "run", **options)
    batch = BatchRun(pipeline, image_folder, tmp_path / "run", **options)
    assert batch.plan == planned
    assert batch.tasks == planned.tasks and batch.sources == planned.sources
    assert batch.estimate(measured=(1.0, 10, 5)) == planned.estimate(measured=(1.0, 10, 5))
    finished = [e for e in batch.events() if type(e).__name__ == "TaskFinished"]
    assert sorted(e.record.key for e in finished) == sorted(t.key for t in planned.tasks)
    assert batch.report is not None and batch.report.done == 8
