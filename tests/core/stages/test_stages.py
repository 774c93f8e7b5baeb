"""The built-in stage catalogue against scikit-image and SciPy, and the user-function registry."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, NewType

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage import exposure, feature, filters, measure, morphology, segmentation

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import (
    STAGES,
    StageSpec,
    check_param,
    get_stage,
    register_stage,
)

# name: (data arguments and their kinds, output kind, menu, parameters named by DESIGN)
DESIGN_STAGES: dict[str, tuple[dict[str, str], str, str, set[str]]] = {
    "gaussian": ({"image": "image"}, "image", "filter", {"sigma"}),
    "median": ({"image": "image"}, "image", "filter", {"radius"}),
    "white_tophat": ({"image": "image"}, "image", "filter", {"radius"}),
    "rescale_intensity": ({"image": "image"}, "image", "filter", {"in_range"}),
    "threshold": ({"image": "image"}, "mask", "segment", {"method"}),
    "remove_small_objects": ({"labels": "labels"}, "labels", "segment", {"min_size"}),
    "binary_opening": ({"mask": "labels"}, "mask", "segment", {"radius"}),
    "fill_holes": ({"mask": "labels"}, "mask", "segment", set()),
    "label": ({"mask": "labels"}, "labels", "segment", {"connectivity"}),
    "voronoi_otsu_labeling": (
        {"image": "image"},
        "labels",
        "segment",
        {"spot_sigma", "outline_sigma"},
    ),
    "watershed": (
        {"image": "image", "markers": "labels", "mask": "labels"},
        "labels",
        "segment",
        {"compactness"},
    ),
    "expand_labels": ({"labels": "labels"}, "labels", "segment", {"distance"}),
    "measure": ({"labels": "labels", "intensity": "image"}, "table", "measure", {"properties"}),
    "image_quality": ({"image": "image"}, "table", "measure", set()),
    "filter_objects": ({"labels": "labels", "intensity": "image"}, "labels", "segment", {"keep"}),
}
THRESHOLD_METHODS = ["otsu", "li", "yen", "triangle", "mean", "isodata", "minimum", "local"]


def run_stage(name: str, *data: Any, **params: Any) -> Any:
    """Call a catalogue stage the way the engine does: data arguments, then parameters."""
    spec = get_stage(name)
    kwargs = dict(zip(spec.data_args, data, strict=False))
    return spec.function(**kwargs, **params)


def otsu_mask(image: np.ndarray) -> np.ndarray:
    return image > filters.threshold_otsu(image)


def otsu_labels(image: np.ndarray) -> np.ndarray:
    return measure.label(otsu_mask(image))


def seed_labels(image: np.ndarray) -> np.ndarray:
    """Markers for the seeded watershed: the Otsu mask eroded well inside the objects."""
    return measure.label(morphology.erosion(otsu_mask(image), morphology.disk(4)))


# -- the catalogue ---------------------------------------------------------------------------


def test_catalogue_holds_every_design_stage() -> None:
    assert set(DESIGN_STAGES) <= set(STAGES)


@pytest.mark.parametrize("name", sorted(DESIGN_STAGES))
def test_stage_spec_matches_design_table(name: str) -> None:
    data_args, returns, menu, params = DESIGN_STAGES[name]
    spec = get_stage(name)
    assert isinstance(spec, StageSpec)
    assert spec.name == name
    assert spec.data_args == data_args
    assert spec.main_arg == next(iter(data_args))
    assert spec.returns == returns
    assert spec.menu == menu
    assert params <= set(spec.params)
    assert not set(spec.params) & set(spec.data_args)


def test_threshold_offers_every_design_method() -> None:
    annotation = get_stage("threshold").params["method"].annotation
    assert typing.get_origin(annotation) is typing.Literal
    assert set(typing.get_args(annotation)) == set(THRESHOLD_METHODS)


def test_only_optional_data_arguments_may_stay_unconnected() -> None:
    assert get_stage("measure").optional_data == frozenset({"intensity"})
    assert get_stage("watershed").optional_data == frozenset({"mask"})
    assert get_stage("gaussian").optional_data == frozenset()


@pytest.mark.parametrize("name", sorted(DESIGN_STAGES))
def test_stage_has_numpydoc_docstring(name: str) -> None:
    function = get_stage(name).function
    doc = inspect.getdoc(function)
    assert doc, f"{name} has no docstring"
    summary = doc.partition("\n")[0]
    assert summary.strip().endswith("."), f"{name}: summary line {summary!r}"
    assert "\nParameters\n----------\n" in doc
    assert "\nReturns\n-------\n" in doc
    parameters = doc.split("Parameters\n----------\n", 1)[1].split("\nReturns\n", 1)[0]
    for argument in inspect.signature(function).parameters:
        assert re.search(rf"^{argument} : \S", parameters, re.MULTILINE), (
            f"{name}: parameter {argument!r} is not documented as '{argument} : type'"
        )
    assert get_stage(name).summary == summary


@pytest.mark.parametrize("name", sorted(DESIGN_STAGES))
def test_stage_parameters_have_valid_defaults(name: str) -> None:
    spec = get_stage(name)
    signature = inspect.signature(spec.function)
    for param in spec.params.values():
        assert signature.parameters[param.name].default is not inspect.Parameter.empty
        # the default is a value the pipeline validation itself accepts
        check_param(param, param.default)
        assert param.expected != "a value", f"{name}.{param.name}: annotation not checkable"


@pytest.mark.parametrize("name", sorted(DESIGN_STAGES))
def test_stage_annotations_are_napari_type_strings(name: str) -> None:
    spec = get_stage(name)
    signature = inspect.signature(spec.function)
    for argument in spec.data_args:
        annotation = signature.parameters[argument].annotation
        assert isinstance(annotation, str)
        assert annotation.startswith(("napari.types.ImageData", "napari.types.LabelsData"))
    returned = signature.return_annotation
    assert isinstance(returned, str)
    assert returned in {"napari.types.ImageData", "napari.types.LabelsData", "pandas.DataFrame"}


@pytest.mark.parametrize("name", sorted(DESIGN_STAGES))
def test_stage_annotations_resolve_at_runtime(name: str) -> None:
    """magicgui evaluates the string annotations once napari is importable."""
    fake_napari = SimpleNamespace(
        types=SimpleNamespace(
            ImageData=NewType("ImageData", np.ndarray),
            LabelsData=NewType("LabelsData", np.ndarray),
        )
    )
    function = get_stage(name).function
    namespace = {**function.__globals__, "napari": fake_napari, "pandas": pd}
    hints = typing.get_type_hints(function, globalns=namespace)
    assert set(inspect.signature(function).parameters) | {"return"} == set(hints)


# -- filters against scikit-image ------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.5, 2.0, 4.0])
def test_gaussian_matches_skimage(coins: np.ndarray, sigma: float) -> None:
    result = run_stage("gaussian", coins, sigma=sigma)
    expected = filters.gaussian(coins, sigma=sigma, preserve_range=True)
    assert result.dtype == np.float32
    assert result.shape == coins.shape
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("radius", [1, 3])
def test_median_matches_skimage(coins: np.ndarray, radius: int) -> None:
    result = run_stage("median", coins, radius=radius)
    np.testing.assert_array_equal(result, filters.median(coins, morphology.disk(radius)))
    assert result.dtype == coins.dtype


@pytest.mark.parametrize("radius", [5, 15])
def test_white_tophat_matches_skimage(coins: np.ndarray, radius: int) -> None:
    result = run_stage("white_tophat", coins, radius=radius)
    expected = morphology.white_tophat(coins, morphology.disk(radius))
    np.testing.assert_array_equal(result, expected)


def test_white_tophat_removes_flat_background(nuclei_image: np.ndarray) -> None:
    flat = np.full_like(nuclei_image, 500)
    assert not run_stage("white_tophat", flat).any()


@pytest.mark.parametrize("in_range", [(1.0, 99.8), (0.0, 100.0), (5.0, 95.0)])
def test_rescale_intensity_matches_skimage(nuclei_image: np.ndarray, in_range: tuple[float, float]) -> None:
    result = run_stage("rescale_intensity", nuclei_image, in_range=in_range)
    low, high = np.percentile(nuclei_image, in_range)
    expected = exposure.rescale_intensity(
        nuclei_image.astype(np.float64), in_range=(low, high), out_range=(0.0, 1.0)
    )
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-6)
    assert result.min() == 0.0
    assert result.max() == 1.0


def test_rescale_intensity_refuses_reversed_percentiles(coins: np.ndarray) -> None:
    with pytest.raises(ValueError, match="in_range"):
        run_stage("rescale_intensity", coins, in_range=(99.0, 1.0))


# -- segmentation against scikit-image -------------------------------------------------------


@pytest.mark.parametrize("method", THRESHOLD_METHODS)
def test_threshold_matches_skimage(coins: np.ndarray, method: str) -> None:
    result = run_stage("threshold", coins, method=method)
    if method == "local":
        expected = coins > filters.threshold_local(coins, block_size=35, offset=0.0)
    else:
        expected = coins > getattr(filters, f"threshold_{method}")(coins)
    assert result.dtype == bool
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(("block_size", "offset"), [(15, 0.0), (51, -5.0), (101, 3.0)])
def test_local_threshold_passes_block_size_and_offset(
    coins: np.ndarray, block_size: int, offset: float
) -> None:
    result = run_stage("threshold", coins, method="local", block_size=block_size, offset=offset)
    expected = coins > filters.threshold_local(coins, block_size=block_size, offset=offset)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(("method", "block_size"), [("local", 34), ("bogus", 35)])
def test_threshold_refuses_bad_arguments(coins: np.ndarray, method: str, block_size: int) -> None:
    with pytest.raises(ValueError, match=r"block_size must be odd|method must be one of"):
        run_stage("threshold", coins, method=method, block_size=block_size)


def _without_small(objects: np.ndarray, min_size: int) -> np.ndarray:
    """Objects with fewer than ``min_size`` pixels set to 0, computed with SciPy alone."""
    labels = ndi.label(objects)[0] if objects.dtype == bool else objects
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    result = objects.copy()
    result[small[labels]] = 0
    return result


@pytest.mark.parametrize("min_size", [1, 20, 64, 400])
@pytest.mark.parametrize("kind", ["mask", "labels"])
def test_remove_small_objects_matches_reference(coins: np.ndarray, kind: str, min_size: int) -> None:
    objects = otsu_mask(coins) if kind == "mask" else otsu_labels(coins)
    result = run_stage("remove_small_objects", objects, min_size=min_size)
    assert result.dtype == objects.dtype
    np.testing.assert_array_equal(result, _without_small(objects, min_size))
    if min_size > 1:
        assert result.sum() < objects.sum()


def test_remove_small_objects_keeps_objects_of_exactly_min_size() -> None:
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[0, :5] = 1  # 5 pixels
    labels[5, :4] = 2  # 4 pixels
    result = run_stage("remove_small_objects", labels, min_size=5)
    assert set(np.unique(result)) == {0, 1}


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_binary_opening_matches_skimage(coins: np.ndarray, radius: int) -> None:
    mask = otsu_mask(coins)
    result = run_stage("binary_opening", mask, radius=radius)
    assert result.dtype == bool
    np.testing.assert_array_equal(result, morphology.opening(mask, morphology.disk(radius)))


def test_binary_opening_keeps_objects_cut_by_the_border() -> None:
    """Opening removes what is thinner than the disk, not what merely touches the edge."""
    mask = np.zeros((20, 20), dtype=bool)
    mask[:6] = True  # a band thicker than disk(2), cut by the top, left and right edges
    mask[12, 2:18] = True  # a thin line
    result = run_stage("binary_opening", mask, radius=2)
    assert result[:6].all()
    assert not result[7:].any()


@pytest.mark.parametrize("max_size", [0, 3, 30])
def test_fill_holes_matches_scipy_and_skimage(coins: np.ndarray, max_size: int) -> None:
    mask = otsu_mask(coins)
    result = run_stage("fill_holes", mask, max_size=max_size)
    if max_size == 0:
        expected = ndi.binary_fill_holes(mask)
    else:
        expected = morphology.remove_small_holes(mask, max_size=max_size)
    assert result.dtype == bool
    np.testing.assert_array_equal(result, expected)
    assert (result >= mask).all()


def test_fill_holes_fills_holes_of_at_most_max_size() -> None:
    mask = np.ones((12, 12), dtype=bool)
    mask[2, 2:6] = False  # a hole of 4 pixels
    mask[8, 2:7] = False  # a hole of 5 pixels
    result = run_stage("fill_holes", mask, max_size=4)
    assert result[2].all()
    assert not result[8, 2:7].any()
    assert run_stage("fill_holes", mask).all()


@pytest.mark.parametrize("connectivity", [1, 2])
def test_label_matches_skimage(coins: np.ndarray, connectivity: int) -> None:
    mask = otsu_mask(coins)
    result = run_stage("label", mask, connectivity=connectivity)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, measure.label(mask, connectivity=connectivity))


def test_label_connectivity_decides_diagonal_neighbours() -> None:
    mask = np.eye(4, dtype=bool)
    assert run_stage("label", mask, connectivity=1).max() == 4
    assert run_stage("label", mask, connectivity=2).max() == 1


def _voronoi_otsu_by_hand(image: np.ndarray, spot_sigma: float, outline_sigma: float):
    image = image.astype(np.float32)
    spots = filters.gaussian(image, sigma=spot_sigma)
    outline = filters.gaussian(image, sigma=outline_sigma)
    foreground = outline > filters.threshold_otsu(outline)
    peaks = feature.peak_local_max(spots, min_distance=1, labels=foreground.astype(int))
    seeds = np.zeros(image.shape, dtype=np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return segmentation.watershed(-outline, seeds, mask=foreground), foreground, seeds


@pytest.mark.parametrize(("spot_sigma", "outline_sigma"), [(2.0, 2.0), (4.0, 1.0)])
def test_voronoi_otsu_labeling_matches_skimage(
    nuclei_image: np.ndarray, spot_sigma: float, outline_sigma: float
) -> None:
    result = run_stage(
        "voronoi_otsu_labeling", nuclei_image, spot_sigma=spot_sigma, outline_sigma=outline_sigma
    )
    expected, foreground, seeds = _voronoi_otsu_by_hand(nuclei_image, spot_sigma, outline_sigma)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, expected)
    # what the algorithm promises: labels cover exactly the Otsu foreground, one per seed
    np.testing.assert_array_equal(result > 0, foreground)
    assert result.max() == seeds.max() > 10
    np.testing.assert_array_equal(result[seeds > 0], seeds[seeds > 0])


def test_voronoi_otsu_labeling_merges_seeds_with_larger_spot_sigma(
    nuclei_image: np.ndarray,
) -> None:
    fine = run_stage("voronoi_otsu_labeling", nuclei_image, spot_sigma=1.0)
    coarse = run_stage("voronoi_otsu_labeling", nuclei_image, spot_sigma=6.0)
    assert coarse.max() < fine.max()


@pytest.mark.parametrize("compactness", [0.0, 0.01])
@pytest.mark.parametrize("with_mask", [False, True])
def test_watershed_matches_skimage(coins: np.ndarray, compactness: float, with_mask: bool) -> None:
    markers = seed_labels(coins)
    mask = otsu_mask(coins) if with_mask else None
    spec = get_stage("watershed")
    result = spec.function(coins, markers, mask=mask, compactness=compactness)
    expected = segmentation.watershed(-coins.astype(np.float32), markers, mask=mask, compactness=compactness)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, expected)
    assert set(np.unique(result)) - {0} == set(np.unique(markers)) - {0}
    if with_mask:
        assert not result[~mask].any()


def test_watershed_without_invert_floods_the_image_itself(coins: np.ndarray) -> None:
    markers = seed_labels(coins)
    result = get_stage("watershed").function(coins, markers, invert=False)
    np.testing.assert_array_equal(result, segmentation.watershed(coins, markers))


@pytest.mark.parametrize("distance", [1.0, 2.5, 10.0])
def test_expand_labels_matches_skimage(coins: np.ndarray, distance: float) -> None:
    labels = otsu_labels(coins)
    result = run_stage("expand_labels", labels, distance=distance)
    np.testing.assert_array_equal(result, segmentation.expand_labels(labels, distance=distance))
    assert (result[labels > 0] == labels[labels > 0]).all()
    assert (result > 0).sum() > (labels > 0).sum()


# -- measure against regionprops_table -------------------------------------------------------


@pytest.mark.parametrize(
    "properties",
    [
        ["area", "intensity_mean"],
        ["area", "centroid", "eccentricity", "intensity_max"],
        ["label", "perimeter", "bbox"],
    ],
)
def test_measure_matches_regionprops_table(coins: np.ndarray, properties: list[str]) -> None:
    labels = otsu_labels(coins)
    result = run_stage("measure", labels, coins, properties=properties)
    wanted = [p for p in properties if p != "label"]
    expected = pd.DataFrame(
        measure.regionprops_table(labels, intensity_image=coins, properties=["label", *wanted])
    )
    pd.testing.assert_frame_equal(result, expected)
    assert result.columns[0] == "label"
    assert len(result) == labels.max()


def test_measure_defaults_to_area_and_mean_intensity(coins: np.ndarray) -> None:
    labels = otsu_labels(coins)
    result = run_stage("measure", labels, coins)
    assert list(result.columns) == ["label", "area", "intensity_mean"]


def test_measure_without_intensity(coins: np.ndarray) -> None:
    labels = otsu_labels(coins)
    result = run_stage("measure", labels, properties=["area"])
    np.testing.assert_array_equal(result["area"], np.bincount(labels.ravel())[1:])


@pytest.mark.parametrize(
    ("intensity", "message"),
    [(None, "need an intensity image"), (np.zeros((3, 3)), "shape")],
)
def test_measure_refuses_missing_or_mismatched_intensity(
    coins: np.ndarray, intensity: np.ndarray | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run_stage("measure", otsu_labels(coins), intensity, properties=["intensity_mean"])


# -- parameter checks: written once, run at load and on a direct call -----------------------

#: stage, its data arguments (None: left unconnected), parameters that cannot work
BAD_VALUES: list[tuple[str, dict[str, str | None], dict[str, Any]]] = [
    ("gaussian", {"image": "input"}, {"sigma": -1.0}),
    ("median", {"image": "input"}, {"radius": -2}),
    ("white_tophat", {"image": "input"}, {"radius": -1}),
    ("rescale_intensity", {"image": "input"}, {"in_range": [99.0, 1.0]}),
    ("threshold", {"image": "input"}, {"method": "local", "block_size": 4}),
    ("measure", {"labels": "input", "intensity": None}, {"properties": ["area", "intensity_mean"]}),
    ("measure", {"labels": "input", "intensity": "input"}, {"properties": ["area", "aera"]}),
    ("measure", {"labels": "input", "intensity": "input"}, {"properties": []}),
]
CHECKED_STAGES = sorted({name for name, _, _ in BAD_VALUES})


@pytest.mark.parametrize(("name", "inputs", "params"), BAD_VALUES)
def test_a_direct_call_refuses_what_loading_refuses(
    coins: np.ndarray, name: str, inputs: dict[str, str | None], params: dict[str, Any]
) -> None:
    connected = {arg: source for arg, source in inputs.items() if source is not None}
    with pytest.raises(PipelineError) as loading:
        Pipeline([{"name": "s", "function": name, "inputs": connected, "params": params}])
    assert loading.value.key == "params"
    message = str(loading.value).removeprefix("stage 's', params: ")
    assert message != str(loading.value)
    data = {arg: (coins if source else None) for arg, source in inputs.items()}
    with pytest.raises(ValueError) as calling:
        get_stage(name).function(**data, **params)
    assert str(calling.value) == message


def test_the_check_runs_before_computing() -> None:
    """Checked first: no image is needed to learn that the values cannot work."""
    with pytest.raises(ValueError, match="block_size must be odd for the local method, got 4"):
        get_stage("threshold").function(None, method="local", block_size=4)
    with pytest.raises(ValueError, match=r"method must be one of otsu, li.*; got 'bogus'"):
        get_stage("threshold").function(None, method="bogus")


@pytest.mark.parametrize("name", CHECKED_STAGES)
def test_checked_stage_keeps_its_signature_and_catalogue_entry(name: str) -> None:
    from magicgui.signature import magic_signature

    spec = get_stage(name)
    function = spec.function
    original = inspect.unwrap(function)
    assert original is not function  # the checking wrapper
    assert function.__name__ == original.__name__ == name
    assert inspect.signature(function) == inspect.signature(original)
    assert list(magic_signature(function).parameters) == list(inspect.signature(original).parameters)
    assert function.__stage_info__["check"] is spec.check is not None
    assert inspect.getsource(function) == inspect.getsource(original)


def test_threshold_parameters_are_what_magicgui_shows() -> None:
    assert list(inspect.signature(get_stage("threshold").function).parameters) == [
        "image",
        "method",
        "block_size",
        "offset",
    ]


def test_stages_without_checks_are_not_wrapped() -> None:
    function = get_stage("label").function
    assert inspect.unwrap(function) is function
    assert get_stage("label").check is None


# -- the registry: user functions ------------------------------------------------------------

USER_STAGES = '''
import numpy as np
import pandas as pd


def brighten(image: "napari.types.ImageData", factor: float = 2.0) -> "napari.types.ImageData":
    """Multiply the image by ``factor``."""
    return image * factor


def grow(
    labels: "napari.types.LabelsData",
    image: "napari.types.ImageData | None" = None,
    steps: int = 1,
) -> "napari.types.LabelsData":
    """Grow labels."""
    return labels


def count(labels: "napari.types.LabelsData", minimum: int = 0) -> "pandas.DataFrame":
    """Count objects."""
    return pd.DataFrame({"label": np.unique(labels[labels > minimum])})
'''

FUTURE_ANNOTATIONS = '''
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from napari.types import ImageData, LabelsData


def invert(image: ImageData, scale: float = 1.0) -> ImageData:
    """Invert an image."""
    return image.max() - image * scale


def split(image: ImageData) -> LabelsData:
    """One label everywhere."""
    return (image * 0 + 1).astype("int32")
'''


def test_user_function_with_napari_annotations_registers(user_module, coins) -> None:
    module = user_module("my_user_stages", USER_STAGES)
    spec = get_stage(f"{module}:brighten")
    assert spec.name == f"{module}:brighten"
    assert spec.data_args == {"image": "image"}
    assert list(spec.params) == ["factor"]
    assert spec.defaults() == {"factor": 2.0}
    assert spec.params["factor"].annotation is float
    assert spec.returns == "image"
    assert spec.menu == "filter"
    assert STAGES[f"{module}:brighten"] is spec
    assert get_stage(f"{module}:brighten") is spec
    np.testing.assert_array_equal(spec.function(coins, factor=3.0), coins * 3.0)


def test_user_function_kinds_are_read_from_annotations(user_module) -> None:
    module = user_module("my_pkg.stages", USER_STAGES)
    grow = get_stage(f"{module}:grow")
    assert grow.data_args == {"labels": "labels", "image": "image"}
    assert grow.optional_data == frozenset({"image"})
    assert grow.returns == "labels"
    assert grow.menu == "segment"
    count = get_stage(f"{module}:count")
    assert count.returns == "table"
    assert count.menu == "measure"


def test_user_function_with_postponed_annotations_registers(user_module) -> None:
    module = user_module("future_stages", FUTURE_ANNOTATIONS)
    assert get_stage(f"{module}:invert").returns == "image"
    split = get_stage(f"{module}:split")
    assert split.data_args == {"image": "image"}
    assert split.returns == "labels"


def test_user_function_runs_in_a_pipeline(user_module, coins) -> None:
    module = user_module("pipeline_user_stages", USER_STAGES)
    pipeline = Pipeline(
        [
            {"name": "bright", "function": f"{module}:brighten", "params": {"factor": 0.5}},
            {"name": "objects", "function": "threshold"},
            {"name": "labels", "function": "label"},
            {"name": "table", "function": f"{module}:count"},
        ]
    )
    outputs = pipeline.run(coins)
    np.testing.assert_array_equal(outputs["bright"], coins * 0.5)
    np.testing.assert_array_equal(outputs["objects"], otsu_mask(coins * 0.5))
    assert outputs["table"]["label"].tolist() == list(range(1, outputs["labels"].max() + 1))


@pytest.fixture
def catalogue() -> Iterator[dict[str, StageSpec]]:
    """The stage catalogue, restored after the test."""
    saved = dict(STAGES)
    yield STAGES
    STAGES.clear()
    STAGES.update(saved)


def test_register_stage_names_a_function_by_reference(catalogue) -> None:
    def local_stage(image: "napari.types.ImageData", size: int = 3) -> "napari.types.ImageData":
        """Do nothing."""
        return image

    spec = register_stage(local_stage)
    assert spec.name == f"{__name__}:{local_stage.__qualname__}"
    assert STAGES[spec.name] is spec
    assert register_stage(local_stage, "tidy").name == "tidy"
    assert get_stage("tidy").function is local_stage


REFUSED_SOURCES = {
    "plain_annotations": (
        "import numpy as np\ndef f(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:\n    return image\n",
        "no argument is annotated with a napari type",
    ),
    "no_annotations": ("def f(image, sigma=1.0):\n    return image\n", "napari type"),
    "missing_default": (
        'def f(image: "napari.types.ImageData", sigma: float) -> "napari.types.ImageData":\n'
        "    return image\n",
        "parameter 'sigma' needs a default",
    ),
    "unannotated_return": (
        'def f(image: "napari.types.ImageData"):\n    return image\n',
        "its return must be annotated",
    ),
    "list_return": (
        'def f(image: "napari.types.ImageData") -> list:\n    return [image]\n',
        "its return must be annotated",
    ),
    "not_callable": ("f = 3\n", "is not a function"),
    "missing_function": ("g = 3\n", "has no function 'f'"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_SOURCES))
def test_user_function_without_napari_annotations_is_refused(user_module, case: str) -> None:
    source, message = REFUSED_SOURCES[case]
    module = user_module(f"refused_{case}", source)
    with pytest.raises(PipelineError, match=re.escape(message)):
        get_stage(f"{module}:f")
    assert f"{module}:f" not in STAGES


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("os:system", "os:system is not a stage: no argument is annotated with a napari type"),
        ("builtins:eval", "builtins:eval is not a stage"),
        ("builtins:exec", "builtins:exec is not a stage"),
        ("subprocess:call", "subprocess:call is not a stage"),
        ("os:sep", "'os:sep' is not a function"),
        ("no_such_module_here:f", "cannot import module 'no_such_module_here'"),
        ("os:no_such_function", "module 'os' has no function 'no_such_function'"),
        ("../evil:f", "neither a built-in stage nor of the form 'package.module:function'"),
        (":f", "neither a built-in stage nor of the form"),
        ("os:", "neither a built-in stage nor of the form"),
        # a relative module name gave importlib's TypeError traceback and exit status 1
        ("..foo:bar", "neither a built-in stage nor of the form"),
        (".os:system", "neither a built-in stage nor of the form"),
        ("os..path:join", "neither a built-in stage nor of the form"),
        ("os:path..join", "neither a built-in stage nor of the form"),
    ],
)
def test_dangerous_or_broken_references_are_refused(reference: str, message: str) -> None:
    before = dict(STAGES)
    with pytest.raises(PipelineError, match=re.escape(message)):
        get_stage(reference)
    assert before == STAGES


def test_registering_a_plain_function_is_refused(catalogue) -> None:
    def plain(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
        return image

    with pytest.raises(PipelineError, match="napari type"):
        register_stage(plain)
    assert not any(spec.function is plain for spec in STAGES.values())


@pytest.mark.parametrize(("typo", "suggestion"), [("gausian", "gaussian"), ("lable", "label")])
def test_unknown_builtin_suggests_the_closest(typo: str, suggestion: str) -> None:
    with pytest.raises(PipelineError, match=f"did you mean '{suggestion}'"):
        get_stage(typo)


def test_unknown_builtin_far_from_any_has_no_suggestion() -> None:
    with pytest.raises(PipelineError) as excinfo:
        get_stage("segment_everything_please")
    assert "did you mean" not in str(excinfo.value)
    assert "package.module:function" in str(excinfo.value)
