"""CellProfiler's brightness-independent focus measures in image_quality, against
CellProfiler's definitions written out by hand (tests/cellprofiler_focus.py), on
synthetic fields and on the real images of ../shared/data where they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

import cellprofiler_focus as cp
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages.focus import cp_intensities, local_focus_score, power_log_log_slope
from napari_batch_pipeline.core.stages.quality import image_quality
from napari_batch_pipeline.core.synthetic import nuclei_image

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _real_images() -> list[Path]:
    if not SHARED_DATA.is_dir():
        return []
    return sorted(SHARED_DATA.glob("bbbc007_batch/*.tif"))[:3] + sorted(SHARED_DATA.glob("blobs.tif"))


def _fields() -> list[np.ndarray]:
    sharp = nuclei_image((200, 260), n_nuclei=25, radius=6.0, seed=4)
    return [
        sharp,
        ndi.gaussian_filter(sharp.astype(np.float32), 2).astype(sharp.dtype),
        (sharp // 16).astype(np.uint8),
        sharp.astype(np.float32) / 4095,
        nuclei_image((64, 96), n_nuclei=5, radius=4.0, seed=9),
    ]


@pytest.mark.parametrize("number", range(5))
def test_the_measures_equal_cellprofiler_s_definitions_on_synthetic_fields(number: int) -> None:
    image = _fields()[number]
    row = image_quality(image).iloc[0]
    scaled = cp.cellprofiler_scale(image)
    assert row["power_log_log_slope"] == pytest.approx(cp.power_log_log_slope(scaled), rel=1e-9)
    assert row["local_focus_score"] == pytest.approx(cp.local_focus_score(scaled, 20), rel=1e-9)
    assert row["focus_score"] == pytest.approx(
        (scaled.var() / scaled.mean()) * (np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1),
        rel=1e-9,
    )  # CellProfiler's FocusScore times the type's largest value, as the column says
    assert row["saturated_fraction"] * 100 == pytest.approx(100 * np.mean(image == image.max()), rel=1e-12)


@pytest.mark.skipif(not _real_images(), reason="no ../shared/data beside the project")
@pytest.mark.parametrize("path", _real_images(), ids=lambda p: p.name)
def test_the_measures_equal_cellprofiler_s_definitions_on_real_images(path: Path) -> None:
    image = tifffile.imread(path)
    image = image if image.ndim == 2 else image[..., 0]
    row = image_quality(image, focus_scale=30).iloc[0]
    scaled = cp.cellprofiler_scale(image)
    assert row["power_log_log_slope"] == pytest.approx(cp.power_log_log_slope(scaled), rel=1e-9)
    assert row["local_focus_score"] == pytest.approx(cp.local_focus_score(scaled, 30), rel=1e-9)


def test_the_slope_ignores_brightness_and_offset_and_blur_steepens_it() -> None:
    sharp = nuclei_image((256, 256), n_nuclei=30, radius=6.0, seed=2).astype(np.float64)
    slope = power_log_log_slope(sharp)
    assert power_log_log_slope(3 * sharp + 500) == pytest.approx(slope, rel=1e-9)
    assert power_log_log_slope(ndi.gaussian_filter(sharp, 2)) < slope - 0.5
    # LocalFocusScore follows brightness, as var / mean does: said in the stage's columns
    assert local_focus_score(3 * sharp) == pytest.approx(3 * local_focus_score(sharp), rel=1e-9)


def test_edge_cases_are_cellprofiler_s() -> None:
    assert power_log_log_slope(np.full((64, 64), 7.0)) == 0.0  # constant: 0, as CellProfiler gives
    assert power_log_log_slope(np.random.default_rng(0).random((12, 12))) == 0.0  # too small for two rings
    assert local_focus_score(np.zeros((40, 40))) == 0.0
    volume = np.stack([nuclei_image((64, 64), n_nuclei=5, radius=4.0, seed=s) for s in range(3)])
    row = image_quality(volume).iloc[0]
    assert np.isnan(row["power_log_log_slope"])  # CellProfiler measures it in 2D only
    assert row["local_focus_score"] == pytest.approx(
        cp.local_focus_score(cp_intensities(volume), 20), rel=1e-9
    )
    with pytest.raises(ValueError, match="focus_scale must be 1 or more, got 0"):
        image_quality(volume, focus_scale=0)
    with pytest.raises(ValueError, match="expected a 2D image"):
        power_log_log_slope(volume)


def test_the_demo_s_focus_rule_flags_a_blurred_field_and_not_a_bright_sharp_one(tmp_path: Path) -> None:
    """The issue's case: a sharp field blurred with sigma 2 keeps a focus_score among the
    sharp fields', so a focus_score rule lets it through and may drop a bright hit; the
    demo's rule on power_log_log_slope does neither."""
    from napari_batch_pipeline.core.demo import PLATE_BLURRED, SCREEN_COLUMNS, prepare_screen

    files = prepare_screen(tmp_path)
    (rule,) = [
        r for r in Pipeline.from_yaml(files.pipeline).quality if r.stage == "quality" and r.min is not None
    ]
    assert rule.measurement == "power_log_log_slope"

    def broken(image: np.ndarray) -> str | None:
        return rule.broken(float(image_quality(image).iloc[0][rule.measurement]))

    positive = next(c for c, (_, control, _) in SCREEN_COLUMNS.items() if control == "positive")
    negative = next(c for c, (_, control, _) in SCREEN_COLUMNS.items() if control == "negative")
    for well in (f"A{positive:02d}", f"A{negative:02d}", f"D{negative:02d}"):
        field = tifffile.imread(files.images / f"P1_{well}.tif")
        blurred = ndi.gaussian_filter(field.astype(np.float32), 2).astype(field.dtype)
        brighter = (field.astype(np.float64) * 3).astype(field.dtype)  # a stronger hit: brighter, sharp
        assert not broken(field) and not broken(brighter)
        assert broken(blurred), well
    # no focus_score cut could do it: a bright field blurred keeps a higher one than the
    # sharp (dim) positive controls
    bright = tifffile.imread(files.images / f"P1_A{negative:02d}.tif")
    blurred_score = image_quality(ndi.gaussian_filter(bright.astype(np.float32), 2).astype(bright.dtype))
    positives = [tifffile.imread(files.images / f"P1_{row}{positive:02d}.tif") for row in "ABCD"]
    assert blurred_score.iloc[0]["focus_score"] > max(
        image_quality(p).iloc[0]["focus_score"] for p in positives
    )
    assert broken(tifffile.imread(files.images / f"P1_{PLATE_BLURRED}.tif"))
