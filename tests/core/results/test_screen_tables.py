"""Plate maps, wells, flags, robust z-scores, Z' and the plate heat map's data, on tables
made here, against pandas and numpy by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.quality import QualityRule
from napari_batch_pipeline.core.results.annotations import (
    matching,
    number_twin,
    read_annotations,
    row_letters,
    well_position,
    with_wells,
)
from napari_batch_pipeline.core.results.plate_map import plate_figure, plate_grid, plate_shape
from napari_batch_pipeline.core.results.scores import assay_table, normalized_table
from napari_batch_pipeline.core.results.screen import (
    Control,
    ScreenSettings,
    flag_images,
)
from napari_batch_pipeline.core.results.summary import summary_table


@pytest.mark.parametrize(
    ("well", "position"),
    [("A01", ("A", 1)), ("b7", ("B", 7)), ("P24", ("P", 24)), ("r03c12", ("C", 12)), ("R27C1", ("AA", 1))],
)
def test_wells_are_read_in_every_usual_spelling(well: str, position: tuple[str, int]) -> None:
    assert well_position(well) == position


@pytest.mark.parametrize("well", ["", "A", "12", "A0", "r0c1", "A01x", None])
def test_anything_else_is_no_well(well: object) -> None:
    assert well_position(well) is None


def test_row_letters_count_like_a_spreadsheet() -> None:
    assert [row_letters(n) for n in (1, 8, 16, 26, 27, 32)] == ["A", "H", "P", "Z", "AA", "AF"]


def test_wells_give_row_and_column_and_a_bad_well_is_refused() -> None:
    frame = with_wells(pd.DataFrame({"well": ["A01", "h12", ""]}))
    assert list(frame["row"]) == ["A", "H", ""]
    assert frame["column"].tolist()[:2] == [1, 12] and pd.isna(frame["column"].iloc[2])
    with pytest.raises(PipelineError, match="well 'X'"):
        with_wells(pd.DataFrame({"well": ["A01", "X"]}))
    own = pd.DataFrame({"well": ["A01"], "row": ["Q"]})
    assert with_wells(own) is own  # a run's own row column is left alone


def test_a_plate_map_joins_by_its_keys_first_row_first(tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text("\ufeffplate,well,compound,dose\n1,A01,DMSO,0\n1,,cpd,5\n2,A01,late,1\n")
    plate_map = read_annotations(path, keys={"image", "plate", "well"})
    assert plate_map.keys == ("plate", "well") and plate_map.columns == ("compound", "dose")
    images = pd.DataFrame(
        {"image": ["a", "b", "c", "d"], "plate": ["1", "1", "2", "01"], "well": ["A01", "B02", "A01", "A01"]}
    )
    joined = plate_map.join(images)
    assert list(joined["compound"]) == ["DMSO", "cpd", "late", ""]  # '01' is not 1; an empty key matches any
    assert list(joined["dose"]) == ["0", "5", "1", ""]
    assert plate_map.unmatched_rows(images.iloc[:1]) == [3]
    assert plate_map.unmatched_rows(images.iloc[3:]) == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("compound,dose\nx,1\n", "has no key column"),
        ("plate,well\n1,A01\n", "has no annotation column"),
        ("plate,compound,compound\n1,a,b\n", "column 2 .'compound'.: the column comes twice"),
        ("plate,,dose\n1,a,b\n", "column 2 .''.: the header cell is empty"),
        ("plate,status\n1,a\n", "column 2 .'status'.: a column the run writes itself"),
        ("plate,compound\n1,a,b\n", "row 1 .line 2.: 3 cell.s. where the header has 2 columns"),
    ],
)
def test_a_bad_plate_map_is_refused_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "map.csv"
    path.write_text(text)
    with pytest.raises(PipelineError, match=message):
        read_annotations(path, keys={"image", "plate", "well"}, taken={"status"})


def test_controls_are_column_equals_value() -> None:
    control = Control.parse(" control = DMSO ", "negative_control")
    assert (control.column, control.value, str(control)) == ("control", "DMSO", "control=DMSO")
    assert list(control.mask(pd.DataFrame({"control": ["DMSO", "x", None]}))) == [True, False, False]
    with pytest.raises(PipelineError, match="negative control: expected COLUMN=VALUE"):
        Control.parse("DMSO", "negative_control")
    with pytest.raises(PipelineError, match="compares it with a negative control"):
        ScreenSettings(positive=control)
    with pytest.raises(PipelineError, match="table format 'xlsx'"):
        ScreenSettings(table_format="xlsx")
    # values match as text; a value equal only as a number is named, never taken
    doses = pd.DataFrame({"dose": ["1.0", "2.5"]})
    assert list(matching(doses, {"dose": "1"})) == [False, False]
    assert list(matching(doses, {"dose": "1.0"})) == [True, False]
    assert number_twin(doses, {"dose": "1"}) == ("dose", "1", "1.0")
    assert number_twin(doses, {"dose": "3"}) is None


def _images() -> pd.DataFrame:
    """Two plates of six images: three negatives, two positives, one compound."""
    rng = np.random.default_rng(3)
    rows = []
    for plate in ("P1", "P2"):
        for number, kind in enumerate(["neg", "neg", "neg", "pos", "pos", "cpd"]):
            value = {"neg": 100.0, "pos": 40.0, "cpd": 70.0}[kind] + rng.normal(0, 5)
            well = f"{'ABCDEF'[number]}0{number + 1}"
            rows.append(
                {
                    "image": f"{plate}_{well}.tif",
                    "plate": plate,
                    "well": well,
                    "status": "done",
                    "error": "",
                    "seconds": 0.1,
                    "nuclei.count": 10 + number,
                    "nuclei.mean_area": value,
                    "kind": kind,
                }
            )
    return with_wells(pd.DataFrame(rows))


def test_flags_name_every_broken_rule_and_only_for_done_images() -> None:
    images = _images()
    images.loc[0, "status"] = "failed"
    rules = [QualityRule("nuclei", "area", 50.0, None), QualityRule("nuclei", "count", None, 14.0)]
    flags = flag_images(images, rules)
    for position, row in images.iterrows():
        broken = []
        if row["status"] == "done" and row["nuclei.mean_area"] < 50:
            broken.append(f"nuclei.area {row['nuclei.mean_area']:g} < 50")
        if row["status"] == "done" and row["nuclei.count"] > 14:
            broken.append(f"nuclei.count {row['nuclei.count']:g} > 14")
        assert flags[position] == "; ".join(broken)
    missing = flag_images(images, [QualityRule("nuclei", "volume", 1.0, None)])  # a user stage's, not given
    assert list(missing) == [
        "" if status != "done" else "nuclei.volume missing" for status in images["status"]
    ]


def test_normalized_and_assay_tables_equal_their_definitions() -> None:
    """Without wells, images are the replicates (see test_wells.py for wells)."""
    images = _images().drop(columns=["well", "row", "column"])
    images["flagged"] = ""
    images.loc[4, "flagged"] = "nuclei.count 14 > 13"  # a positive control of P1: out of everything
    columns = ["nuclei.count", "nuclei.mean_area"]
    negative, positive = Control("kind", "neg"), Control("kind", "pos")
    normalized = normalized_table(images, columns, negative)
    kept = images[images["flagged"] == ""]
    assert list(normalized["image"]) == list(kept["image"])
    assert "status" not in normalized and "kind" in normalized and set(normalized["level"]) == {"image"}
    assay = assay_table(images, columns, negative, positive)
    assert list(assay[["plate", "measurement"]].itertuples(index=False, name=None)) == [
        ("P1", "nuclei.count"),
        ("P1", "nuclei.mean_area"),
        ("P2", "nuclei.count"),
        ("P2", "nuclei.mean_area"),
    ]
    for plate, group in kept.groupby("plate"):
        for column in columns:
            neg = group.loc[group["kind"] == "neg", column].astype(float)
            pos = group.loc[group["kind"] == "pos", column].astype(float)
            median, mad = neg.median(), (neg - neg.median()).abs().median()
            expected = (group[column] - median) / (1.4826 * mad)
            mine = normalized.loc[normalized["plate"] == plate, column].to_numpy()
            np.testing.assert_allclose(mine, expected.to_numpy(), rtol=1e-12)
            row = assay[(assay["plate"] == plate) & (assay["measurement"] == column)].iloc[0]
            assert row["positive_mean"] == pytest.approx(pos.mean())
            assert row["negative_sd"] == pytest.approx(neg.std(ddof=1))
            z_prime = 1 - 3 * (pos.std(ddof=1) + neg.std(ddof=1)) / abs(pos.mean() - neg.mean())
            assert row["z_prime"] == pytest.approx(z_prime, rel=1e-12, nan_ok=True)
    assert np.isnan(assay.loc[0, "positive_sd"])  # P1 keeps one positive control: no sd, no Z'


def test_flagged_images_are_counted_and_left_out_of_the_summary() -> None:
    images = _images()
    images["flagged"] = ["x" if n in (0, 7) else "" for n in range(len(images))]
    table = summary_table(images, ["nuclei"], ["plate"])
    assert list(table["tasks_done"]) == [6, 6]
    assert list(table["tasks_flagged"]) == [1, 1]
    kept = images[images["flagged"] == ""]
    expected = kept.groupby("plate")["nuclei.mean_area"].agg(["mean", "median"])
    np.testing.assert_allclose(table["nuclei.area.mean"], expected["mean"])
    np.testing.assert_allclose(table["nuclei.area.median"], expected["median"])
    assert list(table["objects"]) == list(kept.groupby("plate")["nuclei.count"].sum())


def test_plate_shapes_are_the_usual_formats() -> None:
    assert plate_shape(8, 12) == (8, 12)
    assert plate_shape(3, 13) == (16, 24)
    assert plate_shape(16, 24) == (16, 24)
    assert plate_shape(17, 2) == (32, 48)
    assert plate_shape(40, 3) == (40, 3)


def test_the_plate_figure_shows_each_well_at_its_place() -> None:
    images = _images()
    images = pd.concat([images, images.iloc[[1]].assign(image="again", **{"nuclei.mean_area": 10.0})])
    images["flagged"] = ""
    images.loc[images["image"] == "P1_C03.tif", "flagged"] = "x"
    plate = images[images["plate"] == "P1"]
    grid = plate_grid(plate, "nuclei.mean_area", Control("kind", "neg"), Control("kind", "pos"))
    figure = plate_figure(grid, "P1")
    axes = figure.axes[0]
    (shown,) = [image for image in axes.images if image.get_gid() == "wells"]
    data = shown.get_array()
    assert data.shape == (8, 12)
    expected = np.full((8, 12), np.nan)
    kept = plate[plate["flagged"] == ""]
    for (row, column), group in kept.groupby(["row", "column"]):
        expected["ABCDEFGH".index(row), column - 1] = group["nuclei.mean_area"].mean()
    np.testing.assert_allclose(np.ma.filled(data.astype(float), np.nan), expected)
    assert data.mask[0, 0] == False and data.mask[7, 11] and data.mask[2, 2]  # noqa: E712  the flagged well is empty
    (crosses,) = [line for line in axes.lines if line.get_gid() == "flagged"]
    assert list(zip(crosses.get_ydata(), crosses.get_xdata(), strict=True)) == [(2, 2)]
    outlined = {
        name: sorted(
            (round(p.get_y() + 0.45), round(p.get_x() + 0.45)) for p in axes.patches if p.get_gid() == name
        )
        for name in ("negative", "positive")
    }
    assert outlined == {"negative": [(0, 0), (1, 1), (2, 2)], "positive": [(3, 3), (4, 4)]}
    assert [label.get_text() for label in axes.get_yticklabels()] == list("ABCDEFGH")
