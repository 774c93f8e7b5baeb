"""The demos: synthetic datasets that need different parameters, the default pipeline and a
parameter table; plates of unevenly lit images with the pipeline that corrects them; a
small synthetic plate for a screen, with its pipeline (quality rules included) and plate
map; nuclei on a background gradient that a threshold cannot cut, with a classifier's
painted training; and a slide larger than one would load whole, written block by block as a tiled
BigTIFF, with its pipeline. Each is written to a folder."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .pipeline.model import Pipeline
from .run_folder.tables import FOLDER
from .synthetic import gradient_nuclei, nuclei_image, painted_strokes, vignetting, write_nuclei_folder

__all__ = [
    "CLASSIFIER_PIPELINE",
    "DATASETS",
    "DEFAULT_PIPELINE",
    "FOCUS_SLOPE_MIN",
    "ILLUMINATION_PIPELINE",
    "LARGE_PIPELINE",
    "PLATES",
    "SCREEN_COLUMNS",
    "SCREEN_PIPELINE",
    "SCREEN_READOUT",
    "ClassifierDemo",
    "DemoFiles",
    "IlluminationDemo",
    "LargeDemo",
    "ScreenFiles",
    "default_pipeline",
    "prepare_classifier_demo",
    "prepare_demo",
    "prepare_illumination_demo",
    "prepare_large_demo",
    "prepare_screen",
    "slide_image",
    "write_slide",
]

DEFAULT_PIPELINE = """\
version: 1
name: nuclei
stages:
  - name: blurred
    function: gaussian
    params: {sigma: 1.0}
  - name: labels
    function: voronoi_otsu_labeling
    params: {spot_sigma: 3, outline_sigma: 1}
  - name: cleaned
    function: remove_small_objects
    params: {min_size: 30}
    save: true
  - name: nuclei
    function: measure
    inputs: {labels: cleaned, intensity: input}
    params: {properties: [area, intensity_mean, eccentricity]}
"""


#: the demo's datasets: folder -> how its nuclei look, and the parameters they need (small,
#: dim nuclei need a finer seed blur and a smaller minimum size than large, bright ones)
DATASETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "small_dim": (
        {"radius": 4.0, "n_nuclei": 150, "brightness": 0.4},
        {"labels.spot_sigma": 1.5, "cleaned.min_size": 8},
    ),
    "medium": (
        {"radius": 9.0, "n_nuclei": 60, "brightness": 0.7},
        {"labels.spot_sigma": 3, "cleaned.min_size": 30},
    ),
    "large_bright": (
        {"radius": 15.0, "n_nuclei": 30, "brightness": 1.0},
        {"labels.spot_sigma": 6, "cleaned.min_size": 200},
    ),
}


#: the illumination demo: learn each plate's illumination function from all its fields,
#: divide it out (the corrected images saved), then segment and measure as usual
ILLUMINATION_PIPELINE = """\
version: 1
name: illumination correction
stages:
  - name: illum
    function: illumination
    group_by: [folder]
    params: {statistic: median, smoothing: 20}
  - name: flat
    function: correct_illumination
    inputs: {image: input, illumination: illum}
    save: true
  - name: labels
    function: voronoi_otsu_labeling
    params: {spot_sigma: 3, outline_sigma: 1}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: flat}
"""

#: the illumination demo's plates: folder -> how strongly its light falls off to the corners
PLATES = {"plate_1": 0.6, "plate_2": 0.75}


class DemoFiles(NamedTuple):
    """What :func:`prepare_demo` writes."""

    images: Path
    pipeline: Path
    params: Path


def default_pipeline() -> Pipeline:
    """The demo's pipeline: blur, Voronoi-Otsu labelling, clean-up, measurements."""
    return Pipeline.from_text(DEFAULT_PIPELINE, source="default pipeline")


