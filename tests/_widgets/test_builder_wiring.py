"""The Pipeline builder says when a stage is fed the wrong kind of data, and lets the user
choose where a stage's labels or mask come from."""

from __future__ import annotations

import numpy as np

from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder
from napari_batch_pipeline.core.synthetic import nuclei_image


def test_measuring_a_blurred_image_as_labels_is_named(builder, wait_run):
    builder.add_stage("gaussian", "blurred")
    wait_run(builder, lambda: builder.add_stage("measure", "nuclei", inputs={"intensity": "input"}))

    # before: 201 "objects", reported as success
    assert "warning: nuclei: its labels 'blurred' is an image, not labels" in builder.status.value


def test_labelling_a_raw_image_is_named(builder, wait_run):
    wait_run(builder, lambda: builder.add_stage("label", "labels"))

    # before: one giant label, without a word
    assert "warning: labels: its mask 'input' has more than two values, not a mask" in builder.status.value
    assert builder.viewer.layers["labels"].data.max() == 1

    def threshold_first():
        builder.add_stage("threshold", "mask")
        builder.move_stage(1, -1)

    wait_run(builder, threshold_first)
    assert builder.pipeline().stage_names == ["mask", "labels"]
    assert "warning" not in builder.status.value


def test_where_labels_come_from_can_be_chosen_without_channels(builder, wait_run):
    builder.add_stage("threshold", "mask")
    builder.add_stage("label", "labels")
    builder.add_stage("expand_labels", "grown")
    wait_run(builder, lambda: builder.add_stage("measure", "nuclei", inputs={"intensity": "input"}))
    panel = builder.panels[-1]
    chooser = panel.inputs["labels"]

    assert not chooser.native.isHidden()  # was hidden without named channels
    assert chooser.value == "grown" and {"labels", "grown"} <= set(chooser.choices)
    wait_run(builder, lambda: setattr(chooser, "value", "labels"))
    assert builder.pipeline()["nuclei"].inputs["labels"] == "labels"
    assert len(builder.viewer.layers["labels"].features) == builder.viewer.layers["labels"].data.max()


def test_a_channel_index_the_image_lacks_is_named(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([nuclei_image(shape=(64, 64), seed=s) for s in range(3)]), name="cells")
    builder = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(builder)

    builder.channel_map.text.value = "dna: 0, cyto: 7"
    builder.channel_map.text.native.editingFinished.emit()

    # before: accepted, the preview quietly took another channel
    message = builder.channel_map.message.value
    assert "'cyto' is index 7, but layer 'cells' has 3 channel(s) (0 to 2)" in message
    assert not builder.channel_map.message.native.isHidden()
