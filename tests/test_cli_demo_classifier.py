"""The demo's case where a threshold fails and a pixel classifier succeeds: nuclei on a
background gradient, a training file painted on another such image, both chains run in
one batch and scored against the true nuclei."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import tifffile
from scipy import ndimage as ndi

from napari_batch_pipeline.core.demo import prepare_classifier_demo
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages.training import file_sha256


def test_the_demo_s_training_file_is_made_the_same_every_time_and_named_with_its_hash(tmp_path: Path) -> None:
    first, second = (
        prepare_classifier_demo(tmp_path / "a", count=2),
        prepare_classifier_demo(tmp_path / "b", 2),
    )
    training = first.pipeline.with_name("classifier_training.npz")
    assert training.read_bytes() == second.pipeline.with_name("classifier_training.npz").read_bytes()
    stage = Pipeline.from_yaml(first.pipeline)["painted"]
    assert stage.params["training_sha256"] == file_sha256(training)
    assert sorted(p.name for p in first.images.iterdir()) == ["field_01.tif", "field_02.tif"]
    assert [p.name for p in sorted(first.truth.iterdir())] == ["field_01.tif", "field_02.tif"]


def test_the_demo_shows_otsu_failing_on_a_gradient_and_the_classifier_succeeding(
    tmp_path: Path, cli_here
) -> None:
    out = tmp_path / "demo"
    result = cli_here("demo", out, "--images", "1", "--executor", "serial", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines.index(
        next(line for line in lines if line.startswith("image") and "classifier IoU" in line)
    )
    rows = [line.split() for line in lines[header + 1 : header + 5]]
    table = pd.read_csv(out / "classifier_results" / "images.csv").set_index("image")
    miscounted = {"otsu": 0, "classifier": 0}
    for name, true_count, otsu_iou, otsu_count, classifier_iou, classifier_count in rows:
        truth = tifffile.imread(out / "truth" / name) > 0
        assert int(true_count) == ndi.label(truth)[1]
        assert float(otsu_iou) < 0.7 and float(classifier_iou) >= 0.9, name
        assert int(otsu_count) == table.loc[name, "otsu_nuclei.count"]
        assert int(classifier_count) == table.loc[name, "painted_nuclei.count"]
        assert abs(int(classifier_count) - int(true_count)) <= 3, name
        miscounted["otsu"] += abs(int(otsu_count) - int(true_count))
        miscounted["classifier"] += abs(int(classifier_count) - int(true_count))
    assert miscounted["classifier"] * 3 < miscounted["otsu"], miscounted
    assert (table["status"] == "done").all() and len(table) == 4
    assert "re-run it: napari-batch-pipeline run" in lines[header + 5]