def prepare_demo(folder: str | Path, count: int = 4) -> DemoFiles:
    """Write the demo's datasets, the default pipeline and the parameter table into ``folder``.

    Parameters
    ----------
    folder : path
        Where to write: ``images/<dataset>/nuclei_01.tif``..., ``nuclei.yaml``, ``params.csv``.
    count : int
        Images per dataset (512 x 512, 16-bit).

    Returns
    -------
    DemoFiles
        The image folder (one subfolder per dataset), the pipeline file, the parameter table.
    """
    folder = Path(folder)
    images = folder / "images"
    for number, (name, (looks, _)) in enumerate(DATASETS.items()):
        write_nuclei_folder(images / name, count=count, seed=100 * number, shape=(512, 512), **looks)
    pipeline_file = folder / "nuclei.yaml"
    pipeline_file.write_text(DEFAULT_PIPELINE, encoding="utf-8")
    params_file = folder / "params.csv"
    columns = list(next(iter(DATASETS.values()))[1])
    with params_file.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([FOLDER, *columns])
        for name, (_, values) in DATASETS.items():
            writer.writerow([name, *(values[c] for c in columns)])
    return DemoFiles(images, pipeline_file, params_file)


class IlluminationDemo(NamedTuple):
    """What :func:`prepare_illumination_demo` writes."""

    images: Path
    pipeline: Path


def prepare_illumination_demo(folder: str | Path, count: int = 8) -> IlluminationDemo:
    """Write plates of unevenly lit nuclei images and the pipeline that corrects them.

    Parameters
    ----------
    folder : path
        Where to write: ``plates/<plate>/field_01.tif``... and ``illumination.yaml``.
    count : int
        Fields per plate (256 x 256, 16-bit), each darker towards its corners as its
        plate's vignetting (:data:`PLATES`) says.

    Returns
    -------
    IlluminationDemo
        The image folder (one subfolder per plate) and the pipeline file.
    """
    import tifffile

    folder = Path(folder)
    images = folder / "plates"
    shape = (256, 256)
    for number, (plate, strength) in enumerate(PLATES.items()):
        (images / plate).mkdir(parents=True, exist_ok=True)
        light = vignetting(shape, strength)
        for index in range(count):
            clean = nuclei_image(shape, n_nuclei=20, radius=8.0, seed=100 * number + index)
            tifffile.imwrite(
                images / plate / f"field_{index + 1:02d}.tif", (clean * light).astype(clean.dtype)
            )
    pipeline_file = folder / "illumination.yaml"
    pipeline_file.write_text(ILLUMINATION_PIPELINE, encoding="utf-8")
    return IlluminationDemo(images, pipeline_file)


SCREEN_PIPELINE = """\
version: 1
name: screen
stages:
  - name: blurred
    function: gaussian
    inputs: {{image: input}}
    params: {{sigma: 1.0}}
  - name: mask
    function: threshold
  - name: labels
    function: label
  - name: kept
    function: filter_objects
    params: {{keep: {{area: [40, null]}}}}
    save: true
  - name: nuclei
    function: measure
    inputs: {{labels: kept, intensity: input}}
    params: {{properties: [area, intensity_mean]}}
  - name: quality
    function: image_quality
    inputs: {{image: input}}
quality:
  - {{measure: quality.power_log_log_slope, min: {focus_min}}}
  - {{measure: quality.saturated_fraction, max: 0.2}}
screen:
  readout: nuclei.mean_intensity_mean
"""

#: the demo's focus rule: CellProfiler's PowerLogLogSlope, which brightness does not move
#: (a focus_score rule, var / mean, would pass a bright blurred field and may drop a strong
#: hit); the demo's sharp fields lie above -2.0, the same fields blurred with sigma 2 below
#: -2.3
FOCUS_SLOPE_MIN = -2.2

#: the demo plate's wells, by column: what is in them and how bright it leaves the nuclei
#: (column 1: the solvent, the negative controls; column 6: a compound that dims them, the
#: positive controls; between: compounds at rising doses)
SCREEN_COLUMNS: dict[int, tuple[str, str, float]] = {
    1: ("DMSO", "negative", 1.0),
    2: ("cpd-A", "", 0.95),
    3: ("cpd-B", "", 0.8),
    4: ("cpd-C", "", 0.6),
    5: ("cpd-D", "", 0.45),
    6: ("staurosporine", "positive", 0.3),
}
SCREEN_ROWS = "ABCD"
#: what the demo's screen is about: how bright the compounds leave the nuclei (the
#: pipeline's ``screen: readout``: the plate figure shows it, the demo prints its Z')
SCREEN_READOUT = "nuclei.mean_intensity_mean"
#: a field out of focus and one saturated, which the quality rules flag
PLATE_BLURRED, PLATE_SATURATED = "B03", "C04"
#: the metadata pattern of the plate's file names, ``P1_A01.tif``
PLATE_METADATA = r"(?P<plate>P\d+)_(?P<well>[A-H]\d\d)"


