"""Screens on the command line: refusals before anything runs, summarize with other
controls, rules and plate maps without recomputing images, and Parquet tables equal
to the CSV ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_batch_pipeline.core.run_folder.reader import RunResults
from napari_batch_pipeline.core.run_folder.tables import read_table

CONTROLS = ("--negative-control", "control=negative", "--positive-control", "control=positive")


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    """The command in its own interpreter, as a user runs it."""
    command = [sys.executable, "-m", "napari_batch_pipeline.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def run_args(screen, output: Path, *more: str | Path) -> list[str | Path]:
    return [
        "run",
        screen.pipeline,
        screen.images,
        "-o",
        output,
        "--executor",
        "serial",
        "--metadata",
        screen.metadata,
        "--quiet",
        *more,
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("map_row", "plate map 'plate_map.csv', row 17 (plate=P3, well=A01) matches no image"),
        ("negative", "negative control control=untreated matches no image; 'control' holds"),
        ("column", "negative control treatment=DMSO: no column 'treatment' in this run's tables"),
        ("positive_alone", "positive control control=positive: Z' compares it with a negative control"),
        ("rule", "gives no measurement 'sharpness'"),
        ("well", "well 'Z99x': expected a well written A01, A1 or r01c01"),
        ("taken", "column 3 ('status'): a column the run writes itself"),
    ],
)
def test_a_screen_that_cannot_work_is_refused_before_anything_runs(
    tmp_path: Path, screen, cli_here, change: str, message: str
) -> None:
    extra: list[str | Path] = ["--annotations", screen.annotations, *CONTROLS]
    if change == "map_row":
        with screen.annotations.open("a") as handle:
            handle.write("P3,A01,DMSO,negative\n")
    elif change == "negative":
        extra[3] = "control=untreated"
    elif change == "column":
        extra[3] = "treatment=DMSO"
    elif change == "positive_alone":
        extra = ["--annotations", screen.annotations, "--positive-control", "control=positive"]
    elif change == "rule":
        screen.pipeline.write_text(
            screen.pipeline.read_text().replace("power_log_log_slope, min", "sharpness, min")
        )
    elif change == "well":  # the well comes from the plate map, not from the file names
        screen.annotations.write_text("image,well\nP1_A01.tif,Z99x\n")
        extra = ["--metadata", r"(?P<plate>P\d)_", "--annotations", screen.annotations]
    elif change == "taken":
        screen.annotations.write_text("plate,well,status\nP1,A01,x\n")
    output = tmp_path / "out"
    result = (cli if change == "map_row" else cli_here)(*run_args(screen, output, *extra))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()


def test_summarize_concludes_again_with_other_controls_rules_and_map(
    tmp_path: Path, screen, cli_here
) -> None:
    plain, direct = tmp_path / "plain", tmp_path / "direct"
    assert cli_here(*run_args(screen, plain)).returncode == 0
    assert not (plain / "normalized.csv").exists()
    assert cli_here(*run_args(screen, direct, "--annotations", screen.annotations, *CONTROLS)).returncode == 0
    ledger = (plain / ".ledger.jsonl").read_bytes()
    seconds = pd.read_csv(plain / "images.csv")["seconds"]

    result = cli_here("summarize", plain, "--annotations", screen.annotations, *CONTROLS)
    assert result.returncode == 0, result.stderr
    assert (plain / ".ledger.jsonl").read_bytes() == ledger  # no image was run again
    for table in ("images.csv", "nuclei.csv", "wells.csv", "normalized.csv", "assay.csv", "summary.csv"):
        left, right = pd.read_csv(plain / table), pd.read_csv(direct / table)
        pd.testing.assert_frame_equal(
            left.drop(columns="seconds", errors="ignore"), right.drop(columns="seconds", errors="ignore")
        )
    pd.testing.assert_series_equal(pd.read_csv(plain / "images.csv")["seconds"], seconds)

    # other controls: the compounds against one of them; the earlier tables are replaced
    assert cli_here("summarize", plain, "--negative-control", "compound=cpd-1").returncode == 0
    assert (plain / "assay.csv").exists()  # the positive control given before stays
    normalized = pd.read_csv(plain / "normalized.csv")
    assert set(normalized["compound"]) >= {"cpd-1", "DMSO"}

    # other rules: nothing flagged, every image counts again
    rules = tmp_path / "lenient.yaml"
    rules.write_text("quality:\n  - {measure: nuclei.count, min: 0}\n")
    assert cli_here("summarize", plain, "--quality", rules).returncode == 0
    images = RunResults(plain).images
    assert images["flagged"].isna().all()
    assert pd.read_csv(plain / "summary.csv")["tasks_flagged"].sum() == 0
    assert list(images.columns).count("compound") == 1  # the map's columns are not joined twice


def test_summarize_refuses_a_rule_or_control_that_does_not_fit(tmp_path: Path, screen, cli_here) -> None:
    run = tmp_path / "run"
    assert cli_here(*run_args(screen, run)).returncode == 0
    before = (run / "images.csv").read_bytes()
    rules = tmp_path / "rules.yaml"
    rules.write_text("quality:\n  - {measure: nuclei.perimeter, max: 3}\n")
    result = cli_here("summarize", run, "--quality", rules)
    assert result.returncode == 2
    assert "gives no measurement 'perimeter'" in result.stderr
    result = cli_here("summarize", run, "--negative-control", "compound=DMSO")
    assert result.returncode == 2
    assert "no column 'compound'" in result.stderr
    assert (run / "images.csv").read_bytes() == before


def test_parquet_tables_equal_the_csv_tables(tmp_path: Path, screen, cli_here) -> None:
    csv_run, parquet_run = tmp_path / "csv", tmp_path / "parquet"
    extra = ("--annotations", screen.annotations, *CONTROLS)
    assert cli_here(*run_args(screen, csv_run, *extra)).returncode == 0
    assert cli_here(*run_args(screen, parquet_run, *extra, "--table-format", "parquet")).returncode == 0
    keys = ["plate", "well"]
    for table in ("images", "quality", "nuclei", "summary", "wells", "normalized", "assay"):
        from_parquet = pd.read_parquet(parquet_run / f"{table}.parquet")
        from_csv = read_table(csv_run / f"{table}.csv", keys)
        if "seconds" in from_csv:
            from_csv, from_parquet = from_csv.drop(columns="seconds"), from_parquet.drop(columns="seconds")
        pd.testing.assert_frame_equal(from_parquet, from_csv, check_dtype=False)
    assert not list(csv_run.glob("*.parquet"))


def test_wells_from_the_plate_map_aggregate_their_fields_as_asked(tmp_path: Path, screen, cli_here) -> None:
    """A plate map that puts three fields in one well (its ``well`` column, no metadata):
    wells.csv has one row per well, its usable fields' mean or median, and the choice is
    recorded for a later summarize."""
    import json

    plate_map = tmp_path / "fields.csv"
    lines = ["image,plate,well,control"]
    for image in sorted(p.name for p in screen.images.glob("*.tif")):
        plate, well = image[:-4].split("_")
        kind = {"A": "negative", "B": "positive"}.get(well[0], "")
        lines.append(f"{image},{plate},{ {'A': 'A01', 'B': 'B01'}.get(well[0], well) },{kind}")
    plate_map.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    args = ["run", screen.pipeline, screen.images, "-o", run, "--executor", "serial", "--quiet"]
    result = cli_here(*args, "--annotations", plate_map, *CONTROLS, "--well-aggregate", "mean")
    assert result.returncode == 0, result.stderr
    images = pd.read_csv(run / "images.csv", keep_default_na=False, na_values=[""])
    usable = images[images["flagged"].isna()]
    column = "nuclei.mean_area"

    def by_hand(operation: str) -> pd.Series:  # P2 H12's one field is flagged: no value
        wells = images.groupby(["plate", "well"]).size().index
        return usable.groupby(["plate", "well"])[column].agg(operation).reindex(wells)

    wells = pd.read_csv(run / "wells.csv").sort_values(["plate", "well"]).reset_index(drop=True)
    assert len(wells) == 2 * 4 and wells["fields"].sum() == len(images)
    assert wells.set_index(["plate", "well"]).loc[("P1", "B01"), ["fields", "fields_flagged"]].tolist() == [
        3,
        1,
    ]
    np.testing.assert_allclose(wells[column], by_hand("mean"), rtol=1e-12)
    assert json.loads((run / "run.json").read_text())["screen"]["well_aggregate"] == "mean"
    assert set(pd.read_csv(run / "assay.csv")["n_negative"]) == {1}  # one negative well per plate

    assert cli_here("summarize", run, "--well-aggregate", "median").returncode == 0
    wells = pd.read_csv(run / "wells.csv").sort_values(["plate", "well"]).reset_index(drop=True)
    np.testing.assert_allclose(wells[column], by_hand("median"), rtol=1e-12)
    assert cli_here("summarize", run).returncode == 0  # the choice recorded is kept
    assert json.loads((run / "run.json").read_text())["screen"]["well_aggregate"] == "median"


def test_the_demo_screens_a_plate_with_a_good_z_prime_and_flags_two_fields(tmp_path: Path, cli_here) -> None:
    from napari_batch_pipeline.core.demo import PLATE_BLURRED, PLATE_SATURATED

    out = tmp_path / "demo"
    result = cli_here("demo", out, "--images", "1", "--executor", "serial", "--quiet")
    assert result.returncode == 0, result.stderr
    run = out / "screen_results"
    images = pd.read_csv(run / "images.csv", keep_default_na=False)
    flagged = images.loc[images["flagged"] != "", "image"].tolist()
    assert flagged == [f"P1_{PLATE_BLURRED}.tif", f"P1_{PLATE_SATURATED}.tif"]
    assert f"flagged: P1_{PLATE_BLURRED}.tif: quality.power_log_log_slope" in result.stdout
    assay = pd.read_csv(run / "assay.csv").set_index("measurement")
    usable = images[(images["flagged"] == "") & (images["status"] == "done")]
    column = "nuclei.mean_intensity_mean"
    positive = usable.loc[usable["control"] == "positive", column]
    negative = usable.loc[usable["control"] == "negative", column]
    z_prime = 1 - 3 * (positive.std() + negative.std()) / abs(positive.mean() - negative.mean())
    assert assay.loc[column, "z_prime"] == pytest.approx(z_prime)
    assert z_prime > 0.5  # a good assay
    assert f"Z' of plate P1: {z_prime:.2f} (robust Z' " in result.stdout
    assert "wells) on the readout nuclei.mean_intensity_mean" in result.stdout  # not the best Z' of all
    assert (run / "plate_P1.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "results" / "summary.csv").exists()  # the datasets' demo ran first, as before
