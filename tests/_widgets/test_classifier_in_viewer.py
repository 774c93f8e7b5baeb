"""A pixel classifier taught and run as a user does it, in a real viewer: open an image of
nuclei on a background gradient (where Otsu's threshold fails), open the Pipeline builder
from the plugin menu, add a pixel classifier, a label and a measure stage with the Add
stage button, paint strokes of two classes on the training layer the builder offers, wait
for the retrain and the preview, save the pipeline with its training, and run that file
over a folder of other such images in the Batch processing widget.

The strokes go in as napari's brush puts them: one ``block_history`` per stroke, the
pixels set with ``Labels.data_setitem``, so that each stroke emits one ``paint`` event
(the event the builder listens to). Nothing else tells the builder to train.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from napari.layers import Labels
from scipy import ndimage as ndi

from napari_batch_pipeline.core.stages import forests
from napari_batch_pipeline.core.stages.training import file_sha256
from napari_batch_pipeline.core.synthetic import gradient_nuclei, painted_strokes

PLUGIN = "napari-batch-pipeline"
#: the batch's images: gradient_nuclei with these seeds (0 is the painted one)
SEEDS = (1, 2, 3, 4)
#: objects smaller than this are specks, removed before counting (as the demo does)
MIN_SIZE = 30


def paint_stroke(layer: Labels, pixels: np.ndarray, label: int) -> None:
    """One stroke of napari's brush: the pixels set in one undo step, one ``paint`` event."""
    with layer.block_history():
        layer.data_setitem(tuple(np.nonzero(pixels)), label)


def add_stage(builder, function: str, name: str):
    """Choose ``function`` in the stage box, click Add stage, type the stage's name."""
    builder.stage_choice.value = function
    builder.add_button.changed.emit(True)
    panel = builder.panels[-1]
    panel.stage_name.value = name
    return panel


