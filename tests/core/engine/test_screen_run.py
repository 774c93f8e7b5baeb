"""A two-plate screen run on every executor, against numpy, scikit-image and pandas by hand.

The contract's definitions (DESIGN, "Screens") are written out here without the
package: focus score, saturated fraction, CellProfiler's focus measures
(tests/cellprofiler_focus.py), the quality flags, filtered object counts,
robust z-scores against each plate's negative controls, and Z'.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from skimage import filters, measure

import cellprofiler_focus as cp


def _quality_rules(pipeline: Path) -> tuple[float, float]:
    rules = yaml.safe_load(pipeline.read_text())["quality"]
    return rules[0]["min"], rules[1]["max"]


def _image_by_hand(path: Path) -> dict[str, float]:
    """The screen pipeline (the demo's) on one file: nuclei of 40 pixels or more, image quality."""
    image = tifffile.imread(path)
    values = image.astype(np.float64)
    blurred = filters.gaussian(image, sigma=1, preserve_range=True)
    labels = measure.label(blurred > filters.threshold_otsu(blurred), connectivity=2)
    areas = pd.DataFrame(measure.regionprops_table(labels, properties=["label", "area"]))
    kept = np.where(np.isin(labels, areas["label"][areas["area"] >= 40]), labels, 0)
    nuclei = pd.DataFrame(
        measure.regionprops_table(kept, image, properties=["label", "area", "intensity_mean"])
    )
    return {
        "quality.mean_focus_score": values.var() / values.mean(),
        "quality.mean_saturated_fraction": float(np.mean(values == values.max())),
        "quality.mean_intensity_mean": values.mean(),
        "quality.mean_power_log_log_slope": cp.power_log_log_slope(cp.cellprofiler_scale(image)),
        "quality.mean_local_focus_score": cp.local_focus_score(cp.cellprofiler_scale(image)),
        "nuclei.count": len(nuclei),
        "nuclei.mean_area": nuclei["area"].mean(),
        "nuclei.mean_intensity_mean": nuclei["intensity_mean"].mean(),
    }


def screen_by_hand(screen) -> dict[str, pd.DataFrame]:
    """images (measurements, flagged, annotations), normalized and assay, by hand."""
    focus_min, saturated_max = _quality_rules(screen.pipeline)
    plate_map = pd.read_csv(screen.annotations, dtype=str, keep_default_na=False)
    rows = []
    for path in sorted(screen.images.glob("*.tif")):
        plate, well = path.stem.split("_")
        row = {"image": path.name, "plate": plate, "well": well, **_image_by_hand(path)}
        row["flagged"] = (
            row["quality.mean_power_log_log_slope"] < focus_min
            or row["quality.mean_saturated_fraction"] > saturated_max
        )
        mapped = plate_map[(plate_map["plate"] == plate) & (plate_map["well"] == well)].iloc[0]
        row["control"] = mapped["control"]
        rows.append(row)
    images = pd.DataFrame(rows)
    measurements = [c for c in images.columns if c.startswith(("quality.mean", "nuclei."))]
    kept = images[~images["flagged"]].reset_index(drop=True)
    normalized = kept[["plate", "well"]].copy()  # one field per well: each well is its field
    assay = []
    for column in measurements:
        z = pd.Series(np.nan, index=kept.index)
        for plate, group in kept.groupby("plate"):
            negative = group.loc[group["control"] == "negative", column]
            positive = group.loc[group["control"] == "positive", column]
            mad = np.median(np.abs(negative - np.median(negative)))
            z[group.index] = (group[column] - np.median(negative)) / (1.4826 * mad) if mad else np.nan
            gap = abs(positive.mean() - negative.mean())
            z_prime = 1 - 3 * (positive.std(ddof=1) + negative.std(ddof=1)) / gap if gap else np.nan
            assay.append({"plate": plate, "measurement": column, "z_prime": z_prime})
        normalized[column] = z
    return {
        "images": images,
        "normalized": normalized,
        "assay": pd.DataFrame(assay),
        "measurements": measurements,
    }


@pytest.mark.parametrize("executor", ["serial", "processes", "dask"])
def test_screen_tables_equal_the_computation_by_hand(
    tmp_path: Path, screen, run_screen, executor: str
) -> None:
    run = tmp_path / "run"
    report = run_screen(run, executor=executor, workers=2 if executor != "serial" else None)
    assert report.failed == 0
    expected = screen_by_hand(screen)
    columns = expected["measurements"]
    images = pd.read_csv(run / "images.csv", keep_default_na=False, na_values=[""])
    by_hand = expected["images"]
    assert list(images["image"]) == list(by_hand["image"])
    np.testing.assert_allclose(images[columns].to_numpy(float), by_hand[columns].to_numpy(float), rtol=1e-9)
    flagged = images["flagged"].fillna("").astype(str) != ""
    assert list(flagged) == list(by_hand["flagged"])
    assert by_hand["flagged"].sum() == 2  # the blurred and the saturated field
    # annotations and wells joined into every table
    assert list(images["control"].fillna("")) == list(by_hand["control"])
    assert list(images["row"]) == [w[0] for w in by_hand["well"]]
    assert list(images["column"]) == [int(w[1:]) for w in by_hand["well"]]
    nuclei = pd.read_csv(run / "nuclei.csv", keep_default_na=False)
    assert {"compound", "control", "row", "column"} <= set(nuclei.columns)
    assert (nuclei["area"] >= 40).all()
    counts = nuclei.groupby("image").size().reindex(by_hand["image"], fill_value=0)
    assert list(counts) == list(by_hand["nuclei.count"])

    normalized = pd.read_csv(run / "normalized.csv")
    assert set(normalized["level"]) == {"well"}  # the run knows wells: they are the replicates
    keys = ["plate", "well"]
    assert normalized[keys].values.tolist() == expected["normalized"][keys].values.tolist()
    wells = pd.read_csv(run / "wells.csv")
    assert wells[keys].values.tolist() == by_hand[keys].values.tolist()
    assert wells["fields"].tolist() == [1] * len(wells)
    assert wells["fields_flagged"].tolist() == by_hand["flagged"].astype(int).tolist()
    np.testing.assert_allclose(
        normalized[columns].to_numpy(float),
        expected["normalized"][columns].to_numpy(float),
        rtol=1e-9,
        atol=1e-12,
    )
    assay = pd.read_csv(run / "assay.csv")
    assert list(assay.columns) == [
        *("plate", "measurement", "level", "n_positive", "n_negative", "positive_mean", "positive_sd"),
        *("negative_mean", "negative_sd", "z_prime", "robust_z_prime", "ssmd"),
    ]
    mine = assay.set_index(["plate", "measurement"]).loc[
        list(zip(expected["assay"]["plate"], expected["assay"]["measurement"], strict=True)), "z_prime"
    ]
    np.testing.assert_allclose(mine.to_numpy(float), expected["assay"]["z_prime"].to_numpy(float), rtol=1e-9)
    summary = pd.read_csv(run / "summary.csv")
    assert summary["tasks_flagged"].sum() == 2
    assert sorted(p.name for p in run.glob("plate_*.png")) == ["plate_P1.png", "plate_P2.png"]
