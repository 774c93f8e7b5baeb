"""Stage widgets: the core stage on the chosen layers, its output as a layer."""

from __future__ import annotations

import importlib

import npe2
import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_batch_pipeline._widgets.stages.widgets import gaussian_widget, make_stage_widget
from napari_batch_pipeline.core.stages import STAGES
from napari_batch_pipeline.core.stages.filters import gaussian, median
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
    np.testing.assert_array_equal(viewer.layers["nuclei gaussian"].data, gaussian(nuclei_image(), sigma=4.0))


def test_gaussian_opens_from_the_plugins_menu_and_runs_in_a_worker(viewer, qtbot):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Gaussian")
    assert widget.sigma.value == STAGES["gaussian"].params["sigma"].default
    with qtbot.waitSignal(widget.called, timeout=10_000) as blocker:
        widget.call_button.clicked()
        assert widget.worker is not None
        assert not widget.call_button.enabled  # until the worker is done
    assert blocker.args == [viewer.layers["nuclei gaussian"]]
    np.testing.assert_array_equal(viewer.layers["nuclei gaussian"].data, gaussian(nuclei_image(), sigma=2.0))
    qtbot.waitUntil(lambda: widget.call_button.enabled)


def test_start_returns_the_worker_and_reports_errors(make_napari_viewer, qtbot, monkeypatch):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8, 3)), name="rgb")
    widget = make_stage_widget("threshold")
    viewer.window.add_dock_widget(widget)
    errors = []
    monkeypatch.setattr("napari_batch_pipeline._widgets.stages.widgets.show_error", errors.append)
    widget.method.value = "local"
    widget.block_size.value = 4  # even: scikit-image refuses it
    widget.start()
    qtbot.waitUntil(lambda: bool(errors) and widget.call_button.enabled, timeout=10_000)
    assert len(errors) == 1 and errors[0].startswith("threshold:")
    assert "rgb threshold" not in viewer.layers


@pytest.fixture(scope="module")
def manifest():
    """The plugin's manifest as napari discovers it (the installed package)."""
    manager = npe2.PluginManager()
    manager.discover()
    return manager.get_manifest(PLUGIN)


@pytest.mark.parametrize(("stage_name", "kind"), [(name, spec.menu) for name, spec in sorted(STAGES.items())])
def test_every_builtin_stage_is_a_plugin_widget_in_its_layers_menu(manifest, qtbot, stage_name, kind):
    command_id = f"{PLUGIN}.{stage_name}"
    assert command_id in [w.command for w in manifest.contributions.widgets]
    assert command_id in [item.command for item in manifest.contributions.menus[f"napari/layers/{kind}"]]
    (command,) = [c for c in manifest.contributions.commands if c.id == command_id]
    module, _, factory = command.python_name.partition(":")
    widget = getattr(importlib.import_module(module), factory)()
    qtbot.addWidget(widget.native)
    assert widget.spec.name == stage_name


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


def test_measure_runs_with_its_defaults(viewer):
    # Its intensity chooser was empty while its default properties hold intensity_mean:
    # Run failed, in pipeline-file words ("add inputs: {intensity: input}").
    labels = label(threshold(nuclei_image()))
    labels_layer = viewer.add_labels(labels, name="nuclei labels")
    widget = make_stage_widget("measure")
    viewer.window.add_dock_widget(widget)
    assert widget.intensity.value is viewer.layers["nuclei"]
    widget()
    expected = measure(labels, nuclei_image())
    np.testing.assert_allclose(labels_layer.features["intensity_mean"], expected["intensity_mean"])
    widget.intensity.value = None
    with pytest.raises(ValueError, match="choose a layer for 'intensity'") as error:
        widget()
    assert "inputs:" not in str(error.value)


def test_measure_after_threshold_and_label_measures_the_labels_not_the_mask(viewer, monkeypatch):
    # Gaussian -> Threshold -> Label -> Measure with defaults, as from the Layers menu:
    # Measure took the first labels layer, the 0/1 mask, and measured "1 objects".
    for stage in ("gaussian", "threshold", "label"):
        widget = make_stage_widget(stage)
        viewer.window.add_dock_widget(widget)
        if stage == "threshold":
            widget.image.value = viewer.layers["nuclei gaussian"]  # the user picks the blurred one
        widget()
    mask, labels = (
        viewer.layers["nuclei gaussian threshold"],
        viewer.layers["nuclei gaussian threshold label"],
    )
    measure_widget = make_stage_widget("measure")
    viewer.window.add_dock_widget(measure_widget)
    assert measure_widget["labels"].value is labels  # by name: ``labels`` is a Container property
    table = measure_widget()
    assert len(table) == labels.data.max() > 1
    # chosen by hand, the mask still runs, and says what is wrong
    warnings: list[str] = []
    monkeypatch.setattr("napari_batch_pipeline._widgets.stages.widgets.show_warning", warnings.append)
    measure_widget(labels=mask)
    assert warnings and "is a mask (0 and 1), not labels" in warnings[0] and "Label" in warnings[0]


def test_running_without_a_layer_says_what_is_missing(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = gaussian_widget()
    viewer.window.add_dock_widget(widget)
    with pytest.raises(ValueError, match="choose a layer for 'image'"):
        widget()


def test_run_clicked_without_a_layer_says_so_in_plain_words(make_napari_viewer, monkeypatch, qtbot):
    # it was an empty error toast with only "View Traceback" (psygnal's EmitLoopError)
    viewer = make_napari_viewer()
    errors: list[str] = []
    monkeypatch.setattr("napari_batch_pipeline._widgets.stages.widgets.show_error", errors.append)
    widget = make_stage_widget("measure")
    viewer.window.add_dock_widget(widget)
    widget.call_button.native.click()
    assert errors == ["measure: choose a layer for 'labels'"]
    assert widget.worker is None


def test_measure_in_physical_units_takes_the_labels_layer_scale(viewer):
    labels = label(threshold(nuclei_image()))
    labels_layer = viewer.add_labels(labels, name="nuclei labels", scale=(0.5, 0.25))
    widget = make_stage_widget("measure")
    viewer.window.add_dock_widget(widget)
    assert "spacing" not in [field.name for field in widget]  # the engine's argument, no field
    assert widget.units.value == "pixels"
    widget(labels=labels_layer, properties=["area"], units="physical")
    expected = measure(labels, properties=["area"], units="physical", spacing=(0.5, 0.25))
    np.testing.assert_allclose(labels_layer.features["area"], expected["area"])
    np.testing.assert_allclose(labels_layer.features["area"], np.bincount(labels.ravel())[1:] * 0.125)


def test_stage_widgets_run_on_a_3d_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    volume = np.stack([nuclei_image(shape=(64, 64), seed=seed) for seed in range(4)])
    viewer.add_image(volume, name="stack", scale=(2.0, 0.5, 0.5))
    widget = make_stage_widget("median")
    viewer.window.add_dock_widget(widget)
    result = widget(radius=1)
    np.testing.assert_array_equal(result.data, median(volume, radius=1))
    assert tuple(result.scale) == (2.0, 0.5, 0.5)
