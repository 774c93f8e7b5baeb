"""Make the README's pictures of a pixel classifier, taught in the builder and run in a batch.

``docs/builder_training.png``: nuclei on a background gradient (where Otsu's threshold
fails); the Pipeline builder has a ``pixel_classifier`` stage (then label, remove small
objects, measure); strokes of two classes are painted on the training layer the builder
offers (class 1 around the nuclei, class 2 in them, :func:`.synthetic.painted_strokes`),
one paint event per stroke as napari's brush makes; 300 ms after the last one the stage
retrains and the chain previews its mask, drawn as outlines under the strokes. The
stage's panel shows its feature options as fields and the training's hash read-only.

``docs/classifier_batch.png``: the pipeline is saved (with its training file) and the
Batch processing widget runs that file over a folder of six other such images; the
canvas shows one of them with the nuclei found (the saved labels), the table the
nuclei counted in each.

Run it under a virtual display (Xvfb), from the repository root:

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/screenshot_classifier.py [FOLDER]

The pictures go into FOLDER (default ``docs/``). napari's settings are kept in a
temporary file for the run, so yours are untouched.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# before napari loads: a throwaway settings file (notifications are turned off below)
_SETTINGS = tempfile.TemporaryDirectory()
os.environ["NAPARI_CONFIG"] = str(Path(_SETTINGS.name) / "settings.yaml")

import napari  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402
from napari._qt import qt_main_window  # noqa: E402
from napari._qt.dialogs.qt_notification import NapariQtNotification  # noqa: E402
from napari.settings import get_settings  # noqa: E402
from napari.utils.colormaps import DirectLabelColormap  # noqa: E402
from qtpy.QtCore import QEventLoop, QTimer  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

from napari_batch_pipeline.core.synthetic import gradient_nuclei, painted_strokes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "napari-batch-pipeline"
#: the window on a 1600 x 1200 screen, less a task bar
SIZE = (1600, 1150)
#: the strokes' colours (1 around the nuclei, 2 in them) and the preview's outline
STROKES = {None: "transparent", 0: "transparent", 1: "magenta", 2: "cyan"}
PREVIEW = {None: "transparent", 0: "transparent", 1: "yellow"}
#: the batch's images: gradient_nuclei with these seeds (0 is the painted one)
SEEDS = range(1, 7)


def wait_until(done, seconds: float = 120) -> None:
    """Run the event loop until ``done()`` is true (or fail after ``seconds``)."""
    waited = 0.0
    while not done():
        settle(100)
        waited += 0.1
        if waited > seconds:
            raise TimeoutError(f"not done within {seconds} s")


def settle(milliseconds: int = 500) -> None:
    """Let Qt lay out and paint."""
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec_()


def paint(layer, strokes: np.ndarray) -> None:
    """Each connected piece of each class of ``strokes`` as one stroke of napari's brush."""
    for label in (1, 2):
        pieces, count = ndi.label(strokes == label)
        for piece in range(1, count + 1):
            with layer.block_history():  # one undo step, one paint event
                layer.data_setitem(tuple(np.nonzero(pieces == piece)), label)


def add_stage(builder, function: str, name: str):
    """Choose ``function``, click Add stage, type its name; return its panel."""
    builder.stage_choice.value = function
    builder.add_button.changed.emit(True)
    panel = builder.panels[-1]
    panel.stage_name.value = name
    return panel


def teach(viewer, folder: Path):
    """The builder with a painted, previewed pixel classifier; saved into ``folder``."""
    image, truth = gradient_nuclei(seed=0)
    viewer.add_image(image, name="field_00")
    _, builder = viewer.window.add_plugin_dock_widget(PLUGIN, "Pipeline builder")
    builder.pipeline_name.value = "painted nuclei"
    classifier = add_stage(builder, "pixel_classifier", "nuclei_mask")
    classifier.params["output"].value = "mask"
    classifier.params["foreground"].value = 2
    classifier.save.value = True
    add_stage(builder, "label", "labels").save.value = True
    add_stage(builder, "remove_small_objects", "kept").params["min_size"].value = 30
    add_stage(builder, "measure", "nuclei")
    training = viewer.layers["nuclei_mask training"]
    trained: list[str] = []
    builder.training_layers.trained.connect(trained.append)
    paint(training, painted_strokes(truth, seed=0))
    wait_until(lambda: trained and (0, "nuclei") in builder.tables)
    settle(1000)
    builder.save(folder / "painted.yaml")
    return builder, training


def show_painting(viewer, builder, training) -> None:
    """The image, the preview's outlines, the strokes on top, the brush chosen."""
    for layer in viewer.layers:
        layer.visible = layer.name in ("field_00", "nuclei_mask", training.name)
    preview = viewer.layers["nuclei_mask"]
    preview.colormap = DirectLabelColormap(color_dict=PREVIEW)
    preview.contour = 1
    preview.opacity = 1.0
    viewer.layers.move(viewer.layers.index(training), len(viewer.layers))
    training.colormap = DirectLabelColormap(color_dict=STROKES)
    training.opacity = 1.0
    training.brush_size = 4
    training.selected_label = 2
    viewer.layers.selection.active = training
    training.mode = "paint"
    # the untrained first run's error (before the strokes) may still be on the canvas
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    viewer.reset_view()


def run_batch(viewer, folder: Path, pipeline: Path):
    """The Batch processing widget run over six new images; one row clicked."""
    images = folder / "gradient"
    images.mkdir()
    for seed in SEEDS:
        tifffile.imwrite(images / f"field_{seed:02d}.tif", gradient_nuclei(seed=seed)[0])
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch processing")
    batch.input_dir.value = images
    batch.output_dir.value = folder / "results"
    batch.pipeline.value = pipeline
    batch.executor.value = "serial"
    finished: list[object] = []
    batch.run_finished.connect(finished.append)
    batch.run_button.changed.emit(True)
    wait_until(lambda: finished, seconds=300)
    if finished[0] is None:
        raise RuntimeError(f"the batch failed: {batch.status.value}")
    return batch


def show_batch(viewer, batch) -> None:
    """The nuclei found (labels, one colour each) over their inputs, the fourth image clicked."""
    for layer in viewer.layers:
        layer.visible = layer.name in ("results: input", "results: labels")
    labels = viewer.layers["results: labels"]
    labels.opacity = 0.75
    viewer.layers.move(viewer.layers.index(labels), len(viewer.layers))
    viewer.layers.selection.active = labels
    viewer.dims.set_current_step(0, 3)
    batch.table.selectRow(3)
    viewer.reset_view()


def main(folder: Path) -> list[Path]:
    # no toasts over the canvas (napari tells PyQt5 users once, on the first window)
    get_settings().application.gui_notification_level = "none"
    qt_main_window.SHOW_QT_WARNING = False
    viewer = napari.Viewer(title="napari-batch-pipeline")
    viewer.window.resize(*SIZE)
    folder.mkdir(parents=True, exist_ok=True)
    shots = [folder / "builder_training.png", folder / "classifier_batch.png"]
    with tempfile.TemporaryDirectory() as tmp:
        builder, training = teach(viewer, Path(tmp))
        settle()  # the chain's layers are all added: the strokes go on top of them
        show_painting(viewer, builder, training)
        settle()
        viewer.screenshot(str(shots[0]), canvas_only=False, flash=False)
        batch = run_batch(viewer, Path(tmp), Path(tmp) / "painted.yaml")
        show_batch(viewer, batch)
        settle()
        viewer.screenshot(str(shots[1]), canvas_only=False, flash=False)
    viewer.close()
    return shots


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    for shot in main(target):
        print(shot)
