"""The demo: synthetic datasets that need different parameters, the default pipeline and a
parameter table, written to a folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, NamedTuple

from .pipeline.model import Pipeline
from .run_folder.tables import FOLDER
from .synthetic import write_nuclei_folder

__all__ = ["DATASETS", "DEFAULT_PIPELINE", "DemoFiles", "default_pipeline", "prepare_demo"]

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
