"""The plan: sweep options, the parameter grid, tasks, and the memory and time estimate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_batch_pipeline import cli
from napari_batch_pipeline.core.batch import BatchRun, run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.images.sources import find_images
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.plan import estimate, make_tasks, parameter_sets, parse_size, parse_sweep
from napari_batch_pipeline.core.plan.estimate import WORKER_BASE_BYTES

# -- parse_sweep ------------------------------------------------------------------------------


def test_parse_sweep_reads_yaml_scalars() -> None:
    sweep = parse_sweep(
        [
            "blurred.sigma=1,2.5, 3",
            "mask.method=otsu,li",
            "labels.connectivity=1",
            "x.y=true,null,1e-3,-2E2,'a b'",
        ]
    )
    assert sweep == {
        "blurred.sigma": [1, 2.5, 3],
        "mask.method": ["otsu", "li"],
        "labels.connectivity": [1],
        "x.y": [True, None, 0.001, -200.0, "a b"],
    }
    assert [type(v) for v in sweep["blurred.sigma"]] == [int, float, int]
    assert isinstance(sweep["x.y"][2], float)  # YAML 1.1 alone would read '1e-3' as text
    assert parse_sweep([]) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["blurred.sigma"], "expected STAGE.PARAM=V1,V2"),
        (["sigma=1,2"], "expected STAGE.PARAM=V1,V2"),
        (["blurred.sigma="], "expected STAGE.PARAM=V1,V2"),
        (["blurred.sigma=, ,"], "expected STAGE.PARAM=V1,V2"),
        (["blurred.sigma=[1"], "cannot read the values"),
        (["blurred.sigma=1", "blurred.sigma=2"], "given twice"),
    ],
)
def test_parse_sweep_errors(options: list[str], message: str) -> None:
    with pytest.raises(PipelineError, match=message) as excinfo:
        parse_sweep(options)
    assert excinfo.value.__cause__ is None


# -- parameter_sets ---------------------------------------------------------------------------


def test_parameter_sets_without_a_sweep_is_one_empty_set(pipeline: Pipeline) -> None:
    assert parameter_sets(pipeline, None) == [{}]
    assert parameter_sets(pipeline, {}) == [{}]


def test_parameter_sets_is_the_grid_with_normalised_values(pipeline: Pipeline) -> None:
    sets = parameter_sets(pipeline, {"blurred.sigma": [1, 2, 3], "mask.method": ["otsu", "li"]})
    assert sets == [
        {"blurred.sigma": 1.0, "mask.method": "otsu"},
        {"blurred.sigma": 1.0, "mask.method": "li"},
        {"blurred.sigma": 2.0, "mask.method": "otsu"},
        {"blurred.sigma": 2.0, "mask.method": "li"},
        {"blurred.sigma": 3.0, "mask.method": "otsu"},
        {"blurred.sigma": 3.0, "mask.method": "li"},
    ]
    assert all(isinstance(s["blurred.sigma"], float) for s in sets)
    # every set runs: the pipeline with it applied has those parameters
    swept = pipeline.with_params(sets[-1])
    assert swept["blurred"].params["sigma"] == 3.0 and swept["mask"].params["method"] == "li"


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"nope.sigma": [1]}, "'nope.sigma'"),
        ({"blurred": [1]}, "'blurred'"),
        ({"blurred.radius": [1]}, "unknown parameter"),
        ({"blurred.sigma": ["big"]}, "expected a number"),
        ({"mask.method": ["otsu", "bogus"]}, "expected one of"),
        ({"labels.connectivity": [1.5]}, "whole number"),
        ({"blurred.sigma": []}, "non-empty list"),
        ({"blurred.sigma": "12"}, "non-empty list"),
        ({"blurred.sigma": [1, 1]}, "repeat"),
        ({"blurred.sigma": [2, 2.0]}, "comes twice"),
    ],
)
def test_parameter_sets_validates_against_the_pipeline(pipeline: Pipeline, sweep: dict, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        parameter_sets(pipeline, sweep)


def test_make_tasks_is_every_image_with_every_set(
    pipeline: Pipeline, image_folder: Path, image_names: list[str]
) -> None:
    sources = find_images(image_folder)
    sets = parameter_sets(pipeline, {"blurred.sigma": [1, 2, 3], "mask.method": ["otsu", "li"]})
    tasks = make_tasks(sources, sets)
    assert len(tasks) == len(image_names) * 6
    assert [t.index for t in tasks] == list(range(len(tasks)))
    assert [t.source.relative for t in tasks[:7]] == [image_names[0]] * 6 + [image_names[1]]
    assert len({t.key for t in tasks}) == len(tasks)
    assert len({t.output_stem for t in tasks}) == len(tasks)
    assert tasks[1].output_stem == "img1__blurred.sigma=1.0,mask.method=li"
    # without a sweep, outputs are named by the image alone
    plain = make_tasks(sources, [{}])
    assert [t.output_stem for t in plain] == [Path(n).stem for n in image_names]
    assert [t.key for t in plain] == image_names


# -- estimate ---------------------------------------------------------------------------------


def test_estimate_fields_are_sane(pipeline: Pipeline, image_folder: Path) -> None:
    sources = find_images(image_folder)
    serial = estimate(pipeline, sources, 6, executor="serial", workers=4, budget=2**40)
    assert serial.tasks == len(sources) * 6
    assert serial.workers == 1 and serial.in_flight == 1
    assert 0 < serial.seconds_per_task < 5
    assert serial.seconds == pytest.approx(serial.seconds_per_task * serial.tasks)
    image_bytes = 96 * 96 * 2
    assert image_bytes < serial.peak_bytes_per_task < 50 * 2**20
    assert serial.output_bytes_per_task == 96 * 96 * np.dtype(np.int32).itemsize  # the labels
    assert serial.total_bytes == serial.peak_bytes_per_task
    assert serial.fits

    measured = (serial.seconds_per_task, serial.peak_bytes_per_task, serial.output_bytes_per_task)
    pool = estimate(pipeline, sources, 6, executor="processes", workers=2, budget=2**40, measured=measured)
    assert pool.workers == 2 and pool.in_flight == 2
    assert pool.total_bytes == 2 * WORKER_BASE_BYTES + 2 * serial.peak_bytes_per_task
    assert pool.seconds == pytest.approx(serial.seconds / 2)
    small = estimate(pipeline, sources, 1, executor="processes", workers=2, budget=2**20, measured=measured)
    assert not small.fits
    # core speaks of options by their meaning; the command line adds its flags
    assert "fewer workers" in small.advice() and "memory budget" in small.advice()
    assert "--" not in small.advice()
    assert set(small.advice_options) == {"workers", "strategy", "memory_budget"}
    assert "4 task(s) on 2 worker(s)" in small.summary()


def test_estimate_skips_unreadable_first_images(pipeline: Pipeline, image_folder: Path) -> None:
    (image_folder / "img0.tif").write_bytes(b"")
    sources = find_images(image_folder)
    assert sources[0].relative == "img0.tif"
    assert estimate(pipeline, sources, budget=2**40).output_bytes_per_task > 0


def test_batch_estimate_writes_nothing(pipeline: Pipeline, image_folder: Path, tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    batch = BatchRun(pipeline, image_folder, tmp_path / "out", sweep={"blurred.sigma": [1, 2]})
    plan = batch.estimate()
    assert plan.tasks == 8
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    ("text", "expected"), [("4G", 4 * 2**30), ("512 MiB", 512 * 2**20), ("1000000", 10**6), ("1.5k", 1536)]
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_error() -> None:
    with pytest.raises(PipelineError, match="4G or 512M"):
        parse_size("lots")


# -- memory budget ----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["vertical", "horizontal"])
def test_memory_budget_too_small_refuses_to_run(
    pipeline: Pipeline, image_folder: Path, tmp_path: Path, strategy: str
) -> None:
    out = tmp_path / "out"
    with pytest.raises(PipelineError, match="over the budget") as excinfo:
        run_batch(pipeline, image_folder, out, memory_budget=1024, strategy=strategy)
    assert "memory budget" in str(excinfo.value) and "--" not in str(excinfo.value)
    assert "memory_budget" in excinfo.value.options
    # nothing ran: no task outputs, no ledger
    assert not (out / "labels").exists()
    assert not (out / ".ledger.jsonl").exists()


def test_memory_budget_too_small_is_exit_2_with_a_suggestion(
    pipeline_file: Path, image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["run", str(pipeline_file), str(image_folder), "-o", str(out), "--executor", "serial"]
    assert cli.main([*argv, "--memory-budget", "1K", "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "over the budget" in lines[0] and "--memory-budget" in lines[0]
    assert "Traceback" not in err
    # the same run with enough memory goes ahead in the same folder
    assert cli.main([*argv, "--memory-budget", "8G", "--quiet"]) == 0


# -- values built to hurt ---------------------------------------------------------------------

_ALIAS_BOMB = (
    "["
    + ", ".join(
        ["&a [x, x, x, x, x, x, x, x, x]"]
        + [
            f"&{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ]
    )
    + ", *i]"
)
_DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize("value", [_ALIAS_BOMB, _DEEP], ids=["alias bomb", "deep nesting"])
def test_a_swept_value_built_to_hurt_is_refused_at_once(value: str) -> None:
    import time

    start = time.perf_counter()
    with pytest.raises(PipelineError, match="cannot read the values"):
        parse_sweep([f"blurred.sigma={value}"])
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("value", [_ALIAS_BOMB, _DEEP], ids=["alias bomb", "deep nesting"])
def test_a_parameter_table_cell_built_to_hurt_is_refused_at_once(
    value: str, pipeline: Pipeline, image_folder: Path, tmp_path: Path
) -> None:
    import time

    from napari_batch_pipeline.core.plan import plan_batch

    table = tmp_path / "params.csv"
    table.write_text(f'image,blurred.sigma\nimg1.tif,"{value}"\n', encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(PipelineError, match="cannot read"):
        plan_batch(pipeline, image_folder, params=table)
    assert time.perf_counter() - start < 5


def test_the_estimate_scales_the_first_image_to_the_largest(pipeline: Pipeline, tmp_path: Path) -> None:
    # A folder of a small image then a large one was estimated from the small one alone
    # (201 MiB estimated, 7.1 GB at peak): a memory budget let it through.
    import tifffile

    from napari_batch_pipeline.core.plan import plan_batch
    from napari_batch_pipeline.core.synthetic import nuclei_image

    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "a_small.tif", nuclei_image(shape=(128, 128), n_nuclei=4, seed=1))
    tifffile.imwrite(folder / "b_large.tif", nuclei_image(shape=(1024, 1024), n_nuclei=40, seed=2))
    both = plan_batch(pipeline, folder, executor="serial").estimate()
    alone = plan_batch(pipeline, folder, pattern="b_*.tif", executor="serial").estimate()
    assert 0.5 < both.largest_peak_bytes / alone.peak_bytes_per_task < 2
    assert both.total_bytes >= both.largest_peak_bytes > 30 * both.peak_bytes_per_task
    assert "for the largest image" in both.summary()
    tight = plan_batch(pipeline, folder, executor="serial", memory_budget=both.peak_bytes_per_task * 4)
    with pytest.raises(PipelineError, match="over the budget"):
        tight.check_budget()
