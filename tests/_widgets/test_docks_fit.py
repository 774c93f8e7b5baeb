"""Every dock of the plugin open at once: the main window still fits a 1200-pixel screen."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QApplication

from napari_batch_pipeline.core.synthetic import nuclei_image

PLUGIN = "napari-batch-pipeline"
#: the screen of the issue: 1600 x 1200, less a task bar
SCREEN_HEIGHT = 1200 - 50


def test_every_dock_open_keeps_the_window_within_the_screen(
    make_napari_viewer, image_folder, pipeline_file, tmp_path: Path, run_to_end, qtbot
):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(nuclei_image((256, 256)), name="nuclei")
    _, builder = viewer.window.add_plugin_dock_widget(PLUGIN, "Pipeline builder")
    for stage in ("gaussian", "threshold", "label", "measure"):
        builder.add_stage(stage)
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch processing")
    batch.input_dir.value, batch.output_dir.value = image_folder, tmp_path / "out"
    batch.pipeline.value, batch.executor.value = pipeline_file, "threads"
    run_to_end(batch)
    assert batch.show_tables() is not None
    builder.open_sweep()
    window = viewer.window._qt_window
    QApplication.processEvents()

    # the window cannot be shorter than its docks' minimum heights: 2,958 px before
    assert window.minimumSizeHint().height() <= SCREEN_HEIGHT
    assert window.frameGeometry().height() <= QApplication.primaryScreen().availableGeometry().height()

    # a long message wraps in its dock instead of widening it for good
    width = batch.width()
    batch.status.value = "a file that could not be read, with a long message; " * 20
    QApplication.processEvents()
    assert batch.width() <= width
    assert batch.status.native.wordWrap()