def nucleus_count(truth: np.ndarray) -> int:
    """The true nuclei of at least MIN_SIZE pixels."""
    labels, _ = ndi.label(truth)
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= MIN_SIZE).sum())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks."""
    return float((a & b).sum() / (a | b).sum())


def test_paint_preview_save_and_batch_a_pixel_classifier_in_the_viewer(
    make_napari_viewer, qtbot, tmp_path: Path
):
    forests._TRAINED.clear()
    image, truth = gradient_nuclei(seed=0)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="field_00")
    _, builder = viewer.window.add_plugin_dock_widget(PLUGIN, "Pipeline builder")
    builder.pipeline_name.value = "painted nuclei"

    classifier = add_stage(builder, "pixel_classifier", "nuclei_mask")
    classifier.params["output"].value = "mask"
    classifier.params["foreground"].value = 2
    classifier.save.value = True
    add_stage(builder, "label", "labels").save.value = True
    add_stage(builder, "remove_small_objects", "kept").params["min_size"].value = MIN_SIZE
    add_stage(builder, "measure", "nuclei")

    layer = viewer.layers["nuclei_mask training"]
    assert isinstance(layer, Labels) and layer.data.shape == image.shape and not layer.data.any()
    assert "nuclei_mask.training" not in builder.pipeline().to_yaml()

    # strokes as a person paints them, each connected piece of each class one stroke
    strokes = painted_strokes(truth, seed=0)
    trained: list[str] = []
    builder.training_layers.trained.connect(trained.append)
    for label in (1, 2):
        pieces, count = ndi.label(strokes == label)
        for piece in range(1, count + 1):
            paint_stroke(layer, pieces == piece, label)
    np.testing.assert_array_equal(layer.data, strokes)
    assert not trained  # 300 ms after the last stroke, not before

    def previewed() -> bool:
        shown = builder.output_layers.get((0, "nuclei_mask"))
        return trained == ["nuclei_mask"] and shown is not None and bool(shown.data.any())

    qtbot.waitUntil(previewed, timeout=90_000)
    qtbot.waitUntil(lambda: (0, "nuclei") in builder.tables, timeout=60_000)
    preview = viewer.layers["nuclei_mask"].data.astype(bool)
    assert iou(preview, truth) >= 0.9, iou(preview, truth)
    otsu = ndi.gaussian_filter(image.astype(float), 2) > _otsu(image)
    assert iou(otsu, truth) < 0.7  # the case a threshold fails
    assert abs(len(builder.tables[(0, "nuclei")]) - nucleus_count(truth)) <= 2

    # Save...: the pipeline file, and beside it the training file with its hash in the pipeline
    saved = builder.save(tmp_path / "painted.yaml")
    params = builder.pipeline()["nuclei_mask"].params
    assert params["training"] == "nuclei_mask_training.npz"
    assert file_sha256(tmp_path / "nuclei_mask_training.npz") == params["training_sha256"]
    assert params["training_sha256"] in saved.read_text(encoding="utf-8")

    # the batch, from the saved file only: no forest kept from the builder's training
    forests._TRAINED.clear()
    images = tmp_path / "gradient"
    images.mkdir()
    truths = {}
    for seed in SEEDS:
        field, nuclei = gradient_nuclei(seed=seed)
        tifffile.imwrite(images / f"field_{seed:02d}.tif", field)
        truths[f"field_{seed:02d}.tif"] = nuclei
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch processing")
    batch.input_dir.value = images
    batch.output_dir.value = tmp_path / "results"
    batch.pipeline.value = saved
    batch.executor.value = "serial"
    with qtbot.waitSignal(batch.run_finished, timeout=300_000) as blocker:
        batch.run_button.changed.emit(True)
        assert batch.worker is not None, batch.status.value  # refused: the status says why
    report = blocker.args[0]
    assert report is not None, batch.status.value
    assert (report.done, report.failed) == (len(SEEDS), 0), batch.status.value
    assert batch.table.rowCount() == len(SEEDS)

    # the result layers: each saved stage as a stack over the inputs
    masks = viewer.layers["results: nuclei_mask"]
    assert masks.data.shape == (len(SEEDS), *image.shape)
    assert isinstance(viewer.layers["results: labels"], Labels)
    names = masks.metadata["names"]
    for index, name in enumerate(names):
        assert iou(np.asarray(masks.data[index]).astype(bool), truths[name]) >= 0.9, name

    # the run folder's tables, read back as a user would
    table = pd.read_csv(report.output_dir / "images.csv")
    assert sorted(table["image"].map(lambda p: Path(p).name)) == sorted(truths)
    for _, row in table.iterrows():
        expected = nucleus_count(truths[Path(row["image"]).name])
        assert abs(int(row["nuclei.count"]) - expected) <= 2, (row["image"], row["nuclei.count"], expected)
    objects = pd.read_csv(report.output_dir / "nuclei.csv")
    assert len(objects) == int(table["nuclei.count"].sum())


def _otsu(image: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(ndi.gaussian_filter(image.astype(float), 2)))


def test_an_untrained_classifier_ends_the_builders_run_with_what_to_do(make_napari_viewer, qtbot):
    forests._TRAINED.clear()
    viewer = make_napari_viewer()
    viewer.add_image(gradient_nuclei(seed=0)[0], name="field_00")
    _, builder = viewer.window.add_plugin_dock_widget(PLUGIN, "Pipeline builder")
    ended: list[object] = []
    builder.run_finished.connect(ended.append)
    add_stage(builder, "pixel_classifier", "nuclei_mask")  # no strokes yet: the stage cannot run
    qtbot.waitUntil(lambda: builder.worker is not None and not builder.worker.is_running, timeout=60_000)
    qtbot.wait(500)  # the worker's signals reach the GUI thread
    assert ended == [None]  # a failed run
    assert builder.status.value.startswith("error:") and "paint classes" in builder.status.value