class ScreenFiles(NamedTuple):
    """What :func:`prepare_screen` writes, and the metadata pattern to run it with."""

    images: Path
    pipeline: Path
    annotations: Path
    metadata: str


def prepare_screen(folder: str | Path, shape: tuple[int, int] = (128, 128)) -> ScreenFiles:
    """Write a small synthetic plate (``P1``, wells A01 to D06), its pipeline and plate map.

    Parameters
    ----------
    folder : path
        Where to write: ``screen_plate/P1_<well>.tif``, ``screen.yaml``, ``plate_map.csv``.
    shape : (int, int)
        The fields' shape (16-bit).

    Returns
    -------
    ScreenFiles
        The pipeline's focus rule (:data:`FOCUS_SLOPE_MIN` on ``power_log_log_slope``)
        flags the blurred field and none of the sharp ones, however bright.
    """
    import tifffile
    from scipy import ndimage as ndi

    folder = Path(folder)
    images = folder / "screen_plate"
    images.mkdir(parents=True, exist_ok=True)
    lines = ["plate,well,compound,control"]
    for number, (row, column) in enumerate((r, c) for r in SCREEN_ROWS for c in SCREEN_COLUMNS):
        compound, control, brightness = SCREEN_COLUMNS[column]
        well = f"{row}{column:02d}"
        image = nuclei_image(shape, n_nuclei=20, radius=6.0, seed=500 + number, brightness=brightness)
        if well == PLATE_BLURRED:
            image = ndi.gaussian_filter(image.astype("float32"), 8).astype(image.dtype)
        if well == PLATE_SATURATED:
            image = image.clip(0, int(image.max() * 0.2)).astype(image.dtype)
        tifffile.imwrite(images / f"P1_{well}.tif", image)
        lines.append(f"P1,{well},{compound},{control}")
    pipeline = folder / "screen.yaml"
    pipeline.write_text(SCREEN_PIPELINE.format(focus_min=FOCUS_SLOPE_MIN), encoding="utf-8")
    annotations = folder / "plate_map.csv"
    annotations.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ScreenFiles(images, pipeline, annotations, PLATE_METADATA)


# -- a threshold fails, a classifier succeeds ---------------------------------------------

#: Otsu's threshold of the blurred image, and a classifier trained on strokes on another image
CLASSIFIER_PIPELINE = """\
version: 1
name: threshold or classifier
stages:
  - {{name: blurred, function: gaussian, params: {{sigma: 2.0}}}}
  - {{name: otsu, function: threshold, save: true}}
  - {{name: otsu_labels, function: label}}
  - {{name: otsu_kept, function: remove_small_objects, params: {{min_size: 30}}}}
  - {{name: otsu_nuclei, function: measure, inputs: {{labels: otsu_kept, intensity: input}}}}
  - {{name: painted, function: pixel_classifier, inputs: {{image: input}}, save: true,
     params: {{training: "{training}", training_sha256: "{sha}", output: mask, foreground: 2}}}}
  - {{name: painted_labels, function: label}}
  - {{name: painted_kept, function: remove_small_objects, params: {{min_size: 30}}}}
  - {{name: painted_nuclei, function: measure, inputs: {{labels: painted_kept, intensity: input}}}}
"""


class ClassifierDemo(NamedTuple):
    """What :func:`prepare_classifier_demo` writes."""

    images: Path
    truth: Path
    pipeline: Path


def prepare_classifier_demo(folder: str | Path, count: int = 4) -> ClassifierDemo:
    """Write nuclei on a strong background gradient, their true masks, a training file of
    strokes painted on one more such image (:func:`.synthetic.painted_strokes`), and
    ``classifier.yaml`` naming it with its SHA-256: ``gradient/field_01.tif``...,
    ``truth/field_01.tif``..., ``classifier_training.npz``."""
    import tifffile

    from .stages.training import write_training

    images, truth = Path(folder) / "gradient", Path(folder) / "truth"
    for path in (images, truth):
        path.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image, nuclei = gradient_nuclei(seed=index + 1)
        tifffile.imwrite(images / f"field_{index + 1:02d}.tif", image)
        tifffile.imwrite(truth / f"field_{index + 1:02d}.tif", nuclei.astype(np.uint8))
    trained_on, nuclei = gradient_nuclei(seed=0)
    training = Path(folder) / "classifier_training.npz"
    sha = write_training(training, [{"image": trained_on, "labels": painted_strokes(nuclei, seed=0)}])
    pipeline = Path(folder) / "classifier.yaml"
    pipeline.write_text(CLASSIFIER_PIPELINE.format(training=training.name, sha=sha), encoding="utf-8")
    return ClassifierDemo(images, truth, pipeline)


