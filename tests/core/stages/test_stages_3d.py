"""Every built-in stage on 2D (Y, X) and 3D (Z, Y, X) arrays, against scikit-image called
directly with the equivalent footprint (a disk in 2D, a ball in 3D) and parameters;
``measure`` in physical units against ``regionprops_table(spacing=...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage import exposure, feature, filters, measure, morphology, segmentation

import cellprofiler_focus as cp
from napari_batch_pipeline.core.stages import STAGES, get_stage

#: the footprint scikit-image users write for a radius, by number of dimensions
FOOTPRINT = {2: morphology.disk, 3: morphology.ball}
#: small shapes, so that each test takes a fraction of a second
SHAPES = {2: (40, 40), 3: (12, 40, 40)}
#: pixel sizes for physical units: anisotropic, as in a real confocal stack
SPACING = {2: (0.5, 0.25), 3: (2.0, 0.5, 0.25)}
BUILTIN = sorted(name for name in STAGES if ":" not in name)


def run_stage(name: str, *data: Any, **params: Any) -> Any:
    """Call a catalogue stage the way the engine does: data arguments, then parameters."""
    spec = get_stage(name)
    return spec.function(**dict(zip(spec.data_args, data, strict=False)), **params)


def blobs(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A float32 image of bright round blobs (spheres in 3D) on a noisy dark background.

    Float, because integer values binned into a 256-bin histogram give it a comb that
    ``threshold_minimum`` needs thousands of smoothing passes to get past.
    """
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    image = np.full(shape, 100.0, dtype=np.float32)
    for _ in range(6):
        centre = [rng.uniform(2, size - 2) for size in shape]
        radius = rng.uniform(3.0, 6.0)
        distance = np.sqrt(sum((axis - c) ** 2 for axis, c in zip(grid, centre, strict=True)))
        image[distance <= radius] = 900.0
    image = ndi.gaussian_filter(image, 1.0) + rng.normal(0, 20, shape)
    return np.clip(image, 0, None).astype(np.float32)


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def image(request: pytest.FixtureRequest) -> np.ndarray:
    """A small 2D or 3D blobs image."""
    return blobs(SHAPES[request.param])


def otsu_mask(image: np.ndarray) -> np.ndarray:
    return image > filters.threshold_otsu(image)


def otsu_labels(image: np.ndarray) -> np.ndarray:
    return measure.label(otsu_mask(image))


