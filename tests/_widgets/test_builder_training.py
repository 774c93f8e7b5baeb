"""Training a pixel classifier in the builder: paint on its training layer, it retrains 300 ms
after the last stroke in a worker and the chain previews the classes; Save... writes the
training file and its hash beside the pipeline file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from napari.layers import Labels
from skimage import filters

from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import forests
from napari_batch_pipeline.core.stages.training import file_sha256
from napari_batch_pipeline.core.synthetic import nuclei_image

PARAMS = {"output": "mask", "foreground": 2, "trees": 10, "features": {"sigma_min": 1, "sigma_max": 8}}


def _strokes(layer: Labels, truth: np.ndarray) -> None:
    """Dabs of the brush along a few rows: class 2 on nuclei, class 1 around them."""
    layer.brush_size = 3
    for row in range(20, truth.shape[0] - 20, 24):
        for col in range(4, truth.shape[1] - 4, 6):
            layer.paint((row, col), 2 if truth[row, col] else 1)


def test_painting_retrains_and_previews_and_save_writes_the_training(builder, qtbot, tmp_path: Path) -> None:
    forests._TRAINED.clear()
    image = nuclei_image()
    truth = filters.gaussian(image, 2, preserve_range=True) > filters.threshold_otsu(image)
    builder.add_stage("pixel_classifier", "cells", params=PARAMS)
    layer = builder.training_layers.layers[("cells", builder.session.image.key)]
    assert isinstance(layer, Labels) and layer.name == "cells training" and layer.data.shape == image.shape
    assert not layer.data.any()

    trained: list[str] = []
    builder.training_layers.trained.connect(trained.append)
    with qtbot.waitSignal(builder.run_finished, timeout=60_000, check_params_cb=lambda s: s is not None):
        _strokes(layer, truth)  # many strokes, one training after the last
    assert trained == ["cells"]
    params = builder.session.pipeline()["cells"].params
    assert params["training"] == "cells_training.npz" and len(params["training_sha256"]) == 64
    shown = builder.panels[0].params["training_sha256"]  # the panel follows, read-only
    assert shown.value == params["training_sha256"] and params["training_sha256"] in shown.tooltip
    assert shown.shown.value == params["training_sha256"][:12] + "…"
    shown = builder.viewer.layers["cells"].data.astype(bool)
    iou = (shown & truth).sum() / (shown | truth).sum()
    assert iou > 0.85, iou
    if os.environ.get("CLASSIFY_SHOTS"):
        builder.viewer.layers["cells training"].opacity = 0.9
        builder.viewer.screenshot(
            str(Path(os.environ["CLASSIFY_SHOTS"]) / "builder_training.png"), canvas_only=False
        )

    builder.save(tmp_path / "cells.yaml")
    assert file_sha256(tmp_path / "cells_training.npz") == params["training_sha256"]
    forests._TRAINED.clear()  # another session: the forest comes from the saved file
    saved = Pipeline.from_yaml(tmp_path / "cells.yaml")
    np.testing.assert_array_equal(saved.run(image)["cells"].astype(bool), shown)


def test_a_training_layer_follows_its_stage(builder, qtbot) -> None:
    builder.add_stage("pixel_classifier", "cells", params=PARAMS)
    assert "cells training" in builder.viewer.layers
    builder.remove_stage(0)
    assert "cells training" not in builder.viewer.layers


def test_painting_over_objects_trains_the_object_classifier(builder, qtbot) -> None:
    from skimage import measure

    forests._TRAINED.clear()
    builder.add_stage("threshold", "mask")
    builder.add_stage("label", "objects")
    builder.add_stage(
        "object_classifier",
        "kinds",
        params={"trees": 5, "properties": ["area", "intensity_mean"]},
        inputs={"labels": "objects", "intensity": "input"},
    )
    layer = builder.viewer.layers["kinds training"]
    objects = builder.pipeline().run(nuclei_image(), until="objects")["objects"]
    table = measure.regionprops_table(objects, properties=["label", "area", "centroid"])
    cut = np.median(table["area"])
    with qtbot.waitSignal(builder.run_finished, timeout=60_000, check_params_cb=lambda s: s is not None):
        layer.brush_size = 3
        for area, row, col in zip(table["area"], table["centroid-0"], table["centroid-1"], strict=True):
            layer.paint((row, col), 2 if area > cut else 1)
    assert builder.session.pipeline()["kinds"].params["training"] == "kinds_training.npz"
    shown = builder.tables[(0, "kinds")]
    assert list(shown["label"]) == list(table["label"])
    assert set(shown["class"]) == {1, 2}
    assert "chosen objects" in builder.status.value or "stage(s)" in builder.status.value
