"""A sweep on one image: the values, the grid, outputs as by hand, summaries, cancel, the plot."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.run_folder.tables import summarize
from napari_batch_pipeline.core.stages import get_stage
from napari_batch_pipeline.core.synthetic import nuclei_image
from napari_batch_pipeline.core.tuning.sweep import (
    ImageSweep,
    default_range,
    default_values_text,
    is_sweepable,
    output_stage,
    parse_values,
    plot_sweep,
    sweep_one_image,
    sweep_summary,
    sweep_values,
)

SIGMAS = {"blurred.sigma": [1.0, 2.0, 3.0]}
GRID = {"blurred.sigma": [1, 2, 3], "mask.method": ["otsu", "li"]}


@pytest.fixture
def image() -> np.ndarray:
    return nuclei_image(shape=(96, 96), n_nuclei=8, radius=6.0)


@pytest.fixture
def three_stages() -> Pipeline:
    """gaussian -> threshold -> label, no table stage."""
    return Pipeline(
        [
            {"name": "blurred", "function": "gaussian"},
            {"name": "mask", "function": "threshold"},
            {"name": "labels", "function": "label"},
        ]
    )


# -- values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "stop", "step", "expected"),
    [
        (1, 3, 1, [1, 2, 3]),
        (0.1, 0.3, 0.1, [0.1, 0.2, 0.3]),  # stop kept despite 0.1 + 2 * 0.1 > 0.3
        (0.0, 1.0, 0.3, [0.0, 0.3, 0.6, 0.9]),  # stop not on the grid: left out
        (0.5, 2.0, 0.5, [0.5, 1.0, 1.5, 2.0]),
        (3, 1, -1, [3, 2, 1]),
        (2.0, 2.0, 1.0, [2.0]),
    ],
)
def test_sweep_values_include_stop_within_float_tolerance(start, stop, step, expected):
    values = sweep_values(start, stop, step)
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]


@pytest.mark.parametrize(
    ("start", "stop", "step", "message"),
    [
        (1, 3, 0, "non-zero"),
        (1, 3, -1, "leads away"),
        (0, 10**6, 1, "at most"),
        (0, float("nan"), 1, "finite"),
    ],
)
def test_sweep_values_refuse_a_step_that_cannot_work(start, stop, step, message):
    with pytest.raises(PipelineError, match=message):
        sweep_values(start, stop, step)


def test_parse_values_reads_yaml_scalars():
    assert parse_values("1, 2, 3") == [1, 2, 3]
    assert parse_values("otsu, li") == ["otsu", "li"]
    assert parse_values(" 0.5,1e-3 , true, null") == [0.5, 0.001, True, None]
    for bad in ("", " , ", "1,,2"):
        with pytest.raises(PipelineError, match="sweep values"):
            parse_values(bad)


def test_parameters_offered_and_their_default_values():
    gaussian, threshold, measure = (get_stage(name) for name in ("gaussian", "threshold", "measure"))
    assert is_sweepable(gaussian.params["sigma"]) and is_sweepable(threshold.params["method"])
    assert not is_sweepable(measure.params["properties"])  # a list: not swept as single values
    start, stop, step = default_range(gaussian.params["sigma"], 2.0)
    assert 2.0 in sweep_values(start, stop, step) and start > 0
    assert default_range(get_stage("remove_small_objects").params["min_size"], 64) == (32, 128, 32)
    assert default_values_text(threshold.params["method"], "otsu").startswith("otsu, li, yen")


# -- running --------------------------------------------------------------------------


def test_outputs_equal_running_each_parameter_set_by_hand(three_stages, image):
    result = sweep_one_image(three_stages, image, SIGMAS)
    assert result.complete and len(result.points) == 3
    assert result.stage == "labels" and result.kind == "labels"
    for point, sigma in zip(result.points, SIGMAS["blurred.sigma"], strict=True):
        assert point.params == {"blurred.sigma": sigma}
        by_hand = three_stages.with_params(point.params).run(image)
        np.testing.assert_array_equal(point.output, by_hand["labels"])
        # no table stage: the object count of the labels
        assert point.summary["labels.count"] == len(np.unique(by_hand["labels"])) - 1
    stacked = result.stack()
    assert stacked.shape == (3, 96, 96)
    np.testing.assert_array_equal(stacked[1], result.points[1].output)


def test_a_grid_of_two_parameters(three_stages, image):
    result = sweep_one_image(three_stages, image, GRID, stage="blurred")
    assert result.shape == (3, 2) and len(result.points) == 6
    assert result.values == {"blurred.sigma": [1.0, 2.0, 3.0], "mask.method": ["otsu", "li"]}  # normalised
    stacked = result.stack()
    assert stacked.shape == (3, 2, 96, 96) and result.kind == "image"
    point = result.point_at((2, 1))
    assert point.params == {"blurred.sigma": 3.0, "mask.method": "li"}
    np.testing.assert_array_equal(stacked[2, 1], point.output)
    by_hand = three_stages.with_params(point.params).run(image)
    np.testing.assert_array_equal(stacked[2, 1], by_hand["blurred"])
    table = result.table()
    assert list(table.columns[:2]) == list(GRID) and len(table) == 6


def test_table_stages_give_the_summary_of_images_csv(pipeline, image):
    result = sweep_one_image(pipeline, image, {"mask.method": ["otsu", "li"]})
    assert result.stage == "labels"  # the last stage that is not a table
    assert result.measurements[0] == "nuclei.count"
    for point in result.points:
        table = pipeline.with_params(point.params).run(image)["nuclei"]
        assert point.summary == pytest.approx(summarize("nuclei", table), nan_ok=True)


def test_a_mask_is_counted_by_its_connected_components(three_stages, image):
    outputs = three_stages.run(image)
    only_mask = Pipeline([s for s in three_stages.stages if s.name != "labels"])
    summary = sweep_summary(only_mask, outputs)
    assert summary["mask.count"] == outputs["labels"].max()
    assert summary["mask.mean_area"] == pytest.approx(outputs["mask"].sum() / outputs["labels"].max())


def test_upstream_stages_are_computed_once(user_module, image):
    module = user_module(
        "counting_stages",
        """
        import numpy as np
        CALLS = []

        def smooth(image: "napari.types.ImageData", k: float = 1.0) -> "napari.types.ImageData":
            CALLS.append(k)
            return np.asarray(image, dtype=float) * k
        """,
    )
    pipeline = Pipeline(
        [
            {"name": "smooth", "function": f"{module}:smooth"},
            {"name": "mask", "function": "threshold"},
            {"name": "labels", "function": "label"},
        ]
    )
    import counting_stages

    sweep_one_image(pipeline, image, {"mask.method": ["otsu", "li", "yen"]})
    assert counting_stages.CALLS == [1.0]


def test_cancel_stops_before_the_next_stage(three_stages, image):
    seen = []
    result = sweep_one_image(
        three_stages, image, SIGMAS, on_result=seen.append, cancelled=lambda: len(seen) >= 1
    )
    assert seen == result.points and len(result.points) == 1
    assert not result.complete
    with pytest.raises(ValueError, match="incomplete"):
        result.stack()
    nothing = sweep_one_image(three_stages, image, SIGMAS, cancelled=lambda: True)
    assert nothing.points == []


@pytest.mark.parametrize(
    ("sweep", "stage", "message"),
    [
        ({}, None, "1 or 2 parameters"),
        ({"blurred.sigma": [1], "mask.method": ["li"], "labels.connectivity": [1]}, None, "1 or 2"),
        ({"blurred.radius": [1, 2]}, None, "radius"),
        ({"blurred.sigma": ["big"]}, None, "number"),
        ({"blurred.sigma": [1, 2]}, "nuclei", "gives a table"),
    ],
)
def test_an_unusable_sweep_fails_before_anything_runs(pipeline, sweep, stage, message):
    with pytest.raises(PipelineError, match=message):
        ImageSweep(pipeline, sweep, stage)


def test_output_stage_is_the_last_image_or_labels_stage(pipeline, three_stages):
    assert output_stage(pipeline) == "labels"
    assert output_stage(Pipeline(three_stages.stages[:1])) == "blurred"


# -- plot -----------------------------------------------------------------------------


def test_plot_draws_the_measurement_against_the_value(three_stages, image):
    result = sweep_one_image(three_stages, image, SIGMAS)
    axes = Figure().add_subplot()
    plot_sweep(axes, result, "labels.count", selected=(1,))
    lines = {line.get_gid(): line for line in axes.get_lines()}
    np.testing.assert_array_equal(lines["sweep"].get_xdata(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(
        lines["sweep"].get_ydata(), [p.summary["labels.count"] for p in result.points]
    )
    assert list(lines["selected"].get_xdata()) == [2.0]
    assert axes.get_xlabel() == "blurred.sigma" and axes.get_ylabel() == "labels.count"


def test_plot_of_a_grid_has_one_line_per_second_value(three_stages, image):
    result = sweep_one_image(three_stages, image, {"mask.method": ["otsu", "li"], "blurred.sigma": [1, 2]})
    axes = Figure().add_subplot()
    plot_sweep(axes, result, "labels.mean_area")
    gids = [line.get_gid() for line in axes.get_lines()]
    assert gids == ["sweep:1.0", "sweep:2.0"]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["otsu", "li"]  # names, at 0 and 1
    li_sigma_2 = result.point_at((1, 1)).summary["labels.mean_area"]
    assert axes.get_lines()[1].get_ydata()[1] == pytest.approx(li_sigma_2)
