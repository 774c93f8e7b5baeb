"""The builder's parameter sweep: one stacked layer, its slider the parameter, a plot, Apply."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder
from napari_batch_pipeline._widgets.sweep.panel import SweepPanel
from napari_batch_pipeline.core.synthetic import nuclei_image

SIGMAS = [1.0, 2.0, 3.0]


@pytest.fixture
def image() -> np.ndarray:
    return nuclei_image(shape=(128, 128))


@pytest.fixture
def builder(make_napari_viewer, qtbot, image):
    """A docked builder running gaussian -> threshold -> label -> measure on 'nuclei', run once.

    The triangle threshold makes the object count depend on sigma (6, 4, 2 for 1, 2, 3).
    """
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    widget = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(widget)
    with qtbot.waitSignal(widget.run_finished, timeout=20_000):
        widget.add_stage("gaussian", "blurred", params={"sigma": 1.5})
        widget.add_stage("threshold", "mask", params={"method": "triangle"})
        widget.add_stage("label", "labels")
        widget.add_stage("measure", "nuclei", inputs={"intensity": "input"})
    return widget


@pytest.fixture
def sweep_to_end(qtbot):
    """``sweep_to_end(panel)``: run the panel's sweep and wait for its end; return the result."""

    def run(panel: SweepPanel, timeout: int = 30_000):
        with qtbot.waitSignal(panel.sweep_finished, timeout=timeout) as blocker:
            panel.run()
        return blocker.args[0]

    return run


def sigma_sweep(panel: SweepPanel) -> None:
    panel.first.stage.value = "blurred"
    panel.first.param.value = "sigma"
    panel.first.start.value, panel.first.stop.value, panel.first.step.value = 1.0, 3.0, 1.0


def test_open_sweep_docks_one_panel_for_the_builder(builder):
    panel = builder.open_sweep()
    assert isinstance(panel, SweepPanel) and panel.parent() is not None
    assert builder.open_sweep() is panel
    assert panel.first.stage.choices == ("blurred", "mask", "labels", "nuclei")  # nuclei: its units
    assert panel.first.param.value == "sigma"
    assert panel.first.values() == [0.75, 1.5, 2.25, 3.0]  # around the current 1.5
    assert panel.output.value == "labels"
    panel.first.stage.value = "mask"
    assert panel.first.param.value == "method" and not panel.first.range.visible
    assert panel.first.values()[:2] == ["otsu", "li"]


def test_sweep_gaussian_sigma_shows_a_stack_and_a_plot_and_applies_a_value(
    builder, sweep_to_end, qtbot, image
):
    viewer = builder.viewer
    panel = builder.open_sweep()
    sigma_sweep(panel)
    assert panel.sweep() == {"blurred.sigma": SIGMAS}

    result = sweep_to_end(panel)

    # one stacked layer, its slider the parameter
    assert result is panel.result and result.complete
    layer = viewer.layers[SweepPanel.layer_name(result)]
    assert isinstance(layer, Labels) and layer is panel.layer
    assert layer.data.shape == (3, 128, 128)
    assert viewer.dims.axis_labels[0] == "blurred.sigma"
    assert layer.metadata["sweep"]["values"] == {"blurred.sigma": SIGMAS}
    pipeline = builder.pipeline()
    counts = []
    for index, sigma in enumerate(SIGMAS):
        outputs = pipeline.with_params({"blurred.sigma": sigma}).run(image)
        np.testing.assert_array_equal(layer.data[index], outputs["labels"])
        counts.append(len(outputs["nuclei"]))
    assert len(set(counts)) == 3
    assert panel.progress.value == 3 and panel.run_button.enabled

    # 1.5 was not swept: the slider starts at the first value, and says so
    assert viewer.dims.current_step[0] == 0
    assert panel.value_label.value.startswith("blurred.sigma = 1.0")
    assert layer.metadata["sweep_value"] == {"blurred.sigma": 1.0}
    # the plot: object count against sigma, the selected value ringed
    assert panel.measurement.value == "nuclei.count"
    lines = {line.get_gid(): line for line in panel.axes.get_lines()}
    np.testing.assert_array_equal(lines["sweep"].get_xdata(), SIGMAS)
    np.testing.assert_array_equal(lines["sweep"].get_ydata(), counts)
    assert list(lines["selected"].get_xdata()) == [1.0]

    # the second value: label, metadata and ring follow the slider
    viewer.dims.set_current_step(0, 1)
    assert panel.value_label.value.startswith("blurred.sigma = 2.0")
    assert layer.metadata["sweep_value"] == {"blurred.sigma": 2.0}
    lines = {line.get_gid(): line for line in panel.axes.get_lines()}
    assert list(lines["selected"].get_xdata()) == [2.0]
    panel.measurement.value = "nuclei.mean_area"
    lines = {line.get_gid(): line for line in panel.axes.get_lines()}
    assert panel.axes.get_ylabel() == "nuclei.mean_area"
    np.testing.assert_allclose(
        lines["sweep"].get_ydata(), [p.summary["nuclei.mean_area"] for p in result.points]
    )

    # Apply writes it into the builder's field, which re-runs the builder
    with qtbot.waitSignal(builder.run_finished, timeout=20_000):
        applied = panel.apply()
    assert applied == {"blurred.sigma": 2.0}
    assert builder.panels[0].params["sigma"].value == 2.0
    assert builder.pipeline()["blurred"].params["sigma"] == 2.0
    np.testing.assert_array_equal(viewer.layers["labels"].data, result.point_at((1,)).output)