def holey_mask(shape: tuple[int, ...]) -> np.ndarray:
    """A box with two enclosed holes (cavities in 3D): one of 1 pixel, one of 8."""
    mask = np.zeros(shape, dtype=bool)
    mask[(slice(1, -1),) * len(shape)] = True
    mask[tuple(size // 2 for size in shape)] = False
    mask[(slice(3, 5),) * 3 if len(shape) == 3 else (slice(3, 5), slice(3, 7))] = False
    return mask


# -- every stage is covered --------------------------------------------------------------

TESTED = {
    "gaussian": "test_gaussian",
    "median": "test_median",
    "white_tophat": "test_white_tophat",
    "rescale_intensity": "test_rescale_intensity",
    "threshold": "test_threshold",
    "remove_small_objects": "test_remove_small_objects",
    "binary_opening": "test_binary_opening",
    "fill_holes": "test_fill_holes",
    "label": "test_label",
    "voronoi_otsu_labeling": "test_voronoi_otsu_labeling",
    "watershed": "test_watershed",
    "expand_labels": "test_expand_labels",
    "measure": "test_measure",
    "illumination": "test_illumination",
    "correct_illumination": "test_correct_illumination",
    "image_quality": "test_image_quality",
    "filter_objects": "test_filter_objects",
    "pixel_classifier": "test_pixel_classifier",
    "object_classifier": "test_object_classifier",
}


def test_every_builtin_stage_has_a_2d_and_3d_test() -> None:
    assert set(TESTED) == set(BUILTIN)
    for test in TESTED.values():
        assert any(name.startswith(test) for name in globals()), test


# -- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_gaussian(image: np.ndarray, sigma: float) -> None:
    result = run_stage("gaussian", image, sigma=sigma)
    expected = filters.gaussian(image, sigma=sigma, preserve_range=True)
    assert result.shape == image.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_median(image: np.ndarray, radius: int) -> None:
    result = run_stage("median", image, radius=radius)
    np.testing.assert_array_equal(result, filters.median(image, FOOTPRINT[image.ndim](radius)))
    assert result.dtype == image.dtype


@pytest.mark.parametrize("radius", [2, 3])
def test_white_tophat(image: np.ndarray, radius: int) -> None:
    result = run_stage("white_tophat", image, radius=radius)
    np.testing.assert_array_equal(result, morphology.white_tophat(image, FOOTPRINT[image.ndim](radius)))
    assert result.shape == image.shape


def test_white_tophat_uses_a_ball_in_3d() -> None:
    """A ball, not a disk applied plane by plane: the two give different backgrounds."""
    volume = blobs(SHAPES[3])
    planar = morphology.white_tophat(volume, morphology.disk(3)[np.newaxis])
    assert not np.array_equal(run_stage("white_tophat", volume, radius=3), planar)


@pytest.mark.parametrize("in_range", [(1.0, 99.8), (0.0, 100.0)])
def test_rescale_intensity(image: np.ndarray, in_range: tuple[float, float]) -> None:
    result = run_stage("rescale_intensity", image, in_range=in_range)
    low, high = np.percentile(image, in_range)
    expected = exposure.rescale_intensity(
        image.astype(np.float64), in_range=(low, high), out_range=(0.0, 1.0)
    )
    assert result.shape == image.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-6)


# -- segmentation --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["otsu", "li", "yen", "triangle", "mean", "isodata", "minimum", "local"])
def test_threshold(image: np.ndarray, method: str) -> None:
    result = run_stage("threshold", image, method=method)
    if method == "local":
        expected = image > filters.threshold_local(image, block_size=35, offset=0.0)
    else:
        expected = image > getattr(filters, f"threshold_{method}")(image)
    assert result.dtype == bool and result.shape == image.shape
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(("block_size", "offset"), [(5, 0.0), (9, -20.0)])
def test_threshold_local_block_size(image: np.ndarray, block_size: int, offset: float) -> None:
    result = run_stage("threshold", image, method="local", block_size=block_size, offset=offset)
    expected = image > filters.threshold_local(image, block_size=block_size, offset=offset)
    np.testing.assert_array_equal(result, expected)
    # a block size along every axis: the same as giving it per axis
    per_axis = image > filters.threshold_local(image, block_size=(block_size,) * image.ndim, offset=offset)
    np.testing.assert_array_equal(result, per_axis)


@pytest.mark.parametrize("min_size", [1, 30, 200])
@pytest.mark.parametrize("kind", ["mask", "labels"])
def test_remove_small_objects(image: np.ndarray, kind: str, min_size: int) -> None:
    objects = otsu_mask(image) if kind == "mask" else otsu_labels(image)
    result = run_stage("remove_small_objects", objects, min_size=min_size)
    expected = objects if min_size == 1 else morphology.remove_small_objects(objects, max_size=min_size - 1)
    assert result.dtype == objects.dtype
    np.testing.assert_array_equal(result, expected)
    sizes = np.bincount(measure.label(result > 0, connectivity=1).ravel())[1:]
    assert (sizes >= min_size).all()


@pytest.mark.parametrize("radius", [1, 2])
def test_binary_opening(image: np.ndarray, radius: int) -> None:
    mask = otsu_mask(image)
    result = run_stage("binary_opening", mask, radius=radius)
    assert result.dtype == bool
    np.testing.assert_array_equal(result, morphology.opening(mask, FOOTPRINT[image.ndim](radius)))
    assert result.sum() < mask.sum()


@pytest.mark.parametrize("max_size", [0, 1, 8])
def test_fill_holes(image: np.ndarray, max_size: int) -> None:
    mask = holey_mask(image.shape)
    result = run_stage("fill_holes", mask, max_size=max_size)
    if max_size == 0:
        expected = ndi.binary_fill_holes(mask)
    else:
        expected = morphology.remove_small_holes(mask, max_size=max_size)
    assert result.dtype == bool
    np.testing.assert_array_equal(result, expected)
    assert result.sum() > mask.sum()  # something was filled
    assert (result >= mask).all()


@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_label(image: np.ndarray, connectivity: int) -> None:
    mask = otsu_mask(image) ^ (np.indices(image.shape).sum(axis=0) % 3 == 0)  # many diagonal contacts
    if connectivity > image.ndim:
        with pytest.raises(
            ValueError, match=f"connectivity must be 1 to {image.ndim} for a {image.ndim}D image"
        ):
            run_stage("label", mask, connectivity=connectivity)
        return
    result = run_stage("label", mask, connectivity=connectivity)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, measure.label(mask, connectivity=connectivity))


