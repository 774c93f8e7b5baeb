"""One tuning session per viewer: the builder, the sweep panel and the batch widget share it."""

from __future__ import annotations

import pytest

from napari_batch_pipeline._widgets.batch.widget import BatchWidget
from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder
from napari_batch_pipeline._widgets.sweep.panel import SweepPanel
from napari_batch_pipeline._widgets.viewer.session import session_for
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image

PLUGIN = "napari-batch-pipeline"


@pytest.fixture
def viewer(make_napari_viewer):
    """A viewer holding a small synthetic nuclei image, 'nuclei'."""
    viewer = make_napari_viewer()
    viewer.add_image(nuclei_image(shape=(96, 96)), name="nuclei")
    return viewer


def test_two_viewers_have_two_sessions(make_napari_viewer):
    first, second = make_napari_viewer(), make_napari_viewer()
    assert session_for(first) is session_for(first)
    assert session_for(first) is not session_for(second)
    PipelineBuilder(first).add_stage("gaussian")
    assert session_for(first).stage_names == ["gaussian"]
    assert session_for(second).stages == ()
    with pytest.raises(PipelineError, match="open the Pipeline builder and add stages"):
        BatchWidget(second).current_pipeline()


def test_widgets_from_the_plugins_menu_share_the_viewers_session(viewer):
    """napari hands plugin widgets a proxy of the viewer: the same session all the same."""
    _, builder = viewer.window.add_plugin_dock_widget(PLUGIN, "Pipeline builder")
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch processing")
    assert builder.session is session_for(viewer)
    builder.auto_run.value = False
    builder.add_stage("gaussian", "blurred")
    assert batch.current_pipeline() == builder.pipeline()


def test_a_sweep_apply_reaches_the_builder_and_the_batch_widget(viewer, qtbot):
    builder = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(builder)
    batch = BatchWidget(viewer)
    session = session_for(viewer)
    panel = SweepPanel(session, viewer)
    with qtbot.waitSignal(builder.run_finished, timeout=20_000):
        builder.add_stage("gaussian", "blurred", params={"sigma": 1.5})
        builder.add_stage("threshold", "mask")
        builder.add_stage("label", "labels")
    assert panel.first.stage.choices == ("blurred", "mask", "labels")  # it follows the session

    panel.first.stage.value, panel.first.param.value = "blurred", "sigma"
    panel.first.start.value, panel.first.stop.value, panel.first.step.value = 1.0, 3.0, 1.0
    with qtbot.waitSignal(panel.sweep_finished, timeout=30_000):
        panel.run()
    assert session.sweep is panel.result and session.sweep_image.key == session.image.key
    viewer.dims.set_current_step(0, 2)
    with qtbot.waitSignal(builder.run_finished, timeout=20_000):
        assert panel.apply() == {"blurred.sigma": 3.0}

    assert builder.panels[0].params["sigma"].value == 3.0  # the builder's field follows
    assert batch.current_pipeline()["blurred"].params["sigma"] == 3.0  # and what a batch runs
    assert batch.current_pipeline() == builder.pipeline()


def test_a_second_builder_shows_the_session_as_it_is(viewer, tmp_path):
    first = PipelineBuilder(viewer)
    first.auto_run.value = False
    first.add_stage("gaussian", "blurred", params={"sigma": 2.5})
    first.add_stage("threshold", "mask")
    second = PipelineBuilder(viewer)
    second.auto_run.value = False
    assert [panel.stage for panel in second.panels] == ["blurred", "mask"]
    assert second.panels[0].params["sigma"].value == 2.5

    second.panels[1].params["method"].value = "li"  # an edit in one builder shows in the other
    assert first.panels[1].params["method"].value == "li"
    second.panels[0].stage_name.value = "smooth"
    assert first.panels[0].stage == "smooth"
    pipeline = Pipeline([{"name": "labels", "function": "voronoi_otsu_labeling"}], name="loaded")
    first.set_pipeline(pipeline)
    assert [panel.stage for panel in second.panels] == ["labels"]
    assert second.pipeline_name.value == "loaded" and second.pipeline() == pipeline
