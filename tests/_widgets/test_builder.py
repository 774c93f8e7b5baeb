"""The Pipeline builder: stages as panels, every output a layer, re-run on change, save and load."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder
from napari_batch_pipeline._widgets.viewer.session import session_for
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image

PLUGIN = "napari-batch-pipeline"


def three_stages(builder):
    builder.add_stage("gaussian", "blurred", params={"sigma": 2.0})
    builder.add_stage("threshold", "mask")
    builder.add_stage("label", "labels")


def expected(builder, image=None):
    return builder.pipeline().run(nuclei_image() if image is None else image)


def test_three_stages_each_show_a_layer(builder, wait_run):
    assert builder.image.value is builder.viewer.layers["nuclei"]
    seconds = wait_run(builder, lambda: three_stages(builder))  # one debounced run for all three
    assert seconds is not None
    layers = builder.viewer.layers
    assert [layer.name for layer in layers] == ["nuclei", "blurred", "mask", "labels"]
    assert isinstance(layers["blurred"], Image)
    assert isinstance(layers["mask"], Labels) and isinstance(layers["labels"], Labels)
    outputs = expected(builder)
    np.testing.assert_array_equal(layers["blurred"].data, outputs["blurred"])
    np.testing.assert_array_equal(layers["labels"].data, outputs["labels"])
    assert "3 stage(s) on 1 image(s)" in builder.status.value


def test_the_builders_outputs_are_never_offered_as_the_image_to_run_on(builder, wait_run):
    # The image dropdown listed the gaussian output once shown (the layer was inserted
    # before the builder knew it as its own); picked, every re-run blurred it again.
    wait_run(builder, lambda: builder.add_stage("gaussian", "blurred", params={"sigma": 2.0}))
    assert "blurred" in builder.viewer.layers
    names = [layer.name for layer in builder.image.choices if layer is not None]
    assert names == ["nuclei"]
    assert [layer.name for layer in builder.second_image.choices if layer is not None] == ["nuclei"]
    builder.viewer.add_image(nuclei_image(seed=3), name="another")  # a new image is offered
    assert [layer.name for layer in builder.image.choices if layer is not None] == ["nuclei", "another"]


def test_a_changed_parameter_reruns_that_stage_and_those_after_it(builder, wait_run):
    wait_run(builder, lambda: three_stages(builder))
    layers = builder.viewer.layers
    blurred = layers["blurred"].data
    labels_before = layers["labels"].data.copy()

    wait_run(builder, lambda: setattr(builder.panels[1].params["method"], "value", "triangle"))

    outputs = expected(builder)
    assert builder.pipeline()["mask"].params["method"] == "triangle"
    assert layers["blurred"].data is blurred  # upstream: reused from the cache, not recomputed
    np.testing.assert_array_equal(layers["mask"].data, outputs["mask"])
    np.testing.assert_array_equal(layers["labels"].data, outputs["labels"])
    assert not np.array_equal(layers["labels"].data, labels_before)


def test_a_superseded_run_is_ignored(builder, wait_run, qtbot):
    builder.auto_run.value = False
    three_stages(builder)
    builder.run()
    builder.panels[0].params["sigma"].value = 4.0
    wait_run(builder, builder.run)
    np.testing.assert_array_equal(builder.viewer.layers["labels"].data, expected(builder)["labels"])
    qtbot.wait(50)  # nothing late from the first run
    np.testing.assert_array_equal(builder.viewer.layers["blurred"].data, expected(builder)["blurred"])


def test_save_and_load_the_pipeline_file(builder, wait_run, tmp_path):
    wait_run(builder, lambda: three_stages(builder))
    builder.panels[2].save.value = True
    builder.pipeline_name.value = "nuclei"
    path = builder.save(tmp_path / "tuned.yaml")
    saved = Pipeline.from_yaml(path)
    assert saved.name == "nuclei" and saved.stage_names == ["blurred", "mask", "labels"]
    assert saved["blurred"].params == {"sigma": 2.0} and saved.saved_stages == ["labels"]

    builder.clear()
    assert builder.panels == []
    wait_run(builder, lambda: builder.load(path))
    assert builder.pipeline() == saved
    assert builder.panels[0].params["sigma"].value == 2.0
    np.testing.assert_array_equal(builder.viewer.layers["labels"].data, expected(builder)["labels"])


def test_remove_move_and_extra_inputs(builder, wait_run):
    wait_run(builder, lambda: three_stages(builder))
    measure = builder.add_stage("measure", "nuclei")
    assert measure.inputs["intensity"].value == "input"
    assert "labels" in measure.inputs["intensity"].choices
    wait_run(builder, builder.run)
    features = builder.viewer.layers["labels"].features
    table = builder.tables[(0, "nuclei")]
    assert len(features) == len(table) == builder.viewer.layers["labels"].data.max()

    builder.move_stage(3, -1)
    assert [p.stage for p in builder.panels] == ["blurred", "mask", "nuclei", "labels"]
    builder.move_stage(2, 1)
    wait_run(builder, lambda: builder.remove_stage(0))
    assert "blurred" not in builder.viewer.layers
    assert builder.pipeline().stage_names == ["mask", "labels", "nuclei"]


def test_test_mode_runs_a_second_image_beside_the_first(builder, wait_run):
    second = builder.viewer.add_image(nuclei_image(seed=7), name="other")
    builder.image.value = builder.viewer.layers["nuclei"]
    wait_run(builder, lambda: three_stages(builder))

    def on():
        builder.second_image.value = second
        builder.test_mode.value = True

    wait_run(builder, on)
    layers = builder.viewer.layers
    shifted = layers["labels [other]"]
    np.testing.assert_array_equal(shifted.data, expected(builder, nuclei_image(seed=7))["labels"])
    assert shifted.translate[-1] > nuclei_image().shape[1]
    np.testing.assert_array_equal(layers["labels"].data, expected(builder)["labels"])
    # the second image lies under its own outputs, beside the first (it stayed over it)
    np.testing.assert_array_equal(second.translate, shifted.translate)
    np.testing.assert_array_equal(layers["blurred [other]"].translate, second.translate)

    wait_run(builder, lambda: setattr(builder.test_mode, "value", False))
    assert "labels [other]" not in layers
    np.testing.assert_array_equal(second.translate, [0, 0])  # back where it was


def test_an_invalid_chain_says_why(builder, wait_run):
    with pytest.raises(PipelineError, match="no stage"):
        builder.run()
    builder.auto_run.value = False
    builder.add_stage("gaussian")
    builder.panels[0].stage_name.value = "input"
    with pytest.raises(PipelineError, match="name"):
        builder.pipeline()
    builder.run_button.changed.emit(True)
    assert "name" in builder.status.value


def test_the_batch_widget_runs_the_builders_pipeline(builder, wait_run, qtbot, image_folder, tmp_path):
    from napari_batch_pipeline._widgets.batch.widget import BatchWidget

    wait_run(builder, lambda: three_stages(builder))
    assert session_for(builder.viewer).pipeline() == builder.pipeline()
    batch = BatchWidget(builder.viewer)
    batch.input_dir.value = image_folder
    batch.output_dir.value = tmp_path / "out"
    batch.executor.value = "serial"
    with qtbot.waitSignal(batch.run_finished, timeout=30_000) as blocker:
        batch.start()
    assert blocker.args[0].done == 6
    assert (tmp_path / "out" / "pipeline.yaml").read_text() == builder.pipeline().to_yaml()


def test_pipeline_builder_opens_from_the_plugins_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Pipeline builder")
    assert isinstance(widget, PipelineBuilder)


def test_export_script_writes_the_builders_pipeline(builder, wait_run, tmp_path):
    wait_run(builder, lambda: three_stages(builder))
    builder.panels[0].params["sigma"].value = 3.0
    script = builder.export_script(tmp_path / "tuned.py")
    text = script.read_text()
    assert "BLURRED_SIGMA = 3.0" in text
    assert "def blurred(outputs, values):" in text and "def labels(outputs, values):" in text
    compile(text, str(script), "exec")