def test_label_connectivity_counts_corners_in_3d() -> None:
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[0, 0, 0] = mask[1, 1, 1] = mask[2, 2, 2] = True  # touching by corners only
    assert [run_stage("label", mask, connectivity=c).max() for c in (1, 2, 3)] == [3, 3, 1]


def _voronoi_otsu_by_hand(image: np.ndarray, spot_sigma: float, outline_sigma: float) -> np.ndarray:
    image = image.astype(np.float32)
    spots = filters.gaussian(image, sigma=spot_sigma)
    outline = filters.gaussian(image, sigma=outline_sigma)
    foreground = outline > filters.threshold_otsu(outline)
    peaks = feature.peak_local_max(spots, min_distance=1, labels=foreground.astype(int))
    seeds = np.zeros(image.shape, dtype=np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return segmentation.watershed(-outline, seeds, mask=foreground)


@pytest.mark.parametrize(("spot_sigma", "outline_sigma"), [(2.0, 1.0), (3.0, 2.0)])
def test_voronoi_otsu_labeling(image: np.ndarray, spot_sigma: float, outline_sigma: float) -> None:
    result = run_stage("voronoi_otsu_labeling", image, spot_sigma=spot_sigma, outline_sigma=outline_sigma)
    assert result.dtype == np.int32 and result.shape == image.shape
    np.testing.assert_array_equal(result, _voronoi_otsu_by_hand(image, spot_sigma, outline_sigma))
    assert result.max() >= 2


@pytest.mark.parametrize("compactness", [0.0, 0.01])
@pytest.mark.parametrize("with_mask", [False, True])
def test_watershed(image: np.ndarray, compactness: float, with_mask: bool) -> None:
    markers = measure.label(morphology.erosion(otsu_mask(image), FOOTPRINT[image.ndim](1)))
    mask = otsu_mask(image) if with_mask else None
    result = run_stage("watershed", image, markers, mask, compactness=compactness)
    expected = segmentation.watershed(-image.astype(np.float32), markers, mask=mask, compactness=compactness)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, expected)
    assert set(np.unique(result)) - {0} == set(np.unique(markers)) - {0}


@pytest.mark.parametrize("distance", [1.0, 2.5])
def test_expand_labels(image: np.ndarray, distance: float) -> None:
    labels = otsu_labels(image)
    result = run_stage("expand_labels", labels, distance=distance)
    np.testing.assert_array_equal(result, segmentation.expand_labels(labels, distance=distance))
    assert (result > 0).sum() > (labels > 0).sum()


# -- measure -------------------------------------------------------------------------------

#: properties scikit-image measures in 2D and 3D
PROPERTIES = [
    "area",
    "centroid",
    "bbox",
    "intensity_mean",
    "intensity_max",
    "axis_major_length",
    "equivalent_diameter_area",
    "centroid_weighted",
    "solidity",
]


@pytest.mark.parametrize("units", ["pixels", "physical"])
def test_measure(image: np.ndarray, units: str) -> None:
    labels = otsu_labels(image)
    spacing = SPACING[image.ndim]
    result = run_stage("measure", labels, image, properties=PROPERTIES, units=units, spacing=spacing)
    expected = pd.DataFrame(
        measure.regionprops_table(
            labels,
            intensity_image=image,
            properties=["label", *PROPERTIES],
            spacing=spacing if units == "physical" else None,
        )
    )
    pd.testing.assert_frame_equal(result, expected)
    assert len(result) == labels.max() > 0


def test_measure_physical_sizes_scale_with_the_pixel_size(image: np.ndarray) -> None:
    labels = otsu_labels(image)
    spacing = SPACING[image.ndim]
    pixels = run_stage("measure", labels, properties=["area", "centroid"], spacing=spacing)
    physical = run_stage(
        "measure", labels, properties=["area", "centroid"], units="physical", spacing=spacing
    )
    assert list(physical.columns) == list(pixels.columns)  # same names, other units
    np.testing.assert_array_equal(pixels["area"], np.bincount(labels.ravel())[1:])  # spacing ignored
    np.testing.assert_allclose(physical["area"], pixels["area"] * np.prod(spacing))
    for axis, size in enumerate(spacing):
        np.testing.assert_allclose(physical[f"centroid-{axis}"], pixels[f"centroid-{axis}"] * size)


