"""The demos: synthetic datasets that need different parameters, the default pipeline and a
parameter table; and plates of unevenly lit images with the pipeline that corrects them.
Each is written to a folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, NamedTuple

from .pipeline.model import Pipeline
from .run_folder.tables import FOLDER
from .synthetic import nuclei_image, vignetting, write_nuclei_folder

__all__ = [
    "DATASETS",
    "DEFAULT_PIPELINE",
    "ILLUMINATION_PIPELINE",
    "PLATES",
    "DemoFiles",
    "IlluminationDemo",
    "default_pipeline",
    "prepare_demo",
    "prepare_illumination_demo",
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
