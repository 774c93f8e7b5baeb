"""The tuning session, without Qt: editing the draft, its signals, runs, the cache and sweeps."""

from __future__ import annotations

from unittest.mock import Mock

import numpy as np
import pytest

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image
from napari_batch_pipeline.core.tuning.draft import NONE
from napari_batch_pipeline.core.tuning.session import TuningImage, TuningSession


@pytest.fixture
def image() -> TuningImage:
    """A small synthetic nuclei image, keyed 'nuclei'."""
    return TuningImage("nuclei", nuclei_image(shape=(96, 96)), name="nuclei")


@pytest.fixture
def session() -> TuningSession:
    """blurred (gaussian, sigma 2) -> mask (threshold) -> labels (label); no image yet."""
    session = TuningSession()
    session.add_stage("gaussian", "blurred", params={"sigma": 2.0})
    session.add_stage("threshold", "mask")
    session.add_stage("label", "labels")
    return session


@pytest.fixture
def listener(session: TuningSession) -> Mock:
    """A mock connected to every signal of ``session``, one attribute per signal."""
    mock = Mock()
    for name in ("stages_changed", "stage_changed", "name_changed", "images_changed", "sweep_changed"):
        getattr(session, name).connect(getattr(mock, name))
    return mock


def run_all(session: TuningSession) -> list[tuple[int, str, bool]]:
    """Run the session's chain to the end: (image index, stage, reused) per output."""
    return [(index, name, reused) for index, name, _, reused in session.start_run()]


# -- editing ----------------------------------------------------------------------------


def test_default_names_are_unique():
    session = TuningSession()
    names = [session.add_stage("gaussian").name for _ in range(3)]
    assert names == ["gaussian", "gaussian_2", "gaussian_3"]
    session.remove_stage(1)
    assert session.add_stage("gaussian").name == "gaussian_2"


def test_the_drafts_make_the_pipeline_a_file_would(session, pipeline):
    session.add_stage("measure", "nuclei", params={"properties": ["area", "intensity_mean"]})
    session.set_param(0, "sigma", 2)
    session.set_name("nuclei")
    session.set_save(2, True)
    assert session.pipeline() == pipeline
    assert session.stage_names == ["blurred", "mask", "labels", "nuclei"]


def test_set_pipeline_and_back(session, pipeline, listener):
    session.set_pipeline(pipeline)
    listener.stages_changed.assert_called_once()
    listener.name_changed.assert_called_once_with("nuclei")
    assert session.pipeline() == pipeline
    assert session.stages[3].inputs == {"intensity": "input"}  # the main one is implied


def test_move_rename_remove(session, listener):
    session.move_stage(2, -1)
    assert session.stage_names == ["blurred", "labels", "mask"]
    session.move_stage(0, -1)  # out of bounds: nothing moves
    assert listener.stages_changed.call_count == 1
    session.move_stage(1, 1)
    session.rename_stage(1, " threshold ")
    assert session.stage_names == ["blurred", "threshold", "labels"]
    session.remove_stage(0)
    assert session.stage_names == ["threshold", "labels"]
    assert listener.stages_changed.call_count == 4
    assert session.pipeline()["threshold"].inputs == {"image": "input"}
    session.clear()
    assert session.stages == ()
    with pytest.raises(PipelineError, match="no stage"):
        session.pipeline()


def test_default_wiring_of_extra_data_arguments(session):
    measure = session.add_stage("measure")
    assert measure.inputs == {"intensity": "input"}  # an image: the raw input
    assert session.sources(3, "intensity") == [NONE, "input", "blurred", "mask", "labels"]
    watershed = session.add_stage("watershed")
    # required labels: the latest labels or mask; optional labels: nothing
    assert watershed.inputs == {"markers": "labels"}
    assert NONE not in session.sources(4, "markers") and "measure" not in session.sources(4, "markers")
    session.set_input(4, "mask", "mask")
    assert session.stages[4].inputs["mask"] == "mask"
    session.set_input(4, "mask", NONE)
    assert "mask" not in session.stages[4].inputs


def test_a_renamed_stage_stays_the_source_of_those_it_feeds(session):
    session.add_stage("measure", "nuclei", inputs={"labels": "mask", "intensity": "blurred"})
    for name in ("o", "ob", "objects"):  # typed one key at a time
        session.rename_stage(1, name)
    assert session.stages[3].inputs == {"labels": "objects", "intensity": "blurred"}
    assert session.pipeline()["nuclei"].inputs["labels"] == "objects"


def test_a_removed_or_moved_source_falls_back_to_the_default(session):
    session.add_stage("measure", "nuclei", inputs={"intensity": "blurred"})
    session.remove_stage(0)
    assert session.stages[2].inputs == {"intensity": "input"}
    session.add_stage("watershed", "split", inputs={"markers": "mask"})
    session.move_stage(3, -3)  # above mask: its markers come from the default again
    assert session.stage_names[0] == "split"
    assert session.stages[0].inputs == {"markers": "input"}


def test_signals_of_values(session, listener):
    session.set_param(0, "sigma", 3.0)
    session.set_param(0, "sigma", 3.0)  # unchanged: no signal
    session.set_save(2, True)
    session.set_input(0, "image", "input")  # the default already
    assert [c.args for c in listener.stage_changed.call_args_list] == [(0,), (2,)]
    listener.stages_changed.assert_not_called()


