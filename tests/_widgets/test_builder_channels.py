"""The Pipeline builder on real microscopy layers: named channels from one multi-channel layer
or from several layers, z stacks in 3D, and the layer's scale as the pixel size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image
from napari_batch_pipeline.core.tuning.image import ChannelSource

#: a pipeline naming three channels: nuclei segmented on dna, measured on cyto, in micrometres
CHANNELS_YAML = """\
version: 1
name: cells
channels: {dna: 0, cyto: 1, actin: 2}
stages:
  - {name: blurred, function: gaussian, inputs: {image: dna}, params: {sigma: 2}}
  - {name: mask, function: threshold}
  - {name: labels, function: label}
  - name: cells
    function: measure
    inputs: {labels: labels, intensity: cyto}
    params: {properties: [area, intensity_mean], units: physical}
"""


@pytest.fixture
def cells() -> np.ndarray:
    """A (3, 128, 128) uint16 image: dna, cyto, actin (different nuclei in each)."""
    return np.stack([nuclei_image(shape=(128, 128), n_nuclei=8, seed=seed) for seed in (1, 2, 3)])


@pytest.fixture
def channels_file(tmp_path):
    path = tmp_path / "cells.yaml"
    path.write_text(CHANNELS_YAML, encoding="utf-8")
    return path


def make_builder(viewer) -> PipelineBuilder:
    builder = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(builder)
    return builder


def assert_same_outputs(builder: PipelineBuilder, expected: dict) -> None:
    layers = builder.viewer.layers
    np.testing.assert_array_equal(layers["blurred"].data, expected["blurred"])
    np.testing.assert_array_equal(layers["labels"].data, expected["labels"])
    pd.testing.assert_frame_equal(builder.tables[(0, "cells")], expected["cells"])


def test_channels_of_one_layer_give_what_the_engine_gives(make_napari_viewer, cells, channels_file, wait_run):
    viewer = make_napari_viewer()
    viewer.add_image(cells, name="cells", scale=(1.0, 0.5, 0.25))
    builder = make_builder(viewer)
    wait_run(builder, lambda: builder.load(channels_file))

    boxes = builder.channel_map.boxes
    assert list(boxes) == ["dna", "cyto", "actin"]
    assert [box.value for box in boxes.values()] == [ChannelSource("cells", i) for i in range(3)]
    assert builder.channel_map.text.value == "dna: 0, cyto: 1, actin: 2"
    main_input = builder.panels[0].inputs["image"]  # shown with channels: a stage may take any
    assert not main_input.native.isHidden() and main_input.value == "dna"
    assert {"dna", "cyto", "actin"} <= set(builder.panels[3].inputs["intensity"].choices)

    pipeline = Pipeline.from_yaml(channels_file)
    expected = pipeline.run({"dna": cells[0], "cyto": cells[1], "actin": cells[2]}, spacing=(0.5, 0.25))
    assert_same_outputs(builder, expected)
    assert builder.tables[(0, "cells")]["area"].iloc[0] == pytest.approx(
        (expected["labels"] == 1).sum() * 0.125
    )  # in square micrometres: the layer's scale is the pixel size
    assert tuple(viewer.layers["labels"].scale) == (0.5, 0.25)

    # another channel picked for dna: the chain re-runs on it
    wait_run(builder, lambda: setattr(boxes["dna"], "value", ChannelSource("cells", 2)))
    expected = pipeline.run({"dna": cells[2], "cyto": cells[1], "actin": cells[2]}, spacing=(0.5, 0.25))
    assert_same_outputs(builder, expected)


def test_channels_from_layers_split_by_napari(make_napari_viewer, cells, channels_file, wait_run):
    viewer = make_napari_viewer()
    viewer.add_image(cells[::-1], channel_axis=0, name=["actin", "cyto", "dna"])
    builder = make_builder(viewer)
    wait_run(builder, lambda: builder.load(channels_file))

    assert {name: box.value for name, box in builder.channel_map.boxes.items()} == {
        name: ChannelSource(name) for name in ("dna", "cyto", "actin")
    }  # taken by name, whichever layer is the image
    expected = Pipeline.from_yaml(channels_file).run(
        {"dna": cells[0], "cyto": cells[1], "actin": cells[2]}, spacing=(1.0, 1.0)
    )
    assert_same_outputs(builder, expected)


def test_channels_typed_in_the_builder_are_saved(make_napari_viewer, cells, wait_run, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(cells, name="cells")
    builder = make_builder(viewer)
    builder.channel_map.text.value = "dna: 0, cyto: 1"
    builder.channel_map.text.native.editingFinished.emit()
    assert builder.session.channels == {"dna": 0, "cyto": 1}
    builder.add_stage("gaussian", "blurred", inputs={"image": "cyto"})
    wait_run(builder, lambda: builder.add_stage("threshold", "mask"))
    np.testing.assert_array_equal(
        viewer.layers["blurred"].data,
        Pipeline.from_text(builder.pipeline().to_yaml()).run({"dna": cells[0], "cyto": cells[1]})["blurred"],
    )
    saved = Pipeline.from_yaml(builder.save(tmp_path / "saved.yaml"))
    assert saved.to_dict()["channels"] == {"dna": 0, "cyto": 1}
    assert saved["blurred"].inputs == {"image": "cyto"}

    builder.channel_map.text.value = "dna: -1"
    builder.channel_map.text.native.editingFinished.emit()
    assert "channels.dna" in builder.channel_map.message.value
    assert builder.session.channels == {"dna": 0, "cyto": 1}  # unchanged


def test_a_z_stack_runs_in_3d_at_its_scale(make_napari_viewer, wait_run):
    stack = np.stack([nuclei_image(shape=(64, 64), n_nuclei=5, seed=4)] * 6).astype(np.float32)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5))
    builder = make_builder(viewer)

    def chain():
        builder.add_stage("gaussian", "blurred", params={"sigma": 1.0})
        builder.add_stage("threshold", "mask")
        builder.add_stage("label", "labels")
        builder.add_stage("measure", "cells", params={"properties": ["area"], "units": "physical"})

    wait_run(builder, chain)
    expected = builder.pipeline().run(stack, spacing=(2.0, 0.5, 0.5))
    labels = viewer.layers["labels"]
    assert labels.data.shape == stack.shape
    np.testing.assert_array_equal(labels.data, expected["labels"])
    assert tuple(labels.scale) == (2.0, 0.5, 0.5)
    pd.testing.assert_frame_equal(builder.tables[(0, "cells")], expected["cells"])
    assert builder.channel_map.boxes == {}  # no channels named: one image, as before
    assert builder.panels[0].inputs["image"].native.isHidden()


def test_a_channel_index_past_the_image_says_so_once_and_clears_the_outputs(
    make_napari_viewer, cells, wait_run
):
    viewer = make_napari_viewer()
    viewer.add_image(cells, name="cells")
    builder = make_builder(viewer)
    builder.channel_map.text.value = "dna: 0, cyto: 1"
    builder.channel_map.text.native.editingFinished.emit()
    builder.add_stage("gaussian", "blurred", inputs={"image": "cyto"})
    wait_run(builder, lambda: builder.add_stage("threshold", "mask"))
    assert "blurred" in viewer.layers

    builder.channel_map.text.value = "dna: 0, cyto: 3"  # the layer has channels 0 to 2
    builder.channel_map.text.native.editingFinished.emit()

    assert "'cyto' is index 3" in builder.channel_map.message.value  # said under the channels
    assert "differ in shape" not in builder.status.value  # and no second, wrong message
    assert "channels" in builder.status.value
    assert "blurred" not in viewer.layers and "mask" not in viewer.layers  # nothing stale shown
    assert builder.output_layers == {}
