"""The builder's panel of a pixel classifier as a scientist uses it: a field per feature
option (check boxes for the feature families, number fields for the sigmas) whose edits
reach the session and the saved pipeline file as the mapping the stage reads, a plain
message for a choice the stage refuses, and the training's hash shown, never typed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from magicgui.widgets import CheckBox
from qtpy.QtWidgets import QAbstractSpinBox, QLineEdit, QWidget

from napari_batch_pipeline._widgets.stages.widgets import make_stage_widget
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import forests
from napari_batch_pipeline.core.stages.training import write_training
from napari_batch_pipeline.core.synthetic import nuclei_image

FEATURES = {"sigma_min": 1, "sigma_max": 8}
PARAMS = {"output": "mask", "foreground": 2, "trees": 10, "features": FEATURES}
PIPELINE = """\
version: 1
name: painted
stages:
  - name: cells
    function: pixel_classifier
    params: {{training: cells.npz, training_sha256: {sha}, trees: 10,
              features: {{sigma_min: 1, sigma_max: 8}}, output: mask, foreground: 2}}
    save: true
  - name: objects
    function: label
"""


def _features(builder, index: int = 0):
    return builder.session.stages[index].params["features"]


def _shown(builder, widget) -> bool:
    """Whether ``widget`` shows when the builder does."""
    return widget.native.isVisibleTo(builder)


def _editable(field) -> list[QWidget]:
    """The widgets of a field a person could type into."""
    widgets = [field.native, *field.native.findChildren(QWidget)]
    return [
        w
        for w in widgets
        if isinstance(w, (QLineEdit, QAbstractSpinBox)) and w.isEnabled() and not w.isReadOnly()
    ]


def test_the_feature_options_are_fields_whose_edits_reach_the_session_and_the_file(builder, tmp_path):
    panel = builder.add_stage("pixel_classifier", "cells", params=PARAMS)
    fields = panel.params["features"].fields
    assert set(fields) == {"sigma_min", "sigma_max", "num_sigma", "intensity", "edges", "texture"}
    for family in ("intensity", "edges", "texture"):
        assert isinstance(fields[family], CheckBox) and fields[family].value is True
        assert fields[family].native.isVisibleTo(builder)
    assert (fields["sigma_min"].value, fields["sigma_max"].value) == (1, 8)
    assert fields["num_sigma"].native.text() == "auto"  # None: as many sigmas as fit
    assert _features(builder) == FEATURES  # showing them changed nothing

    fields["texture"].value = False
    assert _features(builder) == {**FEATURES, "texture": False}
    fields["sigma_max"].value = 4.5
    fields["num_sigma"].value = 3
    expected = {"sigma_min": 1, "sigma_max": 4.5, "texture": False, "num_sigma": 3}
    assert _features(builder) == expected
    assert builder.pipeline()["cells"].params["features"] == expected

    saved = builder.save(tmp_path / "cells.yaml")
    written = yaml.safe_load(saved.read_text(encoding="utf-8"))["stages"][0]["params"]
    assert written["features"] == expected
    assert Pipeline.from_yaml(saved)["cells"].params["features"] == expected

    fields["num_sigma"].value = 0  # back to "auto": None, as the default has it
    assert _features(builder) == {"sigma_min": 1, "sigma_max": 4.5, "texture": False}


def test_a_session_edit_shows_in_the_fields(builder):
    panel = builder.add_stage("pixel_classifier", "cells", params=PARAMS)
    builder.session.set_param(0, "features", {"sigma_min": 2.0, "edges": False, "num_sigma": 5})
    fields = panel.params["features"].fields
    assert (fields["sigma_min"].value, fields["sigma_max"].value) == (2.0, 16.0)
    assert fields["edges"].value is False and fields["num_sigma"].value == 5
    assert _features(builder) == {"sigma_min": 2.0, "edges": False, "num_sigma": 5}


def test_a_feature_choice_the_stage_refuses_is_said_in_words(builder, qtbot):
    panel = builder.add_stage("pixel_classifier", "cells", params=PARAMS)
    features = panel.params["features"]
    assert not _shown(builder, features.message)
    for family in ("intensity", "edges", "texture"):
        features.fields[family].value = False
    assert _shown(builder, features.message)
    assert "at least one of intensity, edges and texture must be true" in features.message.value
    assert _features(builder) == {**FEATURES, "intensity": False, "edges": False, "texture": False}
    qtbot.waitUntil(lambda: "at least one of intensity" in builder.status.value, timeout=10_000)

    features.fields["texture"].value = True
    assert not _shown(builder, features.message)
    features.fields["sigma_min"].value = 9
    assert _shown(builder, features.message) and "sigma_min 9 is above sigma_max 8" in features.message.value


def test_the_training_hash_is_shown_not_typed(builder, qtbot):
    panel = builder.add_stage("pixel_classifier", "cells", params=PARAMS)
    field = panel.params["training_sha256"]
    assert _shown(builder, field)
    assert not _editable(field)
    qtbot.keyClicks(field.native, "0123")  # a person types at it: nothing changes
    assert builder.session.stages[0].params["training_sha256"] == ""
    assert field.value == ""

    sha = "0123456789abcdef" * 4
    builder.session.set_param(0, "training_sha256", sha)  # what the builder's training does
    assert field.value == sha
    assert field.shown.value == "0123456789ab…"
    assert sha in field.tooltip and "written when the builder saves it" in field.tooltip


def test_a_loaded_pipeline_saved_again_runs_the_same(builder, tmp_path: Path):
    forests._TRAINED.clear()
    image = nuclei_image()
    painted = np.zeros(image.shape, np.uint8)
    painted[::4, ::3] = np.where(image[::4, ::3] > np.percentile(image, 70), 2, 1)
    sha = write_training(tmp_path / "cells.npz", [{"image": image, "labels": painted}])
    first = tmp_path / "first.yaml"
    first.write_text(PIPELINE.format(sha=sha), encoding="utf-8")
    before = Pipeline.from_yaml(first)

    builder.load(first)
    fields = builder.panels[0].params["features"].fields
    assert (fields["sigma_min"].value, fields["sigma_max"].value) == (1, 8)
    assert builder.panels[0].params["training_sha256"].value == sha
    fields["texture"].value = False  # a person tries a choice, then goes back to it
    fields["sigma_max"].value = 6
    fields["texture"].value = True
    fields["sigma_max"].value = 8
    again = builder.save(tmp_path / "again.yaml")

    after = Pipeline.from_yaml(again)
    for name in before.stage_names:
        assert after[name].params == before[name].params, name
    assert after["cells"].params["features"] == FEATURES
    assert yaml.safe_load(again.read_text(encoding="utf-8"))["stages"][0]["params"]["training_sha256"] == sha
    forests._TRAINED.clear()
    expected = before.run(image)
    forests._TRAINED.clear()
    got = after.run(image)
    for name in before.stage_names:
        np.testing.assert_array_equal(got[name], expected[name])


def test_the_stage_widget_passes_the_feature_fields_to_the_stage(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = make_stage_widget("pixel_classifier")
    viewer.window.add_dock_widget(widget)
    widget.features.fields["edges"].value = False
    widget.features.fields["sigma_max"].value = 4
    assert widget.features.value == {**forests.FEATURE_DEFAULTS, "edges": False, "sigma_max": 4.0}
    assert _editable(widget.training_sha256)  # no builder to write it: a person pastes it