def test_a_grid_has_two_sliders_starting_at_the_builders_values(builder, sweep_to_end):
    viewer = builder.viewer
    panel = builder.open_sweep()
    sigma_sweep(panel)
    panel.first.stop.value, panel.first.step.value = 2.0, 0.5
    panel.use_second.value = True
    panel.second.stage.value = "mask"
    panel.second.values_text.value = "li, triangle"
    panel.output.value = "blurred"
    result = sweep_to_end(panel)
    assert result.shape == (3, 2)
    layer = panel.layer
    assert isinstance(layer, Image) and layer.data.shape == (3, 2, 128, 128)
    assert viewer.dims.axis_labels[:2] == ("blurred.sigma", "mask.method")
    assert viewer.dims.current_step[:2] == (1, 1)  # sigma 1.5, triangle: the builder's values
    assert panel.selected_params() == {"blurred.sigma": 1.5, "mask.method": "triangle"}
    viewer.dims.set_current_step(1, 0)
    assert panel.value_label.value.startswith("blurred.sigma = 1.5, mask.method = li")
    assert [line.get_gid() for line in panel.axes.get_lines()][:2] == ["sweep:li", "sweep:triangle"]


def test_cancel_shows_nothing_and_a_bad_sweep_says_why(builder, qtbot):
    panel = builder.open_sweep()
    sigma_sweep(panel)
    panel.first.stop.value = 40.0
    with qtbot.waitSignal(panel.sweep_finished, timeout=30_000) as blocker:
        panel.run()
        panel.cancel()
    result = blocker.args[0]
    assert result is not None and not result.complete
    assert panel.layer is None and "cancelled" in panel.status.value
    assert panel.run_button.enabled

    worker = panel.worker
    panel.first.step.value = -1.0
    panel.run_button.changed.emit(True)
    assert "leads away" in panel.status.value
    assert panel.worker is worker  # nothing started


def test_the_range_boxes_show_their_values_whole(builder, qtbot):
    builder.viewer.window.show()
    panel = builder.open_sweep()
    panel.setFixedWidth(420)  # a dock on a 1280 x 800 screen
    qtbot.waitUntil(panel.isVisible)
    sigma_sweep(panel)
    panel.first.start.value = 1.25
    for box in (panel.first.start, panel.first.stop, panel.first.step):
        line = box.native.lineEdit()
        assert line.fontMetrics().horizontalAdvance(line.text()) <= line.width(), (line.text(), line.width())


def test_the_builder_never_offers_a_sweeps_stack_as_an_image(builder, sweep_to_end):
    panel = builder.open_sweep()
    sigma_sweep(panel)
    panel.output.value = "blurred"  # an image stage: the stack is an Image layer
    result = sweep_to_end(panel)
    layer = panel.layer
    assert isinstance(layer, Image) and layer.name == SweepPanel.layer_name(result)
    offered = [choice for choice in builder.image.choices if choice is not None]
    assert layer not in offered and layer not in builder.second_image.choices
    assert builder.viewer.layers["nuclei"] in offered
