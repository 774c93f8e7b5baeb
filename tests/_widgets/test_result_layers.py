"""A batch's result layers: each labels layer carries its task's objects as napari
``features`` (one row per label), and names and metadata that say which run, image and
parameter set it shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def swept_widget(batch_widget, run_to_end):
    """The batch widget after a run of three images with blurred.sigma swept over 1 and 3."""
    batch_widget.limit.value = 3
    batch_widget.sweep.value = "blurred.sigma=1,3"
    report = run_to_end(batch_widget)
    assert report.done == 6
    return batch_widget


def objects_of(objects: pd.DataFrame, image: str, sigma: float) -> pd.DataFrame:
    rows = objects[(objects["image"] == image) & (objects["blurred.sigma"] == sigma)]
    return rows.reset_index(drop=True)


def assert_features_are(labels_layer, data, rows: pd.DataFrame) -> None:
    """The layer's features are ``rows`` of the per-object table, one per label of ``data``."""
    features = labels_layer.features
    assert len(rows) > 0 and len(features) == len(rows)
    pd.testing.assert_frame_equal(features.drop(columns="index"), rows, check_dtype=False)
    np.testing.assert_array_equal(features["index"], rows["label"])
    assert set(features["label"]) == set(np.unique(np.asarray(data))) - {0}


def test_the_labels_stack_has_the_objects_of_the_task_shown(swept_widget, tmp_path):
    viewer = swept_widget.viewer
    objects = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    images = pd.read_csv(tmp_path / "out" / "images.csv")
    labels = viewer.layers["out: labels"]
    assert labels.data.shape[0] == 6 and labels.metadata["table"] == "nuclei"
    for step in (4, 1, 5):
        viewer.dims.set_current_step(0, step)
        row = images.iloc[step]
        assert labels.metadata["image"] == row["image"] and labels.metadata["row"] == step
        assert labels.metadata["parameters"] == f"blurred.sigma={row['blurred.sigma']}"
        assert labels.metadata["run_folder"] == str(tmp_path / "out")
        assert_features_are(
            labels, labels.data[step], objects_of(objects, row["image"], row["blurred.sigma"])
        )
    # the input stack says which task each step shows, too (and has no features)
    inputs = viewer.layers["out: input"]
    assert inputs.metadata["image"] == images.iloc[5]["image"]


def test_a_clicked_row_has_its_objects_name_and_metadata(swept_widget, tmp_path):
    widget = swept_widget
    objects = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    table = widget.table
    row = next(
        r
        for r in range(table.rowCount())
        if table.text(r, 0) == "nuclei_02.tif" and table.text(r, 1) == "blurred.sigma=3.0"
    )
    image, labels = widget.show_row(row)
    assert image.name == "out: nuclei_02.tif [blurred.sigma=3.0]"
    assert labels.name == "out: nuclei_02.tif [blurred.sigma=3.0] labels"
    assert labels.metadata == {
        "image": "nuclei_02.tif",
        "parameters": "blurred.sigma=3.0",
        "run_folder": str(tmp_path / "out"),
        "stage": "labels",
        "table": "nuclei",
    }
    assert_features_are(labels, labels.data, objects_of(objects, "nuclei_02.tif", 3.0))


def test_the_run_opened_again_after_the_widget_loaded_it_has_its_objects(swept_widget, tmp_path):
    viewer = swept_widget.viewer
    viewer.open(str(tmp_path / "out"), plugin="napari-batch-pipeline")  # napari renames: "... [1]"
    objects = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    images = pd.read_csv(tmp_path / "out" / "images.csv")
    loaded, opened = viewer.layers["out: labels"], viewer.layers["out: labels [1]"]
    for step in (3, 0):
        viewer.dims.set_current_step(0, step)
        row = images.iloc[step]
        for labels in (loaded, opened):  # the widget's stack and the reader's, side by side
            assert labels.metadata["image"] == row["image"], labels.name
            assert_features_are(
                labels, labels.data[step], objects_of(objects, row["image"], row["blurred.sigma"])
            )
