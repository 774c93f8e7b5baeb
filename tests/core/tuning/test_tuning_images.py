"""What the builder tunes on, without Qt: the draft's channels, layers mapped to channels,
and runs of the session on channels and z stacks at the layer's scale."""

from __future__ import annotations

from unittest.mock import Mock

import numpy as np
import pandas as pd
import pytest

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image
from napari_batch_pipeline.core.tuning.draft import INPUT, channels_from_text, channels_text
from napari_batch_pipeline.core.tuning.image import (
    ChannelSource,
    LayerImage,
    channel_sources,
    default_sources,
    second_sources,
    tuning_image,
)
from napari_batch_pipeline.core.tuning.session import TuningSession


@pytest.fixture
def cells() -> np.ndarray:
    """(3, 64, 64): three channels with different nuclei."""
    return np.stack([nuclei_image(shape=(64, 64), n_nuclei=5, radius=5, seed=s) for s in (1, 2, 3)])


@pytest.fixture
def session() -> TuningSession:
    """Channels dna and cyto; blurred (dna) -> mask -> labels -> cells (measured on cyto)."""
    session = TuningSession()
    session.set_channels({"dna": 0, "cyto": 1})
    session.add_stage("gaussian", "blurred", inputs={"image": "dna"})
    session.add_stage("threshold", "mask")
    session.add_stage("label", "labels")
    session.add_stage(
        "measure", "cells", params={"properties": ["area"], "units": "physical"}, inputs={"intensity": "cyto"}
    )
    return session


def outputs_of(session: TuningSession) -> dict:
    return {name: output for _, name, output, _ in session.start_run()}


# -- the draft's channels ---------------------------------------------------------------


def test_channels_are_offered_as_inputs_and_saved(session, tmp_path):
    assert session.sources(0, "image") == [INPUT, "dna", "cyto"]
    assert session.source_of(0, "image") == "dna" and session.source_of(1, "image") == "blurred"
    pipeline = session.pipeline()
    assert pipeline.to_dict()["channels"] == {"dna": 0, "cyto": 1}
    loaded = Pipeline.from_yaml(pipeline.save(tmp_path / "p.yaml"))

    other = TuningSession()
    listener = Mock()
    other.channels_changed.connect(listener)
    other.set_pipeline(loaded)
    listener.assert_called_once()
    assert other.channels == {"dna": 0, "cyto": 1} and other.pipeline() == loaded


def test_a_channel_no_longer_named_leaves_its_stages_the_default(session):
    session.set_channels({"dna": 0})
    assert session.stages[3].inputs == {"intensity": INPUT}  # labels: the stage before
    assert session.stages[0].inputs == {"image": "dna"}
    session.set_channels(None)
    assert session.stages[0].inputs == {} and "channels" not in session.pipeline().to_dict()


def test_invalid_channels_are_refused_and_change_nothing(session):
    with pytest.raises(PipelineError, match=r"channels\.input"):
        session.set_channels({"input": 0})
    with pytest.raises(PipelineError, match=r"channels\.labels: a stage has this name"):
        session.set_channels({"labels": 0})
    assert session.channels == {"dna": 0, "cyto": 1}


def test_channels_as_one_line():
    assert channels_text({"dna": 0, "cyto": "Alexa 568"}) == "dna: 0, cyto: Alexa 568"
    assert channels_from_text("dna: 0, cyto: Alexa 568") == {"dna": 0, "cyto": "Alexa 568"}
    assert channels_from_text("  ") == {} and channels_text({}) == ""
    with pytest.raises(PipelineError, match="expected 'name: index' pairs"):
        channels_from_text("dna: [0")


# -- layers mapped to channels -----------------------------------------------------------


def test_the_choices_are_layers_and_the_channels_of_a_stack(cells):
    stack = LayerImage("k1", "cells", cells)
    plane = LayerImage("k2", "dna", cells[0])
    rgb = LayerImage("k3", "photo", np.zeros((8, 8, 3)), rgb=True)
    assert channel_sources([stack, plane, rgb]) == [
        ChannelSource("cells"),
        *(ChannelSource("cells", i) for i in range(3)),
        ChannelSource("dna"),
        ChannelSource("photo"),
        *(ChannelSource("photo", i) for i in range(3)),
    ]
    tall = LayerImage("k4", "z stack", np.zeros((40, 8, 8)))
    assert channel_sources([tall]) == [ChannelSource("z stack")]  # 40 planes are no channels


