"""core.run_folder.reader and .lazy: a run folder read back lazily; core.plot_data: what the plots draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline import run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.plan import task_label
from napari_batch_pipeline.core.results.plot_data import (
    measurement_columns,
    measurement_values,
    object_counts,
)
from napari_batch_pipeline.core.run_folder.layout import output_stem
from napari_batch_pipeline.core.run_folder.lazy import (
    SavedOutputs,
    image_scale,
    lazy_stack,
    load_saved,
    read_tiff,
)
from napari_batch_pipeline.core.run_folder.reader import RunResults, is_run_folder
from napari_batch_pipeline.core.synthetic import write_nuclei_folder


@pytest.fixture
def swept(tmp_path, pipeline):
    write_nuclei_folder(tmp_path / "images", count=2, shape=(96, 96), n_nuclei=6, radius=6)
    run_batch(pipeline, tmp_path / "images", tmp_path / "run", sweep={"blurred.sigma": [1, 2]})
    return RunResults(tmp_path / "run")


def test_names_of_tasks_and_their_files():
    assert output_stem("a/b.tif") == "a/b"
    assert output_stem("b.tif", "blurred.sigma=2.0") == "b__blurred.sigma=2.0"
    assert task_label("b.tif|blurred.sigma=2.0") == "blurred.sigma=2.0"
    assert task_label("b.tif") == ""


def test_rows_map_to_their_saved_files(swept):
    assert swept.param_columns == ["blurred.sigma"]
    assert [swept.row_name(i) for i in range(4)] == [
        "nuclei_01.tif [blurred.sigma=1.0]",
        "nuclei_01.tif [blurred.sigma=2.0]",
        "nuclei_02.tif [blurred.sigma=1.0]",
        "nuclei_02.tif [blurred.sigma=2.0]",
    ]
    path = swept.task_outputs(3)["labels"]
    assert path.name == "nuclei_02__blurred.sigma=2.0.tif"
    saved = swept.saved_outputs("labels")
    assert saved.is_labels and saved.stack.shape == (4, 96, 96) and saved.left_out == 0
    np.testing.assert_array_equal(np.asarray(saved.stack[3]), tifffile.imread(path))
    inputs = swept.saved_inputs()
    np.testing.assert_array_equal(np.asarray(inputs.stack[2]), tifffile.imread(swept.input_path(2)))


def test_lazy_stack_reads_only_what_is_asked(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.tif")
        tifffile.imwrite(paths[-1], np.full((4, 5), i, np.uint16))
    stack = lazy_stack(paths, (4, 5), np.uint16)
    paths[0].unlink()  # never read below
    assert stack.shape == (3, 4, 5) and stack.dtype == np.uint16
    assert int(stack[2].max()) == 2


def test_plot_data(swept):
    counts = object_counts(swept.images, "nuclei", swept.param_columns)
    assert list(counts["name"])[1] == "nuclei_01.tif [blurred.sigma=2.0]"
    np.testing.assert_array_equal(counts["count"], swept.images["nuclei.count"])
    table = swept.table("nuclei")
    assert measurement_columns(table, swept.pipeline) == ["area", "intensity_mean"]
    assert len(measurement_values(table, "area")) == len(table)
    with pytest.raises(ValueError, match="no column 'volume'"):
        measurement_values(table, "volume")
    assert object_counts(pd.DataFrame({"image": ["a"]}), "nuclei").empty


def test_not_a_run_folder(tmp_path):
    assert not is_run_folder(tmp_path)
    with pytest.raises(PipelineError, match="not a run folder"):
        RunResults(tmp_path)


def test_the_scale_of_an_image_from_its_pixel_size():
    assert image_scale((2.0, 0.5, 0.25), 2) == (0.5, 0.25)
    assert image_scale((2.0, 0.5, 0.25), 3) == (2.0, 0.5, 0.25)
    assert image_scale((None, 0.5, 0.25), 4) == (1.0, 1.0, 0.5, 0.25)  # z unknown: 1
    assert image_scale((None, None, None), 2) is None and image_scale(None, 3) is None


def test_saved_outputs_are_stacked_only_at_one_scale(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.tif")
        tifffile.imwrite(paths[-1], np.full((4, 5), i, np.uint16))
    found = [("a", paths[0], (None, 0.5, 0.5)), ("b", paths[1], (None, 0.5, 0.5))]
    saved = load_saved(SavedOutputs("labels", "labels"), found, 20, read_tiff)
    assert saved.stack.shape == (2, 4, 5) and saved.scale_of(saved.stack) == (1.0, 0.5, 0.5)

    found.append(("c", paths[2], (None, 0.25, 0.25)))
    saved = load_saved(SavedOutputs("labels", "labels"), found, 20, read_tiff)
    assert saved.stack is None and saved.names == ["a", "b", "c"]
    assert [saved.scale_of(array) for array in saved.separate] == [(0.5, 0.5), (0.5, 0.5), (0.25, 0.25)]
    assert saved.scale_of(np.zeros((4, 5))) is None  # not one of its arrays

    unknown = load_saved(SavedOutputs("labels", "labels"), [("a", paths[0], None)], 20, read_tiff)
    assert unknown.scale_of(unknown.stack) is None


def test_a_crafted_images_table_never_leads_out_of_the_run_folder(tmp_path, pipeline, image_folder) -> None:
    # The reader followed ../ and absolute paths of a crafted images.csv and opened files
    # outside the run folder (and outside the input folder).
    import shutil

    import pandas as pd

    from napari_batch_pipeline.core.run_folder.reader import RunResults

    out = tmp_path / "run"
    run_batch(pipeline, image_folder, out, executor="serial")
    outside = tmp_path / "secret.tif"
    shutil.copy(out / "labels" / "img1.tif", outside)
    table = pd.read_csv(out / "images.csv")
    table.loc[0, "image"] = "../secret.tif"  # labels/../../secret.tif
    table.loc[1, "image"] = str(outside)
    table.to_csv(out / "images.csv", index=False)
    results = RunResults(out)
    assert results.task_outputs(0) == {} and results.task_outputs(1) == {}
    assert results.input_path(0) is None and results.input_path(1) is None
    assert len(results.saved_outputs("labels").names) == 2  # the two untouched rows
    assert all("secret" not in str(name) for name in results.saved_outputs("labels").names)
    assert len(results.saved_inputs().names) == 2


def test_a_linked_file_is_followed_only_within_its_folder(tmp_path, pipeline, image_folder) -> None:
    # Outputs and inputs are checked in bulk, a folder resolved once; a file that is a
    # link is still resolved whole: one leading out of its folder is not read.
    import shutil

    out = tmp_path / "run"
    run_batch(pipeline, image_folder, out, executor="serial")
    results = RunResults(out)
    names = results.saved_outputs("labels").names
    outside = tmp_path / "secret.tif"
    shutil.copy(out / "labels" / "img1.tif", outside)
    (out / "labels" / "img1.tif").unlink()
    (out / "labels" / "img1.tif").symlink_to(outside)
    (out / "labels" / "img2.tif").rename(out / "img2.tif")
    (out / "labels" / "img2.tif").symlink_to(out / "img2.tif")  # a link within the run: fine
    assert RunResults(out).saved_outputs("labels").names == [n for n in names if n != "img1.tif"]
    inputs = RunResults(out).saved_inputs().names
    shutil.move(image_folder / "img3.tif", tmp_path / "img3.tif")
    (image_folder / "img3.tif").symlink_to(tmp_path / "img3.tif")
    assert RunResults(out).saved_inputs().names == [n for n in inputs if n != "img3.tif"]
