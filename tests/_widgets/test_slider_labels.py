"""The sliders' labels are shown whole in a canvas narrowed by the plugin's home."""

from __future__ import annotations

from qtpy.QtWidgets import QLineEdit

from napari_batch_pipeline._widgets.batch.widget import BatchWidget
from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder
from napari_batch_pipeline.core.synthetic import nuclei_image


def _cut(viewer) -> list[str]:
    """The labels of the sliders shown whose text is cut short: the line edit shows an
    elided text (``'gaussia…'``) and gives the whole as ``text()``."""
    dims = viewer.window._qt_viewer.dims
    return [
        f"{QLineEdit.text(slider.axis_label)!r} of {slider.axis_label.text()!r}"
        for slider in dims.slider_widgets
        if slider.isVisibleTo(dims) and QLineEdit.text(slider.axis_label) != slider.axis_label.text()
    ]


def test_a_sweeps_and_the_images_slider_labels_are_whole(
    make_napari_viewer, image_folder, tmp_path, run_to_end, qtbot
):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 750)  # a laptop's screen, the home docked beside the canvas
    viewer.add_image(nuclei_image((128, 128)), name="nuclei")
    builder = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(builder, area="right")
    with qtbot.waitSignal(builder.run_finished, timeout=30_000):
        builder.add_stage("gaussian", "gaussian", params={"sigma": 2.0})
        builder.add_stage("threshold", "mask")
        builder.add_stage("label", "labels", save=True)
    batch = BatchWidget(viewer)
    viewer.window.add_dock_widget(batch, area="right")
    batch.input_dir.value, batch.output_dir.value = image_folder, tmp_path / "out"
    batch.executor.value = "threads"
    run_to_end(batch)
    panel = builder.open_sweep()
    panel.first.stage.value, panel.first.param.value = "gaussian", "sigma"
    panel.first.start.value, panel.first.stop.value, panel.first.step.value = 1.0, 4.0, 1.0
    with qtbot.waitSignal(panel.sweep_finished, timeout=60_000):
        panel.run()
    assert viewer.dims.axis_labels[:2] == ("gaussian.sigma", "image")
    qtbot.waitUntil(lambda: not _cut(viewer), timeout=3_000)  # was 'gaussia...' at 80 px

    viewer.window.resize(1000, 750)  # narrower: still whole, the canvas's row allowing
    qtbot.waitUntil(lambda: not _cut(viewer), timeout=3_000)