def test_measure_takes_the_last_axes_of_a_longer_pixel_size() -> None:
    labels = otsu_labels(blobs(SHAPES[2]))
    result = run_stage("measure", labels, properties=["area"], units="physical", spacing=(3.0, 0.5, 0.25))
    expected = measure.regionprops_table(labels, properties=["label", "area"], spacing=(0.5, 0.25))
    np.testing.assert_allclose(result["area"], expected["area"])


def test_measure_physical_without_a_pixel_size_says_so(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="units: physical needs the pixel size, and this image has none"):
        run_stage("measure", otsu_labels(image), units="physical", properties=["area"])


@pytest.mark.parametrize("spacing", [(1.0,), (0.0, 1.0, 1.0), (1.0, float("nan"), 1.0)])
def test_measure_refuses_an_unusable_pixel_size(spacing: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="pixel size"):
        run_stage(
            "measure", otsu_labels(blobs(SHAPES[3])), properties=["area"], units="physical", spacing=spacing
        )


@pytest.mark.parametrize("prop", ["eccentricity", "perimeter", "orientation", "moments_hu", "Eccentricity"])
def test_measure_names_the_2d_only_properties_in_3d(prop: str) -> None:
    labels = otsu_labels(blobs(SHAPES[3]))
    with pytest.raises(ValueError, match=rf"\['{prop}'\] are 2D-only") as error:
        run_stage("measure", labels, properties=["area", prop])
    assert "3D" in str(error.value)
    run_stage("measure", labels[0], properties=["area", prop])  # 2D: fine


def test_measure_perimeter_needs_an_isotropic_pixel_size() -> None:
    labels = otsu_labels(blobs(SHAPES[2]))
    with pytest.raises(ValueError, match=r"perimeter.*isotropic.*units: pixels"):
        run_stage("measure", labels, properties=["perimeter"], units="physical", spacing=(0.5, 0.25))
    result = run_stage("measure", labels, properties=["perimeter"], units="physical", spacing=(0.5, 0.5))
    expected = measure.regionprops_table(labels, properties=["label", "perimeter"], spacing=(0.5, 0.5))
    np.testing.assert_allclose(result["perimeter"], expected["perimeter"])


def test_measure_refuses_unknown_units() -> None:
    with pytest.raises(ValueError, match="units must be one of pixels, physical; got 'microns'"):
        run_stage("measure", otsu_labels(blobs(SHAPES[2])), units="microns")


def test_spacing_is_no_parameter_of_measure() -> None:
    spec = get_stage("measure")
    assert spec.takes_spacing
    assert "spacing" not in spec.params and "spacing" not in spec.data_args
    assert spec.params["units"].default == "pixels"


# -- illumination (group stages: see test_illumination.py for groups) ---------------------


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_illumination(image: np.ndarray, statistic: str) -> None:
    images = [image, image[::-1].copy(), image * 0.5]
    result = run_stage("illumination", iter(images), statistic=statistic, smoothing=2.0)
    stack = np.stack(images).astype(np.float64)
    plain = stack.mean(axis=0) if statistic == "mean" else np.median(stack, axis=0)
    expected = filters.gaussian(plain, 2.0, preserve_range=True)
    assert result.shape == image.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-5)


@pytest.mark.parametrize("method", ["divide", "subtract"])
def test_correct_illumination(image: np.ndarray, method: str) -> None:
    function = filters.gaussian(image, 5.0, preserve_range=True) + 1.0
    result = run_stage("correct_illumination", image, function, method=method)
    pixels = image.astype(np.float64)
    if method == "divide":
        expected = pixels / (function / np.median(function))
    else:
        expected = np.maximum(pixels - function, 0)
    assert result.shape == image.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-5)


# -- shapes the stages refuse --------------------------------------------------------------


@pytest.mark.parametrize("shape", [(40,), (2, 3, 8, 8)], ids=["1d", "4d"])
@pytest.mark.parametrize("name", BUILTIN)
def test_other_dimensions_are_refused_with_their_shape(name: str, shape: tuple[int, ...]) -> None:
    spec = get_stage(name)
    data = np.ones(shape, dtype=np.int32)
    with pytest.raises(ValueError) as error:
        spec.function(**dict.fromkeys(spec.data_args, data))
    assert str(error.value) == f"{name} expects a 2D (Y, X) or 3D (Z, Y, X) image, got shape {shape}"


