"""Wells as the replicates of a screen: the fields of a well aggregated, then normalised and
scored, against pycytominer (where installed) and against pandas by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.results.annotations import with_wells
from napari_batch_pipeline.core.results.scores import assay_table, normalized_table
from napari_batch_pipeline.core.results.screen import Control
from napari_batch_pipeline.core.results.wells import replicates, well_table

COLUMNS = ["nuclei.count", "nuclei.mean_area", "nuclei.mean_intensity_mean"]
NEGATIVE, POSITIVE = Control("control", "negative"), Control("control", "positive")
#: per plate: six negative wells, five positive, four of a compound
KINDS = ["negative"] * 6 + ["positive"] * 5 + ["compound"] * 4
LEVELS = {"negative": (100.0, 500.0), "positive": (40.0, 250.0), "compound": (70.0, 400.0)}


def _fields(aggregate_seed: int = 7) -> pd.DataFrame:
    """Two plates, three fields per well; each well has its own offset (wells differ more
    than fields of a well), and a few fields are flagged or failed."""
    rng = np.random.default_rng(aggregate_seed)
    rows = []
    for plate in ("P1", "P2"):
        for number, kind in enumerate(KINDS):
            well = f"{'ABCDEFGH'[number % 8]}{number // 8 + 1:02d}"
            area, intensity = LEVELS[kind]
            well_area, well_intensity = area + rng.normal(0, 6), intensity + rng.normal(0, 30)
            for field in (1, 2, 3):
                rows.append(
                    {
                        "image": f"{plate}_{well}_f{field}.tif",
                        "plate": plate,
                        "well": well,
                        "field": str(field),
                        "status": "done",
                        "error": "",
                        "seconds": 0.1,
                        "nuclei.count": int(rng.integers(5, 30)),
                        "nuclei.mean_area": well_area + rng.normal(0, 3),
                        "nuclei.mean_intensity_mean": well_intensity + rng.normal(0, 10),
                        "compound": {"negative": "DMSO", "positive": "stauro", "compound": f"cpd{number}"}[
                            kind
                        ],
                        "control": kind if kind != "compound" else "",
                    }
                )
    images = with_wells(pd.DataFrame(rows))
    images["flagged"] = ""
    images.loc[images["image"] == "P1_A01_f2.tif", "flagged"] = "quality.power_log_log_slope -3.1 < -2.6"
    images.loc[images["image"] == "P2_D02_f1.tif", "flagged"] = "quality.saturated_fraction 0.3 > 0.2"
    images.loc[images["image"] == "P1_C01_f3.tif", ["status", "error"]] = ["failed", "boom"]
    images.loc[images["image"] == "P2_A01_f1.tif", "nuclei.mean_area"] = np.nan  # no nuclei: no mean
    return images


def _usable(images: pd.DataFrame) -> pd.DataFrame:
    return images[(images["status"] == "done") & (images["flagged"] == "")]


def _wells_by_hand(images: pd.DataFrame, operation: str = "median") -> pd.DataFrame:
    kept = _usable(images)
    return kept.groupby(["plate", "well"], sort=False)[COLUMNS].agg(operation).reset_index()


def test_the_well_table_aggregates_the_usable_fields_and_counts_them() -> None:
    images = _fields()
    wells = well_table(images, COLUMNS)
    assert len(wells) == 2 * len(KINDS)
    assert list(wells.columns) == [
        *("plate", "well", "compound", "control", "row", "column"),
        *("fields", "fields_flagged", *COLUMNS),
    ]  # per-field columns (image, field, status...) are not the well's
    by_hand = _wells_by_hand(images)
    np.testing.assert_allclose(wells[COLUMNS].to_numpy(float), by_hand[COLUMNS].to_numpy(float), rtol=1e-12)
    assert wells["fields"].tolist() == [3] * len(wells)
    flagged = wells.set_index(["plate", "well"])["fields_flagged"]
    assert flagged[("P1", "A01")] == 1 and flagged[("P2", "D02")] == 1 and flagged.sum() == 2
    means = well_table(images, COLUMNS, aggregate="mean")
    np.testing.assert_allclose(
        means[COLUMNS].to_numpy(float), _wells_by_hand(images, "mean")[COLUMNS].to_numpy(float), rtol=1e-12
    )
    with pytest.raises(PipelineError, match="well aggregate 'max': expected one of median, mean"):
        well_table(images, COLUMNS, aggregate="max")


def test_a_well_without_a_usable_field_keeps_its_row_but_is_no_replicate() -> None:
    images = _fields()
    images.loc[images["well"].eq("B01") & images["plate"].eq("P1"), "flagged"] = "x"
    wells = well_table(images, COLUMNS).set_index(["plate", "well"])
    assert wells.loc[("P1", "B01"), "fields_flagged"] == 3
    assert np.isnan(wells.loc[("P1", "B01"), "nuclei.mean_area"])
    found = replicates(images, COLUMNS)
    assert found.level == "well" and len(found.frame) == 2 * len(KINDS) - 1


def test_normalized_and_assay_score_wells_by_hand() -> None:
    images = _fields()
    normalized = normalized_table(images, COLUMNS, NEGATIVE)
    assay = assay_table(images, COLUMNS, NEGATIVE, POSITIVE)
    assert set(normalized["level"]) == {"well"} and set(assay["level"]) == {"well"}
    assert "image" not in normalized and len(normalized) == 2 * len(KINDS)
    assert list(assay.columns) == [
        *("plate", "measurement", "level", "n_positive", "n_negative"),
        *("positive_mean", "positive_sd", "negative_mean", "negative_sd"),
        *("z_prime", "robust_z_prime", "ssmd"),
    ]
    wells = _wells_by_hand(images).merge(_usable(images)[["plate", "well", "control"]].drop_duplicates())
    for plate, group in wells.groupby("plate"):
        for column in COLUMNS:
            neg = group.loc[group["control"] == "negative", column].dropna()
            pos = group.loc[group["control"] == "positive", column].dropna()
            median, mad = neg.median(), (neg - neg.median()).abs().median()
            expected = (group[column] - median) / (1.4826 * mad)
            mine = normalized.loc[normalized["plate"] == plate, column].to_numpy()
            np.testing.assert_allclose(mine, expected.to_numpy(), rtol=1e-12)
            row = assay[(assay["plate"] == plate) & (assay["measurement"] == column)].iloc[0]
            assert (row["n_positive"], row["n_negative"]) == (len(pos), len(neg))
            sd_p, sd_n = pos.std(ddof=1), neg.std(ddof=1)
            z_prime = 1 - 3 * (sd_p + sd_n) / abs(pos.mean() - neg.mean())
            mad_p = 1.4826 * (pos - pos.median()).abs().median()
            mad_n = 1.4826 * (neg - neg.median()).abs().median()
            robust = 1 - 3 * (mad_p + mad_n) / abs(pos.median() - neg.median())
            ssmd = (pos.mean() - neg.mean()) / np.sqrt(sd_p**2 + sd_n**2)
            assert row["z_prime"] == pytest.approx(z_prime, rel=1e-12)
            assert row["robust_z_prime"] == pytest.approx(robust, rel=1e-12)
            assert row["ssmd"] == pytest.approx(ssmd, rel=1e-12)


def test_wells_not_fields_are_the_replicates_of_z_prime() -> None:
    """With fields as replicates, each control well counted three times; the wells give
    another Z' (the issue's pseudo-replication)."""
    images = _fields()
    by_well = assay_table(images, COLUMNS, NEGATIVE, POSITIVE)
    by_field = assay_table(images.drop(columns=["well", "row", "column"]), COLUMNS, NEGATIVE, POSITIVE)
    assert set(by_field["level"]) == {"image"}
    assert by_field["n_negative"].iloc[1] > 2 * by_well["n_negative"].iloc[1]
    assert not np.allclose(by_well["z_prime"], by_field["z_prime"], equal_nan=True)


def test_normalized_equals_pycytominer_aggregate_then_normalize_per_plate() -> None:
    pycytominer = pytest.importorskip("pycytominer")
    images = _fields()
    mine = normalized_table(images, COLUMNS, NEGATIVE)
    kept = _usable(images).rename(
        columns={"plate": "Metadata_Plate", "well": "Metadata_Well", "control": "Metadata_control"}
    )
    profiles = pycytominer.aggregate(
        kept[["Metadata_Plate", "Metadata_Well", *COLUMNS]],
        strata=["Metadata_Plate", "Metadata_Well"],
        features=COLUMNS,
        operation="median",
    )
    controls = kept[["Metadata_Plate", "Metadata_Well", "Metadata_control"]].drop_duplicates()
    profiles = profiles.merge(controls, on=["Metadata_Plate", "Metadata_Well"])
    for plate, group in profiles.groupby("Metadata_Plate"):
        theirs = pycytominer.normalize(
            group.reset_index(drop=True),
            features=COLUMNS,
            meta_features=["Metadata_Plate", "Metadata_Well", "Metadata_control"],
            samples="Metadata_control == 'negative'",
            method="mad_robustize",
        ).set_index("Metadata_Well")
        ours = mine[mine["plate"] == plate].set_index("well").loc[theirs.index]
        np.testing.assert_allclose(
            ours[COLUMNS].to_numpy(float), theirs[COLUMNS].to_numpy(float), rtol=1e-9, atol=1e-9
        )


def test_a_sweep_keeps_its_parameter_sets_apart_and_a_field_column_can_name_controls() -> None:
    one = _fields()
    images = pd.concat([one.assign(**{"blurred.sigma": 1.0}), one.assign(**{"blurred.sigma": 2.0})])
    images = images.reset_index(drop=True)
    wells = well_table(images, COLUMNS)
    assert len(wells) == 2 * 2 * len(KINDS) and "blurred.sigma" in wells
    assert wells["fields"].tolist() == [3] * len(wells)
    # a control named by a column that differs between the fields of a well (the image):
    # a well is the control when every usable field of it is
    images.loc[images["image"].eq("P1_A02_f3.tif"), "flagged"] = "x"
    images.loc[images["image"].eq("P1_B02_f3.tif"), "flagged"] = "x"
    picked = ["P1_A02_f1.tif", "P1_A02_f2.tif", "P1_B02_f1.tif"]  # B02's f2 is not
    images["picked"] = np.where(images["image"].isin(picked), "yes", "")
    found = replicates(images, COLUMNS)
    assert "picked" not in found.frame
    mask = found.mask(Control("picked", "yes"))
    assert mask.sum() == 2  # P1 A02 in both parameter sets
    assert set(found.frame.loc[mask, "well"]) == {"A02"}


def test_a_plate_map_may_not_name_a_column_the_well_tables_write(tmp_path) -> None:
    from napari_batch_pipeline.core.results.screen import ScreenSettings, check_screen

    plate_map = tmp_path / "map.csv"
    frame = pd.DataFrame({"image": ["a.tif"], "plate": ["P1"], "well": ["A01"]})
    for column in ("level", "fields", "fields_flagged"):
        plate_map.write_text(f"plate,well,{column}\nP1,A01,high\n")
        with pytest.raises(PipelineError, match=f"'{column}'.: a column the run writes itself"):
            check_screen(frame, ScreenSettings(annotations=plate_map), keys={"image", "plate", "well"})


def test_without_a_plate_the_folder_tells_wells_apart_and_images_without_a_well_are_left_out() -> None:
    images = _fields().drop(columns=["plate"])
    images.insert(1, "folder", np.where(images["image"].str.startswith("P1"), "plate1", "plate2"))
    images.loc[0, "well"] = ""  # an image without a well: in no well
    wells = well_table(images, COLUMNS)
    assert len(wells) == 2 * len(KINDS) and list(wells.columns[:2]) == ["folder", "well"]
    assert wells["fields"].tolist() == [2] + [3] * (len(wells) - 1)
    assert len(replicates(images, COLUMNS).images) == len(_usable(images)) - 1


@pytest.mark.parametrize("aggregate", ["median", "mean"])
def test_the_plate_map_shows_each_well_s_value_of_wells_csv(aggregate: str) -> None:
    from napari_batch_pipeline.core.results.plate_map import plate_grid

    images = _fields()
    images = images[images["plate"] == "P1"]
    grid = plate_grid(images, "nuclei.mean_area", NEGATIVE, POSITIVE, aggregate)
    wells = well_table(images, COLUMNS, aggregate)
    for _, well in wells.iterrows():
        value = grid.values["ABCDEFGH".index(well["row"]), int(well["column"]) - 1]
        np.testing.assert_allclose(value, well["nuclei.mean_area"], rtol=1e-12)
    assert grid.flagged[0, 0] and grid.negative[0, 0] and not grid.positive[0, 0]


def test_a_constant_measurement_is_neither_normalised_nor_scored() -> None:
    """A one-row table stage's count (always 1) has no spread: no column of NaN."""
    images = _fields().assign(**{"quality.count": 1})
    columns = [*COLUMNS, "quality.count"]
    normalized = normalized_table(images, columns, NEGATIVE)
    assay = assay_table(images, columns, NEGATIVE, POSITIVE)
    assert "quality.count" not in normalized and set(COLUMNS) <= set(normalized.columns)
    assert set(assay["measurement"]) == set(COLUMNS)
    assert "quality.count" in well_table(images, columns)  # wells.csv keeps every measurement
