"""Stage widgets: the core stage on the chosen layers, its output as a layer."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_batch_pipeline._widgets.stage_widgets import gaussian_widget, make_stage_widget
from napari_batch_pipeline.core.stages import STAGES
from napari_batch_pipeline.core.stages.filters import gaussian
from napari_batch_pipeline.core.stages.measure import measure
from napari_batch_pipeline.core.stages.segment import label, threshold
from napari_batch_pipeline.core.synthetic import nuclei_image

PLUGIN = "napari-batch-pipeline"


@pytest.fixture
def viewer(make_napari_viewer):
    """A viewer holding one synthetic nuclei image, named 'nuclei'."""
    viewer = make_napari_viewer()
    viewer.add_image(nuclei_image(), name="nuclei")
    return viewer


def test_gaussian_widget_adds_the_filtered_layer(viewer):
    widget = gaussian_widget()
    viewer.window.add_dock_widget(widget)
    widget.sigma.value = 3.0
    widget()
    result = viewer.layers["nuclei gaussian"]
    assert isinstance(result, Image)
    np.testing.assert_array_equal(result.data, gaussian(nuclei_image(), sigma=3.0))


def test_running_again_updates_the_same_layer(viewer):
    widget = gaussian_widget()
    viewer.window.add_dock_widget(widget)
    widget(sigma=1.0)
    widget(sigma=4.0)
    assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei gaussian"]
    np.testing.assert_array_equal(
        viewer.layers["nuclei gaussian"].data, gaussian(nuclei_image(), sigma=4.0)
    )


def test_gaussian_opens_from_the_plugins_menu_and_runs(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Gaussian")
    assert widget.sigma.value == STAGES["gaussian"].params["sigma"].default
    widget.call_button.clicked()
    np.testing.assert_array_equal(
        viewer.layers["nuclei gaussian"].data, gaussian(nuclei_image(), sigma=2.0)
    )


def test_gaussian_is_in_the_layers_filter_menu(viewer):
    from napari._app_model import get_app_model

    commands = [
        item.command.id
        for item in get_app_model().menus.get_menu("napari/layers/filter")
        if hasattr(item, "command")
    ]
    assert f"{PLUGIN}.gaussian" in commands


@pytest.mark.parametrize("stage_name", sorted(STAGES))
def test_every_stage_builds_a_widget_with_its_defaults(qtbot, stage_name):
    spec = STAGES[stage_name]
    widget = make_stage_widget(stage_name)
    qtbot.addWidget(widget.native)
    names = [w.name for w in widget]
    assert names[: len(spec.data_args)] == list(spec.data_args)
    for param in spec.params.values():
        value = widget[param.name].value
        expected = param.default
        assert (list(value) if isinstance(value, tuple) else value) == (
            list(expected) if isinstance(expected, tuple) else expected
        )


def test_threshold_gives_a_uint8_labels_layer(viewer):
    widget = make_stage_widget("threshold")
    viewer.window.add_dock_widget(widget)
    widget(method="li")
    result = viewer.layers["nuclei threshold"]
    assert isinstance(result, Labels)
    assert result.data.dtype == np.uint8
    np.testing.assert_array_equal(result.data, threshold(nuclei_image(), method="li"))


def test_measure_puts_the_table_in_the_labels_features(viewer):
    labels = label(threshold(nuclei_image()))
    labels_layer = viewer.add_labels(labels, name="nuclei labels")
    widget = make_stage_widget("measure")
    viewer.window.add_dock_widget(widget)
    widget(labels=labels_layer, intensity=viewer.layers["nuclei"])
    expected = measure(labels, nuclei_image())
    features = labels_layer.features
    assert len(features) == len(expected) == labels.max()
    np.testing.assert_array_equal(features["index"], expected["label"])
    np.testing.assert_allclose(features["area"], expected["area"])
    np.testing.assert_allclose(features["intensity_mean"], expected["intensity_mean"])


def test_running_without_a_layer_says_what_is_missing(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = gaussian_widget()
    viewer.window.add_dock_widget(widget)
    with pytest.raises(ValueError, match="choose a layer for 'image'"):
        widget()
