"""image_quality and filter_objects against numpy and scikit-image done by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage import filters, measure

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages.objects import filter_objects
from napari_batch_pipeline.core.stages.quality import image_quality


def test_image_quality_is_normalised_variance_saturation_and_mean(coins: np.ndarray) -> None:
    table = image_quality(coins)
    values = coins.astype(np.float64)
    assert list(table.columns) == [
        *("focus_score", "saturated_fraction", "intensity_mean"),
        *("power_log_log_slope", "local_focus_score"),  # see test_focus.py
    ]
    assert len(table) == 1
    assert table["focus_score"].iloc[0] == pytest.approx(values.var() / values.mean(), rel=1e-12)
    assert table["saturated_fraction"].iloc[0] == pytest.approx(np.mean(values == values.max()), rel=1e-12)
    assert table["intensity_mean"].iloc[0] == pytest.approx(values.mean(), rel=1e-12)
    assert all(dtype == np.float64 for dtype in table.dtypes)


def test_a_blurred_image_scores_lower_and_a_saturated_one_higher(coins: np.ndarray) -> None:
    sharp = image_quality(coins).iloc[0]
    blurred = image_quality(ndi.gaussian_filter(coins.astype(float), 4)).iloc[0]
    clipped = image_quality(np.minimum(coins, 120)).iloc[0]
    assert blurred["focus_score"] < 0.8 * sharp["focus_score"]
    assert clipped["saturated_fraction"] > 0.3 > sharp["saturated_fraction"]


def test_image_quality_in_3d_and_on_a_black_image() -> None:
    volume = np.arange(60, dtype=np.uint16).reshape(3, 4, 5)
    table = image_quality(volume)
    assert table["focus_score"].iloc[0] == pytest.approx(volume.var() / volume.mean())
    assert table["saturated_fraction"].iloc[0] == pytest.approx(1 / 60)
    assert np.isnan(image_quality(np.zeros((4, 4)))["focus_score"].iloc[0])
    with pytest.raises(ValueError, match="2D"):
        image_quality(np.zeros(5))


def _labels(coins: np.ndarray) -> np.ndarray:
    return measure.label(coins > filters.threshold_otsu(coins))


@pytest.mark.parametrize(
    "keep",
    [
        {"area": [200, None]},
        {"area": [50, 2000], "eccentricity": [None, 0.6]},
        {"intensity_mean": [150, 255]},
    ],
)
def test_filter_objects_keeps_objects_inside_every_range(coins: np.ndarray, keep: dict) -> None:
    labels = _labels(coins)
    table = pd.DataFrame(measure.regionprops_table(labels, coins, properties=["label", *keep]))
    kept = np.ones(len(table), bool)
    for name, (low, high) in keep.items():
        kept &= (table[name] >= (-np.inf if low is None else low)) & (
            table[name] <= (np.inf if high is None else high)
        )
    expected = np.where(np.isin(labels, table["label"][kept]), labels, 0)
    result = filter_objects(labels, coins, keep=keep)
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == labels.dtype
    assert 0 < len(np.unique(result)) - 1 < labels.max()  # some kept, some removed, numbers kept


def test_filter_objects_without_ranges_keeps_everything(coins: np.ndarray) -> None:
    labels = _labels(coins)
    np.testing.assert_array_equal(filter_objects(labels), labels)


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ({"areaa": [1, 2]}, "unknown property 'areaa'"),
        ({"area": [5, 1]}, "minimum 5 is above the maximum 1"),
        ({"area": [1]}, "expected \\[min, max\\]"),
        ({"intensity_mean": [1, 2]}, "needs an intensity image"),
    ],
)
def test_filter_objects_refuses_bad_ranges(coins: np.ndarray, keep: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        filter_objects(_labels(coins), keep=keep)


def test_filter_objects_refuses_a_property_of_several_values(coins: np.ndarray) -> None:
    with pytest.raises(ValueError, match="several values per object"):
        filter_objects(_labels(coins), keep={"centroid": [0, 10]})


def test_a_pipeline_file_refuses_a_bad_keep_before_any_image() -> None:
    stages = [
        {"name": "mask", "function": "threshold"},
        {"name": "labels", "function": "label"},
        {"name": "kept", "function": "filter_objects", "params": {"keep": {"volume": [1, 2]}}},
    ]
    with pytest.raises(PipelineError, match=r"kept.*unknown property 'volume'"):
        Pipeline(stages)