# -- the large-image demo ---------------------------------------------------------------

LARGE_PIPELINE = """\
version: 1
name: slide
stages:
  - name: blurred
    function: gaussian
    params: {sigma: 2}
  - name: mask
    function: threshold
    params: {method: otsu}
  - name: labels
    function: label
    save: true
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: input}
    params: {properties: [area, intensity_mean, centroid, eccentricity]}
"""

_BLOCK = 512
_RADIUS = 9


class LargeDemo(NamedTuple):
    """What :func:`prepare_large_demo` writes."""

    images: Path
    pipeline: Path


def prepare_large_demo(folder: str | Path, side: int = 8192) -> LargeDemo:
    """Write ``slide/slide.tif`` (``side`` x ``side`` uint16, tiled BigTIFF) and ``slide.yaml``."""
    folder = Path(folder)
    images = folder / "slide"
    images.mkdir(parents=True, exist_ok=True)
    write_slide(images / "slide.tif", side)
    pipeline = folder / "slide.yaml"
    pipeline.write_text(LARGE_PIPELINE, encoding="utf-8")
    return LargeDemo(images, pipeline)


def write_slide(path: Path, side: int, seed: int = 0) -> None:
    """A ``side`` x ``side`` slide of round nuclei (one per 40 x 40 pixels on average, some
    touching, many across the blocks it is written in), written block by block."""
    import tifffile

    tifffile.imwrite(
        path,
        _blocks((side, side), seed),
        shape=(side, side),
        dtype=np.uint16,
        tile=(_BLOCK, _BLOCK),
        bigtiff=True,
        compression="zlib",
    )


def slide_image(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """The slide :func:`write_slide` writes, of any ``shape``, as one array."""
    image = np.zeros(shape, dtype=np.uint16)
    positions = [(top, left) for top in range(0, shape[0], _BLOCK) for left in range(0, shape[1], _BLOCK)]
    for (top, left), block in zip(positions, _blocks(shape, seed), strict=True):
        part = image[top : top + _BLOCK, left : left + _BLOCK]
        part[...] = block[: part.shape[0], : part.shape[1]]
    return image


def _blocks(shape: tuple[int, int], seed: int) -> Iterator[np.ndarray]:
    """The slide's blocks in raster order, each drawn from the nuclei that reach into it."""
    rng = np.random.default_rng(seed)
    count = shape[0] * shape[1] // 1600
    centres = rng.uniform((0, 0), shape, size=(count, 2))
    radii = rng.uniform(0.6, 1.3, size=count) * _RADIUS
    brightness = rng.uniform(0.5, 1.0, size=count)
    order = np.argsort(centres[:, 0])
    rows = centres[order, 0]
    for top in range(0, shape[0], _BLOCK):
        near = order[
            np.searchsorted(rows, top - 2 * _RADIUS) : np.searchsorted(rows, top + _BLOCK + 2 * _RADIUS)
        ]
        for left in range(0, shape[1], _BLOCK):
            noise = np.random.default_rng((seed, top, left))
            block = noise.normal(0.08, 0.01, size=(_BLOCK, _BLOCK))
            for i in near[np.abs(centres[near, 1] - (left + _BLOCK / 2)) < _BLOCK / 2 + 2 * _RADIUS]:
                cy, cx = centres[i, 0] - top, centres[i, 1] - left
                r = radii[i]
                y0, y1 = max(int(cy - r - 2), 0), min(int(cy + r + 3), _BLOCK)
                x0, x1 = max(int(cx - r - 2), 0), min(int(cx + r + 3), _BLOCK)
                if y0 >= y1 or x0 >= x1:
                    continue
                yy, xx = np.mgrid[y0:y1, x0:x1]
                distance = np.hypot(yy - cy, xx - cx)
                block[y0:y1, x0:x1] += brightness[i] * np.clip(r + 0.5 - distance, 0, 1)
            yield (np.clip(block, 0, 1) * 40000).astype(np.uint16)