@pytest.mark.parametrize(
    ("name", "argument"),
    [("watershed", "markers"), ("watershed", "mask"), ("measure", "intensity")],
)
def test_a_second_array_must_have_the_shape_of_the_first(name: str, argument: str) -> None:
    spec = get_stage(name)
    volume = otsu_labels(blobs(SHAPES[3]))
    data = {arg: volume for arg in spec.data_args}
    data[argument] = volume[0]
    with pytest.raises(
        ValueError, match=rf"{name}: .* has shape \(40, 40\), expected the shape of the .*\(12, 40, 40\)"
    ):
        spec.function(**data)


# -- screens ---------------------------------------------------------------------------------


def test_image_quality(image: np.ndarray) -> None:
    table = run_stage("image_quality", image)
    values = image.astype(np.float64)
    expected = [values.var() / values.mean(), np.mean(values == values.max()), values.mean()]
    first = ["focus_score", "saturated_fraction", "intensity_mean"]
    np.testing.assert_allclose(table.iloc[0][first].to_numpy(dtype=float), expected, rtol=1e-12)
    scaled = cp.cellprofiler_scale(image)
    slope = cp.power_log_log_slope(scaled) if image.ndim == 2 else np.nan  # 2D only, as CellProfiler
    np.testing.assert_allclose(table.iloc[0]["power_log_log_slope"], slope, rtol=1e-9)
    np.testing.assert_allclose(table.iloc[0]["local_focus_score"], cp.local_focus_score(scaled), rtol=1e-9)


def test_filter_objects(image: np.ndarray) -> None:
    labels = otsu_labels(image)
    areas = pd.DataFrame(measure.regionprops_table(labels, properties=["label", "area"]))
    cut = float(areas["area"].median())
    expected = np.where(np.isin(labels, areas["label"][areas["area"] >= cut]), labels, 0)
    np.testing.assert_array_equal(run_stage("filter_objects", labels, keep={"area": [cut, None]}), expected)


# -- classifiers ----------------------------------------------------------------------------


def test_pixel_classifier(image: np.ndarray, tmp_path: Path) -> None:
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    from napari_batch_pipeline.core.stages.training import write_training

    painted = np.zeros(image.shape, dtype=np.uint8)
    sparse = (slice(None, None, 2),) * (image.ndim - 1) + (slice(None, None, 3),)
    painted[sparse] = np.where(otsu_mask(image)[sparse], 2, 1)
    sha = write_training(tmp_path / "t.npz", [{"image": image, "labels": painted}])
    low, high = np.percentile(image, (1, 99.8))
    scaled = ((image - np.float32(low)) / np.float32(high - low)).astype(np.float32)
    features = feature.multiscale_basic_features(scaled, sigma_min=1.0, sigma_max=4.0)
    forest = fit_segmenter(
        painted, features, RandomForestClassifier(n_estimators=5, random_state=0, n_jobs=1)
    )
    result = run_stage(
        "pixel_classifier",
        image,
        training=str(tmp_path / "t.npz"),
        training_sha256=sha,
        trees=5,
        features={"sigma_min": 1, "sigma_max": 4},
    )
    assert result.shape == image.shape and result.dtype == np.uint8
    np.testing.assert_array_equal(result, predict_segmenter(features, forest))


def test_object_classifier(image: np.ndarray, tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from napari_batch_pipeline.core.stages.training import write_training

    labels = otsu_labels(image)
    table = measure.regionprops_table(labels, image, properties=["label", "area", "intensity_mean"])
    classes = np.zeros(labels.max() + 1, dtype=np.int64)
    classes[1:] = np.where(table["area"] > np.median(table["area"]), 2, 1)
    sha = write_training(tmp_path / "o.npz", [{"objects": labels, "classes": classes, "image": image}])
    samples = np.column_stack([table["area"], table["intensity_mean"]])
    forest = RandomForestClassifier(n_estimators=5, random_state=0, n_jobs=1).fit(samples, classes[1:])
    result = run_stage(
        "object_classifier",
        labels,
        image,
        training=str(tmp_path / "o.npz"),
        training_sha256=sha,
        properties=["area", "intensity_mean"],
        trees=5,
    )
    np.testing.assert_array_equal(result["label"], table["label"])
    np.testing.assert_array_equal(result["class"], forest.predict(samples))
    if image.ndim == 3:
        with pytest.raises(ValueError, match="2D-only"):
            run_stage(
                "object_classifier",
                labels,
                training="o.npz",
                training_sha256=sha,
                properties=["eccentricity"],
            )
