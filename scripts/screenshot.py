"""Make docs/screenshot.png: the plugin's home in napari on a 1280 x 800 screen, for the README.

The Pipeline builder tunes three stages (plus a measurement) on a synthetic nuclei
image; the Batch processing widget runs that pipeline over a folder of synthetic images
in a temporary folder, and its results come back as layers, a table and a plot. The
builder, the batch widget and the results are pages of one home (tabs of one dock
area); the results page is shown.

Run it under a virtual display (Xvfb), from the repository root:

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot.py [OUTPUT.png] [--pages]

With ``--pages`` it also runs a sweep and saves every page in front in turn, beside
OUTPUT (``OUTPUT_builder.png``, ``_sweep``, ``_batch``, ``_results``), at the screen's
size less a task bar: to look for cut-off text at 1280 x 800 and at 1600 x 1200.

napari's settings are kept in a temporary file for the run, so yours are untouched.
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
from napari._qt import qt_main_window  # noqa: E402
from napari.settings import get_settings  # noqa: E402
from qtpy.QtCore import QEventLoop, QTimer  # noqa: E402

from napari_batch_pipeline._widgets.batch.widget import BatchWidget  # noqa: E402
from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder  # noqa: E402
from napari_batch_pipeline._widgets.viewer.home import show_page  # noqa: E402
from napari_batch_pipeline.core.synthetic import nuclei_image, write_nuclei_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the window on a 1280 x 800 laptop screen, less a task bar
SIZE = (1280, 750)
#: what a task bar takes of the screen
TASK_BAR = 50


def wait_for(signal, seconds: float = 120) -> None:
    """Run the event loop until ``signal`` is emitted (or fail after ``seconds``)."""
    loop = QEventLoop()
    signal.connect(loop.quit)
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    timer.start(int(seconds * 1000))
    loop.exec_()
    if not timer.isActive():
        raise TimeoutError(f"no signal within {seconds} s")
    timer.stop()


def settle(milliseconds: int = 500) -> None:
    """Let Qt lay out and paint."""
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec_()


def main(output: Path, pages: bool = False) -> Path:
    # no toasts over the canvas (napari tells PyQt5 users once, on the first window)
    get_settings().application.gui_notification_level = "none"
    qt_main_window.SHOW_QT_WARNING = False
    viewer = napari.Viewer(title="napari-batch-pipeline")
    viewer.window.resize(*SIZE)
    viewer.add_image(nuclei_image(shape=(320, 320), n_nuclei=35, seed=3), name="nuclei")

    builder = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(builder, name="Pipeline builder", area="right")
    builder.pipeline_name.value = "nuclei"
    builder.add_stage("gaussian", "blurred", params={"sigma": 1.5})
    builder.add_stage("threshold", "mask", params={"method": "otsu"})
    builder.add_stage("label", "labels", save=True)
    wait_for(builder.run_finished)
    builder.add_stage("measure", "nuclei")
    wait_for(builder.run_finished)

    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        write_nuclei_folder(images, count=12, shape=(320, 320), n_nuclei=35)
        batch = BatchWidget(viewer)
        viewer.window.add_dock_widget(batch, name="Batch processing", area="right")
        batch.input_dir.value = images
        batch.output_dir.value = Path(tmp) / "results"
        batch.executor.value = "serial"
        batch.sweep.value = "blurred.sigma=1,2"
        wait_for_run = batch.run_finished
        batch.start()
        wait_for(wait_for_run)
        batch.show_tables()
        assert batch.results_view is not None
        batch.results_view.plot_kind.value = "against a parameter"
        batch.results_view.measurement.value = "nuclei.count"
        batch.show_row(4)

        # the canvas: the batch's labels over its inputs, the clicked task on top
        for layer in viewer.layers:
            layer.visible = layer.name.startswith(("results:", "nuclei_03"))
        viewer.layers.selection.active = viewer.layers["results: labels"]
        viewer.dims.set_current_step(0, 4)
        # the canvas beside the plugin's home, the results page in front
        viewer.window._qt_viewer.dockLayerControls.setVisible(False)
        show_page(batch.results_view)
        viewer.reset_view()
        settle()
        output.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(output), canvas_only=False, flash=False)
        if pages:
            save_pages(viewer, builder, batch, output)
    viewer.close()
    return output


def save_pages(viewer, builder, batch, output: Path) -> None:
    """Each page in front in turn, a sweep run first, at the screen's size (less a task bar)."""
    screen = viewer.window._qt_window.screen().availableGeometry()
    viewer.window.resize(screen.width(), screen.height() - TASK_BAR)
    panel = builder.open_sweep()
    panel.first.stage.value, panel.first.param.value = "blurred", "sigma"
    panel.first.start.value, panel.first.stop.value, panel.first.step.value = 1.0, 4.0, 1.0
    panel.run()
    wait_for(panel.sweep_finished)
    for name, page in (
        ("builder", builder),
        ("sweep", panel),
        ("batch", batch),
        ("results", batch.results_view),
    ):
        show_page(page)
        settle()
        viewer.screenshot(str(output.with_name(f"{output.stem}_{name}.png")), canvas_only=False, flash=False)


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if argument != "--pages"]
    target = Path(arguments[0]) if arguments else ROOT / "docs" / "screenshot.png"
    print(main(target, pages="--pages" in sys.argv[1:]))