def test_errors_name_what_is_wrong(session):
    with pytest.raises(PipelineError, match=r"stage 'blurred', params.size: unknown parameter"):
        session.set_param(0, "size", 1)
    with pytest.raises(PipelineError, match=r"unknown function 'gausian'.*did you mean 'gaussian'"):
        session.add_stage("gausian")
    session.add_stage("watershed")
    with pytest.raises(PipelineError, match="cannot take 'mask' from 'labels_typo'; expected one of"):
        session.set_input(3, "mask", "labels_typo")
    with pytest.raises(PipelineError, match="no data argument 'markers'"):
        session.add_stage("gaussian", inputs={"markers": "mask"})
    session.rename_stage(1, "input")
    with pytest.raises(PipelineError, match="stage 'input', name"):
        session.pipeline()
    session.set_param(0, "sigma", "wide")  # kept as typed, refused when the pipeline is made
    session.rename_stage(1, "mask")
    with pytest.raises(PipelineError, match=r"params.sigma: expected a number"):
        session.pipeline()


# -- images and runs --------------------------------------------------------------------


def test_a_run_gives_every_output_of_the_pipeline(session, image, listener):
    with pytest.raises(PipelineError, match="no image"):
        session.start_run()
    session.set_images(image)
    listener.images_changed.assert_called_once()
    outputs = {name: output for _, name, output, _ in session.start_run()}
    expected = session.pipeline().run(np.asarray(image.data))
    assert list(outputs) == ["blurred", "mask", "labels"]
    np.testing.assert_array_equal(outputs["labels"], expected["labels"])


def test_a_changed_late_parameter_reuses_the_early_outputs(session, image):
    session.set_images(image)
    assert run_all(session) == [(0, "blurred", False), (0, "mask", False), (0, "labels", False)]
    session.set_param(1, "method", "triangle")
    assert run_all(session) == [(0, "blurred", True), (0, "mask", False), (0, "labels", False)]
    session.set_images(TuningImage("other", nuclei_image(shape=(96, 96), seed=3)))
    assert all(not reused for *_, reused in run_all(session))


def test_test_mode_runs_a_second_image(session, image, listener):
    second = TuningImage("other", nuclei_image(shape=(96, 96), seed=3), name="other")
    session.set_images(image, second)
    session.set_images(image, second)  # same keys: no signal
    assert listener.images_changed.call_count == 1
    assert [index for index, *_ in run_all(session)] == [0, 0, 0, 1, 1, 1]
    session.set_images(image, TuningImage("nuclei", image.data))  # the same image twice
    assert session.second_image is None
    with pytest.raises(ValueError, match="needs a first one"):
        session.set_images(None, second)


def test_a_newer_run_supersedes_the_running_one(session, image):
    session.set_images(image)
    first = session.start_run()
    steps = iter(first)
    assert next(steps)[1] == "blurred"
    second = session.start_run()
    assert first.superseded() and not second.superseded()
    assert list(steps) == []  # stops before its next stage
    assert [name for _, name, *_ in second] == ["blurred", "mask", "labels"]
    session.supersede()
    assert second.superseded()


def test_an_invalid_pipeline_does_not_supersede_a_run(session, image):
    session.set_images(image)
    run = session.start_run()
    session.rename_stage(0, "bad name")
    with pytest.raises(PipelineError):
        session.start_run()
    assert not run.superseded()


# -- sweeps -----------------------------------------------------------------------------


def test_apply_a_sweep_point_edits_the_stages(session, image, listener):
    session.set_images(image)
    sweep = session.new_sweep({"blurred.sigma": [1.0, 2.0], "mask.method": ["li", "otsu"]})
    points = list(sweep.run(np.asarray(image.data)))
    session.set_sweep(sweep, image)
    listener.sweep_changed.assert_called_once_with(sweep)
    assert session.sweep is sweep and session.sweep_image is image

    session.apply(points[0].params)
    assert [c.args for c in listener.stage_changed.call_args_list] == [(0,), (1,)]
    assert session.pipeline()["blurred"].params["sigma"] == 1.0
    assert session.pipeline()["mask"].params["method"] == "li"


def test_apply_refuses_a_parameter_that_is_gone(session):
    session.rename_stage(0, "smooth")
    with pytest.raises(PipelineError, match=r"no parameter blurred.sigma any more"):
        session.apply({"mask.method": "li", "blurred.sigma": 1.0})
    assert session.stages[1].params["method"] == "otsu"  # all or nothing
    with pytest.raises(PipelineError, match=r"no parameter smooth.size"):
        session.apply({"smooth.size": 1.0})


def test_a_sweep_needs_an_image_and_a_valid_pipeline(session, image):
    with pytest.raises(PipelineError, match="no image"):
        session.new_sweep({"blurred.sigma": [1.0]})
    session.set_images(image)
    with pytest.raises(PipelineError, match=r"stage 'blurred', params.size: unknown parameter"):
        session.new_sweep({"blurred.size": [1.0]})


def test_pipeline_round_trip_keeps_an_explicit_main_input():
    pipeline = Pipeline(
        [
            {"name": "blurred", "function": "gaussian"},
            {"name": "mask", "function": "threshold"},
            {"name": "raw_mask", "function": "threshold", "inputs": {"image": "input"}},
        ]
    )
    session = TuningSession()
    session.set_pipeline(pipeline)
    assert session.stages[2].inputs == {"image": "input"}
    assert session.pipeline() == pipeline
