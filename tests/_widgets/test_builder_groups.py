"""The Pipeline builder previews a group stage on the images open in the viewer."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import filters

from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder
from napari_batch_pipeline.core.synthetic import nuclei_image


@pytest.fixture
def builder(make_napari_viewer):
    """A docked builder in a viewer holding three images of one shape and one of another."""
    viewer = make_napari_viewer()
    for seed in range(3):
        viewer.add_image(nuclei_image((64, 80), n_nuclei=5, radius=5.0, seed=seed), name=f"field {seed}")
    viewer.add_image(nuclei_image((32, 32), n_nuclei=2, radius=5.0), name="other shape")
    viewer.layers.selection.active = viewer.layers["field 0"]
    widget = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def _illumination(images: list[np.ndarray]) -> np.ndarray:
    mean = np.mean([image.astype(np.float64) for image in images], axis=0)
    return filters.gaussian(mean, 4.0, preserve_range=True).astype(np.float32)


def test_the_illumination_function_is_learnt_from_the_open_images_and_shown(builder, qtbot):
    def add() -> None:
        builder.add_stage("illumination", "illum", params={"smoothing": 4.0})
        builder.add_stage("correct_illumination", "flat", inputs={"image": "input", "illumination": "illum"})

    with qtbot.waitSignal(builder.run_finished, timeout=30_000):
        builder.image.value = builder.viewer.layers["field 0"]
        add()
    layers = builder.viewer.layers
    fields = [layers[f"field {seed}"].data for seed in range(3)]
    np.testing.assert_allclose(layers["illum"].data, _illumination(fields), rtol=1e-5)
    function = _illumination(fields).astype(np.float64)
    np.testing.assert_allclose(layers["flat"].data, (fields[0] / (function / np.median(function))), rtol=1e-5)
    with qtbot.waitSignal(builder.run_finished, timeout=30_000):
        layers.remove("field 2")
    np.testing.assert_allclose(layers["illum"].data, _illumination(fields[:2]), rtol=1e-5)


def test_the_illumination_widget_learns_from_one_layer_as_a_group_of_one(make_napari_viewer):
    from napari_batch_pipeline._widgets.stages.widgets import make_stage_widget

    viewer = make_napari_viewer()
    image = nuclei_image((64, 80), n_nuclei=5, radius=5.0)
    viewer.add_image(image, name="field")
    widget = make_stage_widget("illumination")
    viewer.window.add_dock_widget(widget)
    widget(smoothing=4.0)
    np.testing.assert_allclose(viewer.layers["field illumination"].data, _illumination([image]), rtol=1e-5)


def test_a_group_stage_panel_edits_group_by_and_has_no_save_box(builder):
    builder.add_stage("illumination", "illum")
    builder.add_stage("gaussian", "blurred")
    illum, blurred = builder.panels
    assert not illum.group_by.native.isHidden() and illum.save.native.isHidden()
    assert blurred.group_by.native.isHidden() and not blurred.save.native.isHidden()
    illum.group_by.value = "plate, well"
    assert builder.pipeline()["illum"].group_by == ("plate", "well")
    builder.session.set_group_by(0, [])
    assert illum.group_by.value == "" and builder.pipeline()["illum"].group_by == ()


def test_a_group_preview_learns_from_the_chosen_images_folder_and_says_which(
    make_napari_viewer, qtbot, tmp_path
):
    import tifffile

    viewer = make_napari_viewer()
    images = {}
    for plate, seeds in (("plate1", (0, 1)), ("plate2", (2, 3, 4))):
        for seed in seeds:
            path = tmp_path / plate / f"{plate}_{seed}.tif"
            path.parent.mkdir(exist_ok=True)
            images[path.stem] = nuclei_image((64, 80), n_nuclei=5, radius=5.0, seed=seed)
            tifffile.imwrite(path, images[path.stem])
            viewer.open(str(path))  # napari's own reader: the layer knows its file
    builder = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(builder)
    with qtbot.waitSignal(builder.run_finished, timeout=30_000):
        builder.image.value = viewer.layers["plate2_3"]
        builder.add_stage("illumination", "illum", params={"smoothing": 4.0})
    plate2 = [images[f"plate2_{seed}"] for seed in (2, 3, 4)]
    # the default group_by is the folder: plate 2's images, not plate 1's
    np.testing.assert_allclose(viewer.layers["illum"].data, _illumination(plate2), rtol=1e-5)
    status = builder.status.value
    assert "illum learnt from 3 image(s) of folder plate2" in status, status
    assert all(name in status for name in ("plate2_2", "plate2_3", "plate2_4")) and "plate1" not in status

    with qtbot.waitSignal(builder.run_finished, timeout=30_000):
        builder.session.set_group_by(0, [])  # one group of every image
    np.testing.assert_allclose(viewer.layers["illum"].data, _illumination(list(images.values())), rtol=1e-5)
    assert "illum learnt from 5 image(s) (all open images)" in builder.status.value
