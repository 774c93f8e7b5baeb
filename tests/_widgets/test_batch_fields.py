"""The Batch processing widget's fields: every folder option of the command line set by
name (with the same refusals in the same words), and a multi-scene OME-TIFF (scene in
the table, layers at the pixel size's scale)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline._widgets.batch.batch_fields import FIELD_LABELS
from napari_batch_pipeline.cli import main
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.run_folder.reader import RunResults
from napari_batch_pipeline.core.synthetic import nuclei_image, write_nuclei_folder

#: the OME pixel size of both scenes, (y, x) in micrometres
PIXEL_SIZE = (0.5, 0.25)


def write_two_scenes(path):
    """An OME-TIFF with two series (scenes) of nuclei, each 96 x 96 at PIXEL_SIZE."""
    scenes = [nuclei_image(shape=(96, 96), n_nuclei=6, radius=6, seed=seed) for seed in (1, 2)]
    with tifffile.TiffWriter(path, ome=True) as writer:
        for index, data in enumerate(scenes):
            metadata = {"axes": "YX", "Name": f"position {index}"}
            metadata.update({"PhysicalSizeY": PIXEL_SIZE[0], "PhysicalSizeX": PIXEL_SIZE[1]})
            writer.write(data, metadata=metadata, photometric="minisblack")
    return scenes


def test_a_two_scene_file_shows_its_scenes_at_their_pixel_size(
    make_batch_widget, pipeline_file, tmp_path, run_to_end
):
    folder = tmp_path / "plate"
    folder.mkdir()
    scenes = write_two_scenes(folder / "plate.ome.tif")
    widget = make_batch_widget(folder)
    viewer = widget.viewer
    report = run_to_end(widget)
    assert report.done == 2 and report.failed == 0

    table = widget.table
    headers = list(table.columns)
    assert headers[:3] == ["image", "scene", "parameters"] and "t" not in headers
    assert sorted(table.text(row, 1) for row in range(2)) == ["0", "1"]

    # the run's layers: one stack per saved stage, at the pixel size (1 on the axis of tasks)
    labels = viewer.layers["out: labels"]
    assert labels.data.shape == (2, 96, 96)
    assert tuple(labels.scale) == (1.0, *PIXEL_SIZE)
    assert tuple(viewer.layers["out: input"].scale) == (1.0, *PIXEL_SIZE)

    # a clicked row: that scene's input and labels, at the pixel size
    row = next(r for r in range(2) if table.text(r, 1) == "1")
    layers = widget.show_row(row)
    assert [layer.name for layer in layers] == ["out: plate.ome.tif s1", "out: plate.ome.tif s1 labels"]
    image, labels = layers
    np.testing.assert_array_equal(image.data, scenes[1])
    results = RunResults(tmp_path / "out")
    index = next(i for i in range(2) if results.row_field(i)[0] == 1)
    np.testing.assert_array_equal(labels.data, tifffile.imread(results.task_outputs(index)["labels"]))
    expected = Pipeline.from_yaml(pipeline_file).run(scenes[1])["labels"]
    np.testing.assert_array_equal(labels.data, expected)
    assert tuple(image.scale) == tuple(labels.scale) == PIXEL_SIZE
    assert labels.metadata["scene"] == 1
    # the run's input stack shows each row's own scene
    inputs = viewer.layers["out: input"]
    for step, name in enumerate(inputs.metadata["names"]):
        scene = int(name.rsplit(" s", 1)[1])
        np.testing.assert_array_equal(np.asarray(inputs.data[step]), scenes[scene])


# -- every folder option of the command line, set by name ------------------------------------

#: per-dataset parameters: folder a blurs with sigma 1, folder b with sigma 3
PARAMS_TABLE = "folder,blurred.sigma\na,1\nb,3\n"


@pytest.fixture
def datasets(tmp_path):
    """Two dataset folders ``a`` and ``b`` of three images each, and a parameter table."""
    folder = tmp_path / "datasets"
    write_nuclei_folder(folder / "a", count=3, seed=0, shape=(96, 96), n_nuclei=6, radius=6)
    write_nuclei_folder(folder / "b", count=3, seed=10, shape=(96, 96), n_nuclei=6, radius=6)
    (tmp_path / "params.csv").write_text(PARAMS_TABLE, encoding="utf-8")
    return folder


def test_folder_options_and_the_parameter_table_are_fields(
    make_batch_widget, datasets, pipeline_file, tmp_path, run_to_end
):
    widget = make_batch_widget(datasets)
    widget.recursive.value = True
    widget.pattern.value = "nuclei_0[1-3].tif"
    widget.metadata.value = r"(?P<dataset>[ab])/nuclei_(?P<number>\d+)"
    widget.limit.value = 5
    widget.params.value = tmp_path / "params.csv"
    widget.group_by.value = "dataset"
    widget.memory_budget.value = "2G"
    report = run_to_end(widget)
    assert (report.done, report.failed) == (5, 0)

    images = pd.read_csv(tmp_path / "out" / "images.csv")
    assert list(images["image"]) == [f"{d}/nuclei_0{n}.tif" for d, n in ("a1", "a2", "a3", "b1", "b2")]
    assert list(images["folder"]) == ["a"] * 3 + ["b"] * 2
    assert list(images["dataset"]) == ["a"] * 3 + ["b"] * 2
    assert list(images["number"]) == [1, 2, 3, 1, 2]
    # each dataset ran with its row of the parameter table, as scikit-image gives it
    assert list(images["blurred.sigma"]) == [1.0] * 3 + [3.0] * 2
    objects = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    for sigma, image in ((1.0, "a/nuclei_02.tif"), (3.0, "b/nuclei_01.tif")):
        data = tifffile.imread(datasets / image)
        expected = Pipeline.from_yaml(pipeline_file).with_params({"blurred.sigma": sigma}).run(data)
        assert (objects["image"] == image).sum() == len(expected["nuclei"])
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["memory_budget"] == 2 * 1024**3 and run["limit"] == 5 and run["recursive"] is True
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary["dataset"]) == ["a", "b"] and list(summary["tasks_done"]) == [3, 2]


def test_a_screen_is_run_from_the_fields(make_batch_widget, screen, tmp_path, run_to_end):
    widget = make_batch_widget(screen.images)
    widget.pipeline.value = screen.pipeline
    widget.metadata.value = screen.metadata
    widget.annotations.value = screen.annotations
    widget.negative_control.value = "control=negative"
    widget.positive_control.value = "control=positive"
    widget.table_format.value = "parquet"
    widget.well_aggregate.value = "mean"
    report = run_to_end(widget)
    assert (report.done, report.failed) == (16, 0)
    out = tmp_path / "out"
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert (images["flagged"] != "").sum() == 2 and set(images["control"]) == {"negative", "positive", ""}
    assert set(pd.read_csv(out / "assay.csv")["plate"]) == {"P1", "P2"}
    assert (out / "normalized.parquet").is_file() and (out / "plate_P2.png").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["screen"]["negative_control"] == "control=negative"
    assert run["screen"]["well_aggregate"] == "mean" and (out / "wells.parquet").is_file()
    # the task table marks the flagged images once the run's tables are written
    table = widget.table
    flagged = {table.text(row, "image"): table.text(row, "flagged") for row in range(table.rowCount())}
    assert flagged == dict(zip(images["image"], images["flagged"], strict=True))
    assert table.columns[-2:] == ["flagged", "error"]


def test_the_dask_executor_runs_on_a_scheduler_address(
    make_batch_widget, image_folder, pipeline_file, tmp_path, run_to_end
):
    from distributed import LocalCluster

    widget = make_batch_widget(image_folder)
    widget.limit.value = 2
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        widget.executor.value = "dask"
        widget.scheduler.value = cluster.scheduler_address
        report = run_to_end(widget)
    assert (report.done, report.failed) == (2, 0)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["executor"] == "dask" and run["scheduler"] == cluster.scheduler_address


def test_the_task_timeout_reaches_the_run(make_batch_widget, image_folder, tmp_path, run_to_end):
    widget = make_batch_widget(image_folder, executor="processes")
    widget.workers.value = 2
    widget.limit.value = 2
    widget.task_timeout.value = 30.5
    report = run_to_end(widget)
    assert (report.done, report.failed) == (2, 0)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["task_timeout"] == 30.5 and run["executor"] == "processes"
    # 0 means no limit
    widget.task_timeout.value = 0
    assert widget.fields.options()["task_timeout"] is None


def cli_error(capsys, *args):
    """The command line's error line for ``run`` with ``args`` (exit status 2)."""
    assert main(["run", *args]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("memory_budget", "lots", "--memory-budget"),
        ("scheduler", "tcp://127.0.0.1:8786", "--scheduler"),
        ("group_by", "plate", "--group-by"),
        ("metadata", "(?P<well", "--metadata"),
        ("params", "table", "--params"),
        ("task_timeout", 5.0, "--task-timeout"),
        ("negative_control", "control=negative", "--negative-control"),
    ],
)
def test_the_widget_refuses_what_the_command_line_refuses_in_the_same_words(
    batch_widget, datasets, pipeline_file, tmp_path, capsys, field, value, flag
):
    widget = batch_widget
    widget.executor.value = "threads"
    if field == "params":
        value = tmp_path / "bad_params.csv"
        value.write_text("folder,blurred.sigmaa\na,1\n", encoding="utf-8")
    getattr(widget, field).value = value
    with pytest.raises(PipelineError) as raised:
        widget.start()
    message = str(raised.value)
    args = [
        str(pipeline_file),
        str(widget.input_dir.value),
        "-o",
        str(tmp_path / "cli"),
        "--executor",
        "threads",
    ]
    assert message in cli_error(capsys, *args, flag, str(value))

    widget.run_button.changed.emit(True)  # the button shows it, without a traceback
    assert widget.status.value.startswith(message) and "Traceback" not in widget.status.value
    assert widget.worker is None and widget.run_button.enabled
    if field != "metadata":  # a bad pattern names no option; the others name their field
        assert "(field" in widget.status.value and FIELD_LABELS[field] in widget.status.value