def test_first_guesses(cells):
    stack = LayerImage("k1", "cells", cells)
    dna = LayerImage("k2", "DNA", cells[0])
    guesses = default_sources({"dna": 0, "cyto": "Alexa 568", "actin": 2}, stack, [stack, dna])
    assert guesses == {
        "dna": ChannelSource("DNA"),  # a layer named like the channel
        "cyto": ChannelSource("cells", 1),  # by its position
        "actin": ChannelSource("cells", 2),  # by its index
    }
    assert default_sources({"dna": 0}, dna, [dna]) == {"dna": ChannelSource("DNA")}
    assert default_sources({"dna": 0}, None, [dna]) == {}


def test_the_session_runs_the_channels_of_a_layer_at_its_scale(session, cells):
    layer = LayerImage("k1", "cells", cells, scale=(1.0, 0.5, 0.25), translate=(0.0, 10.0, 0.0))
    sources = {"dna": ChannelSource("cells", 0), "cyto": ChannelSource("cells", 1)}
    image = tuning_image(layer, sources, [layer])
    assert image.scale == (0.5, 0.25) and image.translate == (10.0, 0.0) and image.shape == (64, 64)
    session.set_images(image)
    outputs = outputs_of(session)
    expected = session.pipeline().run({"dna": cells[0], "cyto": cells[1]}, spacing=(0.5, 0.25))
    np.testing.assert_array_equal(outputs["labels"], expected["labels"])
    pd.testing.assert_frame_equal(outputs["cells"], expected["cells"])
    assert outputs["cells"]["area"].iloc[0] == (expected["labels"] == 1).sum() * 0.125

    rescaled = LayerImage("k1", "cells", cells, scale=(1.0, 1.0, 1.0))
    assert tuning_image(rescaled, sources, [rescaled]).key != image.key  # new scale: not reused


def test_test_mode_takes_the_same_channels_of_the_second_layer(cells):
    first = LayerImage("k1", "a", cells)
    second = LayerImage("k2", "b", cells[::-1])
    extra = LayerImage("k3", "c", cells[0])
    sources = {"dna": ChannelSource("a", 0), "cyto": ChannelSource("c"), "all": ChannelSource("a")}
    assert second_sources(sources, "a", second) == {
        "dna": ChannelSource("b", 0),
        "cyto": ChannelSource("c"),
        "all": ChannelSource("b"),
    }
    image = tuning_image(second, second_sources({"dna": ChannelSource("a", 2)}, "a", second), [first, extra])
    np.testing.assert_array_equal(image.read()["dna"], cells[0])


def test_channels_of_different_shapes_are_refused(cells):
    layer = LayerImage("k1", "cells", cells)
    small = LayerImage("k2", "small", cells[0, :32])
    with pytest.raises(ValueError, match=r"differ in shape: dna .*cyto"):
        tuning_image(
            layer, {"dna": ChannelSource("cells", 0), "cyto": ChannelSource("small")}, [layer, small]
        )
    with pytest.raises(ValueError, match="no image layer named 'gone'"):
        tuning_image(layer, {"dna": ChannelSource("gone")}, [layer])


def test_a_z_stack_runs_in_3d(cells):
    session = TuningSession()
    session.add_stage("gaussian", "blurred", params={"sigma": 1.0})
    session.add_stage("threshold", "mask")
    session.add_stage("label", "labels")
    stack = LayerImage("k1", "stack", cells.astype(np.float32), scale=(2.0, 0.5, 0.5))
    image = tuning_image(stack)
    assert image.scale == (2.0, 0.5, 0.5)
    session.set_images(image)
    outputs = outputs_of(session)
    assert outputs["labels"].shape == cells.shape
    np.testing.assert_array_equal(
        outputs["labels"], session.pipeline().run(cells.astype(np.float32))["labels"]
    )
