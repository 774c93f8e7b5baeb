"""The demo: synthetic sample images and the default pipeline, written to a folder."""

from __future__ import annotations

from pathlib import Path

from .pipeline import Pipeline
from .synthetic import write_nuclei_folder

__all__ = ["DEFAULT_PIPELINE", "default_pipeline", "prepare_demo"]

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


def default_pipeline() -> Pipeline:
    """The demo's pipeline: blur, Voronoi-Otsu labelling, clean-up, measurements."""
    return Pipeline.from_text(DEFAULT_PIPELINE, source="default pipeline")


def prepare_demo(folder: str | Path, count: int = 12) -> tuple[Path, Path]:
    """Write ``count`` sample images and the default pipeline into ``folder``.

    Returns
    -------
    (Path, Path)
        The image folder and the pipeline file.
    """
    folder = Path(folder)
    images = folder / "images"
    write_nuclei_folder(images, count=count, seed=0, shape=(512, 512), n_nuclei=60)
    pipeline_file = folder / "nuclei.yaml"
    pipeline_file.write_text(DEFAULT_PIPELINE, encoding="utf-8")
    return images, pipeline_file
