"""How well a pixel classifier trained by painting on one image segments the others.

The strokes are painted as a person paints (``painted_strokes``): across objects, up to
their edges on both sides, and in the background near and far, a few hundred pixels on
ONE image, derived from that image's own mask only. The masks of the other images are
compared with their own references: the gaussian-Otsu mask on the real images of
``../shared/data`` (skipped where that folder is absent), the known nuclei on synthetic
images whose background gradient defeats a global threshold.

The painted BBBC007 field is the first by name. Not every field teaches the others this
well: painted on the dense, dim fields or the one with a high background, the worst
other field scores 0.77 to 0.88, because each reference puts its outlines at its own
Otsu level and a forest learns the painted field's (README, "classifiers";
``benchmarks/bench_classifier_accuracy.py`` measures every pair).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage import filters

from napari_batch_pipeline.core.stages import forests
from napari_batch_pipeline.core.stages.classifiers import pixel_classifier
from napari_batch_pipeline.core.stages.training import write_training
from napari_batch_pipeline.core.synthetic import gradient_nuclei, painted_strokes

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
BBBC007 = sorted(SHARED_DATA.glob("bbbc007_batch/*.tif")) if SHARED_DATA.is_dir() else []
CELL_PAINTING = SHARED_DATA / "multichannel" / "IXMtest_A02_s9.tif"


@pytest.fixture(autouse=True)
def _no_forest_kept() -> None:
    forests._TRAINED.clear()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _gaussian_otsu(image: np.ndarray) -> np.ndarray:
    blurred = filters.gaussian(image.astype(np.float32), 2, preserve_range=True)
    return blurred > filters.threshold_otsu(blurred)


def _trained_on(image: np.ndarray, painted: np.ndarray, folder: Path) -> dict:
    """The stage's settings (all defaults but the output) for strokes on ``image``."""
    sha = write_training(folder / "strokes.npz", [{"image": image, "labels": painted}])
    path = str(folder / "strokes.npz")
    return {"training": path, "training_sha256": sha, "output": "mask", "foreground": 2}


def test_painted_strokes_are_a_few_hundred_pixels_in_objects_on_edges_and_in_background() -> None:
    _, truth = gradient_nuclei(seed=0)
    painted = painted_strokes(truth, seed=0)
    assert 200 <= np.count_nonzero(painted) <= 800
    assert np.all(truth[painted == 2]) and not np.any(truth[painted == 1])
    edge_out = truth.astype(np.uint8) - filters.rank.minimum(truth.astype(np.uint8), np.ones((3, 3), bool))
    assert np.count_nonzero(edge_out.astype(bool) & (painted == 2)) >= 20  # up to the edges
    assert np.array_equal(painted, painted_strokes(truth, seed=0))
    assert not np.array_equal(painted, painted_strokes(truth, seed=1))


@pytest.mark.skipif(not BBBC007 or not CELL_PAINTING.is_file(), reason="no ../shared/data beside the project")
def test_strokes_on_one_bbbc007_field_segment_the_others_and_the_cell_painting_nuclei(tmp_path: Path) -> None:
    images = [tifffile.imread(path) for path in BBBC007]
    params = _trained_on(images[0], painted_strokes(_gaussian_otsu(images[0]), seed=0), tmp_path)
    dna = tifffile.imread(CELL_PAINTING)[0]  # channel 0: the DNA stain
    others = [(path.name, image) for path, image in zip(BBBC007, images, strict=True)][1:]
    for name, image in [*others, ("cell painting DNA", dna)]:
        score = _iou(pixel_classifier(image, **params), _gaussian_otsu(image))
        assert score >= 0.9, f"{name}: IoU {score:.3f}"


def test_where_otsu_fails_on_a_background_gradient_strokes_on_one_image_succeed(tmp_path: Path) -> None:
    image, truth = gradient_nuclei(seed=0)
    params = _trained_on(image, painted_strokes(truth, seed=0), tmp_path)
    for seed in (3, 4, 5):
        other, expected = gradient_nuclei(seed=seed)
        assert _iou(other > filters.threshold_otsu(other), expected) < 0.7
        score = _iou(pixel_classifier(other, **params), expected)
        assert score >= 0.9, f"seed {seed}: IoU {score:.3f}"
