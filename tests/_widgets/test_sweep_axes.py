"""A sweep's stack and a batch's stacks in one viewer: each has its own slider, labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_batch_pipeline._widgets.batch.widget import BatchWidget
from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder
from napari_batch_pipeline.core.synthetic import nuclei_image

SIGMAS = [1.0, 2.0, 3.0, 4.0]


def _sweep_sigma(builder, qtbot):
    panel = builder.open_sweep()
    panel.first.stage.value, panel.first.param.value = "blurred", "sigma"
    panel.first.start.value, panel.first.stop.value, panel.first.step.value = 1.0, 4.0, 1.0
    with qtbot.waitSignal(panel.sweep_finished, timeout=60_000):
        panel.run()
    return panel


def test_a_sweep_and_a_batch_never_share_a_slider(
    make_napari_viewer, image_folder, tmp_path: Path, run_to_end, qtbot
):
    viewer = make_napari_viewer()
    viewer.add_image(nuclei_image((128, 128)), name="nuclei")
    builder = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(builder)
    with qtbot.waitSignal(builder.run_finished, timeout=30_000):
        builder.add_stage("gaussian", "blurred", params={"sigma": 2.0})
        builder.add_stage("threshold", "mask")
        builder.add_stage("label", "labels", save=True)
        builder.add_stage("measure", "nuclei")
    batch = BatchWidget(viewer)
    viewer.window.add_dock_widget(batch)
    batch.input_dir.value, batch.output_dir.value = image_folder, tmp_path / "out"
    batch.executor.value = "threads"
    run_to_end(batch)  # six images: stacks of (6, 256, 256)
    stack = next(layer for layer in batch.layer_queue.layers if layer.ndim == 3)

    # a sweep after the batch: its own slider first, the batch's image slider after it
    panel = _sweep_sigma(builder, qtbot)
    assert viewer.dims.axis_labels[:2] == ("blurred.sigma", "image")
    assert viewer.dims.nsteps[:2] == (4, 6)
    assert panel.selected_params() == {"blurred.sigma": 2.0}  # the builder's value
    viewer.dims.set_current_step(1, 5)  # the sixth image: the sweep stays at 2.0...
    assert panel.selected_params() == {"blurred.sigma": 2.0}
    assert viewer.dims.current_step[0] == 1
    viewer.dims.set_current_step(0, 3)  # ...and sigma 4.0 leaves the image where it is
    assert viewer.dims.current_step[1] == 5
    assert panel.value_label.value.startswith("blurred.sigma = 4.0")
    # both layers show something at every position of both sliders: none out of its range
    for layer in (panel.layer, stack):
        layer.refresh()
        assert np.asarray(layer._slice.image.raw).shape[-2:] != (1, 1), layer.name
    np.testing.assert_array_equal(
        np.asarray(panel.layer._slice.image.raw), panel.result.point_at((3,)).output
    )

    # a batch after the sweep: the sweep keeps its slider, the images keep theirs
    run_to_end(batch)
    assert viewer.dims.axis_labels[:2] == ("blurred.sigma", "image")
    assert viewer.dims.current_step[0] == 3
    assert panel.selected_params() == {"blurred.sigma": 4.0}
    # the sweep's layer is a view of its stack, not a copy per image
    assert panel.layer.data.base is not None and not panel.layer.data.flags.writeable
