"""The illumination demo and its plot: intensity against distance from the centre."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.demo import PLATES, prepare_illumination_demo
from napari_batch_pipeline.core.results.illumination_plot import (
    illumination_figure,
    radial_profile,
    save_illumination_plot,
)
from napari_batch_pipeline.core.synthetic import vignetting


def test_the_radial_profile_of_a_vignetting_is_its_fall_off():
    light = vignetting((60, 80), strength=0.5)
    distance, intensity = radial_profile([light * 100, light * 300], bins=5)
    np.testing.assert_allclose(distance, [0.1, 0.3, 0.5, 0.7, 0.9])
    assert np.all(np.diff(intensity) < 0)  # darker ring by ring
    # the median of a ring lies between the light at its inner and at its outer edge
    for ring, (inner, outer) in enumerate([(0.0, 0.2), (0.8, 1.0)]):
        value = intensity[0 if ring == 0 else -1]
        assert 200 * (1 - 0.5 * outer**2) <= value <= 200 * (1 - 0.5 * inner**2)


def test_the_radial_profile_refuses_images_of_several_shapes():
    with pytest.raises(ValueError, match=r"2D images of one shape, got shapes \[\(4, 4\), \(4, 5\)\]"):
        radial_profile([np.zeros((4, 4)), np.zeros((4, 5))])


def test_the_demo_corrects_its_plates_and_plots_before_and_after(tmp_path):
    files = prepare_illumination_demo(tmp_path / "demo", count=4)
    assert sorted(p.name for p in files.images.iterdir()) == sorted(PLATES)
    report = run_batch(files.pipeline, files.images, tmp_path / "run", recursive=True)
    assert report.done == 4 * len(PLATES)
    assert sorted(p.name for p in (tmp_path / "run" / "illum").iterdir()) == ["plate_1.tif", "plate_2.tif"]
    before = [tifffile.imread(p) for p in sorted(files.images.rglob("*.tif"))]
    after = [tifffile.imread(p) for p in sorted((tmp_path / "run" / "flat").rglob("*.tif"))]
    _, falling = radial_profile(before, bins=6)
    _, flat = radial_profile(after, bins=6)
    assert falling[-2] / falling[0] < 0.75 and flat[-2] / flat[0] > 0.95
    figure = illumination_figure(before, after)
    assert [line.get_label() for line in figure.axes[0].get_lines()[:2]] == ["before", "after correction"]
    plot = save_illumination_plot(tmp_path / "run", "flat", tmp_path / "illumination.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
