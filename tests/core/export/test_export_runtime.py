"""The runtime of exported scripts, called directly: fields, stages, one task, the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import measure

from napari_batch_pipeline.core.errors import StageError
from napari_batch_pipeline.core.export.runtime import (
    ExportedPipeline,
    ExportedStage,
    main,
    run_stage,
    run_task,
)
from napari_batch_pipeline.core.images.fields import plan_fields
from napari_batch_pipeline.core.images.sources import find_images
from napari_batch_pipeline.core.plan import make_tasks
from napari_batch_pipeline.core.run_folder.layout import RunLayout
from napari_batch_pipeline.core.synthetic import nuclei_image


def _process(
    images: dict[str, np.ndarray], spacing: tuple[float, ...] | None = None, values: dict | None = None
) -> dict[str, Any]:
    """A small pipeline on ``input``: a mask, its labels, their areas."""
    image = images["input"]
    mask = image > image.mean()
    labels = measure.label(mask).astype(np.int32)
    table = pd.DataFrame(measure.regionprops_table(labels, properties=["label", "area"]))
    return {"mask": mask, "labels": labels, "objects": table}


def _write(folder: Path, names: list[str]) -> None:
    for number, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, nuclei_image(shape=(64, 64), n_nuclei=4, radius=5.0, seed=number))


def _tasks(folder: Path) -> list[Any]:
    return make_tasks(plan_fields(find_images(folder), (), "input"), [{}])


# -- one stage, one task ---------------------------------------------------------------------


def test_run_stage_names_the_stage_in_an_error() -> None:
    assert run_stage("double", "times_two", lambda outputs: outputs["x"] * 2, {"x": 3}) == 6
    with pytest.raises(StageError, match=r"stage 'blurred' \(gaussian\) failed: KeyError: 'input'"):
        run_stage("blurred", "gaussian", lambda outputs: outputs["input"], {})


def test_run_stage_takes_sys_exit_in_a_stage_as_that_stage_failing() -> None:
    def leave(image: Any) -> Any:
        sys.exit(3)

    with pytest.raises(StageError, match=r"stage 'checked' \(mine:leave\) failed: SystemExit: 3"):
        run_stage("checked", "mine:leave", leave, np.zeros((4, 4)))


def test_run_task_gives_the_record_and_writes_outputs_as_the_engine(tmp_path: Path) -> None:
    _write(tmp_path / "in", ["plate 1/a.b.tif"])
    (task,) = make_tasks(plan_fields(find_images(tmp_path / "in", recursive=True), (), "input"), [{}])
    layout = RunLayout(tmp_path / "out")
    record = run_task(task, layout, _process, ["labels"], ["objects"])
    assert (record.image, record.status, record.error) == ("plate 1/a.b.tif", "done", "")
    table = pd.read_csv(layout.part("objects", task.key))
    assert list(table.columns) == ["image", "label", "area"]
    assert record.summary["objects.count"] == len(table) > 0
    assert record.summary["objects.mean_area"] == pytest.approx(table["area"].mean())
    assert layout.task_output("labels", "plate 1/a.b.tif").is_file()


def test_run_task_fails_one_field_alone_with_the_engine_message(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.tif").write_bytes(b"not a tiff")
    (task,) = _tasks(tmp_path / "in")
    record = run_task(task, RunLayout(tmp_path / "out"), _process, [], ["objects"])
    assert record.status == "failed"
    assert record.error.startswith("broken.tif is not a readable image")
    assert not record.summary
    assert not (tmp_path / "out" / ".parts").exists()


# -- the command line ------------------------------------------------------------------------


def test_main_writes_the_tables_and_outputs(tmp_path: Path) -> None:
    names = ["img1.tif", "img2.tif", "img10.tif"]
    _write(tmp_path / "in", names)
    out = tmp_path / "out"
    (out / ".parts" / "objects").mkdir(parents=True)
    (out / ".parts" / "objects" / "left.csv").write_text("left,over\n1,2\n")  # an interrupted run
    assert main(_process, ["mask"], ["objects"], None, [str(tmp_path / "in"), str(out)]) == 0
    images = pd.read_csv(out / "images.csv")
    assert images["image"].tolist() == names
    assert (images["status"] == "done").all()
    assert list(images.columns) == [
        "image",
        "status",
        "error",
        "seconds",
        "objects.count",
        "objects.mean_area",
    ]
    objects = pd.read_csv(out / "objects.csv")
    assert list(objects.columns) == ["image", "label", "area"]
    assert objects.groupby("image", sort=False).size().tolist() == images["objects.count"].tolist()
    assert sorted(p.name for p in (out / "mask").iterdir()) == sorted(names)
    assert not (out / ".parts").exists()


def test_main_counts_failures_and_writes_empty_tables(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.tif").write_bytes(b"nope")
    out = tmp_path / "out"
    assert main(_process, [], ["objects"], None, [str(tmp_path / "in"), str(out), "--pattern", "*.tif"]) == 1
    assert pd.read_csv(out / "images.csv")["status"].tolist() == ["failed"]
    assert (out / "objects.csv").read_text() == "image,label\n"


def test_main_without_images_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    assert main(_process, [], [], None, [str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    assert "error: no files with an image suffix" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_main_names_channels_and_refuses_a_multichannel_file_without(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    data = np.stack([nuclei_image(shape=(48, 56), n_nuclei=3, radius=5.0, seed=s) for s in (1, 2, 3)])
    metadata = {"axes": "CYX", "Labels": ["DAPI", "GFP", "Cy5"]}
    tifffile.imwrite(tmp_path / "in" / "cells.tif", data, imagej=True, metadata=metadata)
    seen: list[dict[str, np.ndarray]] = []

    def process(
        images: dict[str, np.ndarray], spacing: tuple[float, ...] | None = None, values: dict | None = None
    ) -> dict[str, Any]:
        seen.append(images)
        return {}

    arguments = [str(tmp_path / "in"), str(tmp_path / "out")]
    assert main(process, [], [], {"dna": "DAPI", "far_red": 2}, arguments) == 0
    assert list(seen[0]) == ["dna", "far_red"]
    np.testing.assert_array_equal(seen[0]["dna"], data[0])
    np.testing.assert_array_equal(seen[0]["far_red"], data[2])
    assert main(process, [], [], None, [str(tmp_path / "in"), str(tmp_path / "other")]) == 2
    message = capsys.readouterr().err
    assert "cells.tif has 3 channels" in message and "dapi: 0" in message


def test_main_vendor_file_without_bioio_fails_alone_naming_the_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "in", ["plain.tif"])
    (tmp_path / "in" / "stack.czi").write_bytes(b"ZISRAWFILE and more")
    monkeypatch.setitem(sys.modules, "bioio", None)  # as if not installed
    out = tmp_path / "out"
    assert main(_process, [], ["objects"], None, [str(tmp_path / "in"), str(out)]) == 1
    images = pd.read_csv(out / "images.csv").set_index("image")
    assert images.loc["plain.tif", "status"] == "done"
    assert images.loc["stack.czi", "status"] == "failed"
    assert "stack.czi needs bioio and bioio-czi" in images.loc["stack.czi", "error"]
    assert "pip install" in images.loc["stack.czi", "error"]


def test_main_gives_each_task_its_row_of_the_parameter_table(tmp_path: Path) -> None:
    _write(tmp_path / "in", ["dim/a.tif", "dim/b.tif", "bright/a.tif"])
    (tmp_path / "params.csv").write_text("folder,mask.level\ndim,0.5\n", encoding="utf-8")
    pipeline = ExportedPipeline([ExportedStage("mask", "threshold", {"level": 1.0}, {"level": float})])
    used: dict[float, int] = {}

    def process(
        images: dict[str, np.ndarray], spacing: tuple[float, ...] | None = None, values: dict | None = None
    ) -> dict[str, Any]:
        level = (values or {}).get("mask.level", 1.0)
        used[level] = used.get(level, 0) + 1
        return _process({"input": images["input"] * level})

    out = tmp_path / "out"
    arguments = [str(tmp_path / "in"), str(out), "--recursive", "--params", str(tmp_path / "params.csv")]
    assert main(process, [], ["objects"], None, arguments, pipeline=pipeline) == 0
    assert used == {0.5: 2, 1.0: 1}
    images = pd.read_csv(out / "images.csv")
    assert images[["image", "folder", "mask.level"]].values.tolist() == [
        ["bright/a.tif", "bright", 1.0],
        ["dim/a.tif", "dim", 0.5],
        ["dim/b.tif", "dim", 0.5],
    ]
    assert set(pd.read_csv(out / "objects.csv").groupby("folder")["mask.level"].unique().map(tuple)) == {
        (1.0,),
        (0.5,),
    }
    groups = pd.read_csv(out / "summary.csv")
    assert groups[["folder", "tasks_done"]].values.tolist() == [["bright", 1], ["dim", 2]]
    # a value of the wrong type is refused before anything is written
    (tmp_path / "params.csv").write_text("folder,mask.level\ndim,high\n", encoding="utf-8")
    assert (
        main(
            process,
            [],
            ["objects"],
            None,
            [*arguments[:1], str(tmp_path / "new"), *arguments[2:]],
            pipeline=pipeline,
        )
        == 2
    )
    assert not (tmp_path / "new").exists()
