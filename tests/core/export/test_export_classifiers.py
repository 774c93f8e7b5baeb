"""The exported script with classifier stages: it trains the same forests from the same
training files (found beside the script, whatever the working folder) and writes the
engine's tables and masks, with this package unimportable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from skimage import filters, measure

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.export.script import export_script, script_text
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages.training import write_training
from napari_batch_pipeline.core.synthetic import nuclei_image

PIPELINE = """\
version: 1
stages:
  - name: nuclei
    function: pixel_classifier
    params: {{training: data/pixels.npz, training_sha256: {pixels}, trees: 12, seed: 4,
              features: {{sigma_min: 1, sigma_max: 8, texture: false}}, output: mask, foreground: 2}}
    save: true
  - name: labels
    function: label
    save: true
  - name: kinds
    function: object_classifier
    inputs: {{labels: labels, intensity: input}}
    params: {{training: data/objects.npz, training_sha256: {objects}, trees: 8,
              properties: [area, eccentricity, intensity_mean]}}
"""


def _project(root: Path) -> tuple[Path, Path]:
    images = root / "images"
    images.mkdir()
    for index in range(3):
        tifffile.imwrite(images / f"f{index}.tif", nuclei_image((96, 96), 7, 6.0, seed=30 + index))
    image = nuclei_image((96, 96), 7, 6.0, seed=0)
    truth = filters.gaussian(image, 2, preserve_range=True) > filters.threshold_otsu(image)
    painted = np.zeros(truth.shape, np.uint8)
    painted[::4, ::3] = np.where(truth[::4, ::3], 2, 1)
    objects = measure.label(truth)
    classes = np.where(np.bincount(objects.ravel()) > 120, 2, 1)
    classes[0] = 0
    project = root / "project"
    pixels = write_training(project / "data" / "pixels.npz", [{"image": image, "labels": painted}])
    chosen = write_training(
        project / "data" / "objects.npz", [{"objects": objects, "classes": classes, "image": image}]
    )
    (project / "cells.yaml").write_text(PIPELINE.format(pixels=pixels, objects=chosen), encoding="utf-8")
    return project / "cells.yaml", images


def test_the_exported_script_trains_the_same_forests_and_writes_the_same_tables(tmp_path: Path) -> None:
    pipeline_file, images = _project(tmp_path)
    pipeline = Pipeline.from_yaml(pipeline_file)
    report = run_batch(pipeline, images, tmp_path / "engine", executor="processes", workers=2)
    assert report.failed == 0, report.images[["image", "error"]]
    script = export_script(pipeline, tmp_path / "scripts" / "cells.py")
    blocker = tmp_path / "blocker" / "napari_batch_pipeline"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('the script must not import me')\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, str(script), str(images), str(tmp_path / "script")],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(blocker.parent)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    engine, exported = tmp_path / "engine", tmp_path / "script"
    pd.testing.assert_frame_equal(
        pd.read_csv(engine / "images.csv").drop(columns="seconds"),
        pd.read_csv(exported / "images.csv").drop(columns="seconds"),
    )
    assert (engine / "kinds.csv").read_text() == (exported / "kinds.csv").read_text()
    assert "kinds.count_2" in pd.read_csv(engine / "images.csv").columns
    for stage in ("nuclei", "labels"):
        for path in sorted((engine / stage).glob("*.tif")):
            np.testing.assert_array_equal(
                tifffile.imread(path), tifffile.imread(exported / stage / path.name)
            )


def test_the_script_names_its_training_files_relative_to_itself(tmp_path: Path) -> None:
    pipeline_file, _ = _project(tmp_path)
    text = script_text(Pipeline.from_yaml(pipeline_file), tmp_path / "scripts")
    assert "Path(__file__).resolve().parent / '../project/data/pixels.npz'" in text
    assert "scikit-learn" in text.split('"""')[1]
    assert "import pickle" not in text and "allow_pickle=True" not in text and "joblib" not in text
