"""Keys of a plate map and a parameter table match as text, from the command line.

Plates ``007`` and ``7``, or ``1.1`` and ``1.10``, are different plates: each image takes
its own plate's row. A key that matches nothing as text but would as a number (``7``
against ``007``) is refused before anything runs, naming both.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.synthetic import nuclei_image

METADATA = r"(?P<plate>[\d.]+)_(?P<well>[A-H]\d\d)"
PAIRS = [("007", "7"), ("1.10", "1.1"), ("1.1", "1.10")]


def _images(folder: Path, names: list[str]) -> Path:
    for number, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / name, nuclei_image((64, 64), n_nuclei=4, radius=5.0, seed=number))
    return folder


def _text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False).set_index("image")


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_each_plate_takes_its_own_rows_of_the_plate_map(
    tmp_path: Path, pipeline_file: Path, cli_here, first: str, second: str
) -> None:
    images = _images(tmp_path / "images", [f"{p}_{w}.tif" for p in (first, second) for w in ("A01", "A02")])
    plate_map = tmp_path / "map.csv"
    plate_map.write_text(
        "plate,well,compound,control\n"
        f"{first},A01,cpd-1,\n{first},A02,DMSO,negative\n"
        f"{second},A01,DMSO,negative\n{second},A02,cpd-2,\n"
    )
    out = tmp_path / "out"
    result = cli_here(
        "run", pipeline_file, images, "-o", out, "--executor", "serial", "--metadata", METADATA,
        "--annotations", plate_map, "--negative-control", "control=negative",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = _text(out / "images.csv")
    assert table.loc[f"{first}_A01.tif", "compound"] == "cpd-1"
    assert table.loc[f"{second}_A01.tif", ["plate", "compound", "control"]].tolist() == [
        second,
        "DMSO",
        "negative",
    ]
    assert table.loc[f"{second}_A02.tif", ["compound", "control"]].tolist() == ["cpd-2", ""]
    objects = pd.read_csv(out / "nuclei.csv", dtype=str, keep_default_na=False)
    assert set(objects.loc[objects["image"] == f"{second}_A02.tif", "compound"]) == {"cpd-2"}
    normalized = pd.read_csv(out / "normalized.csv", dtype=str, keep_default_na=False)
    assert sorted(normalized["plate"]) == sorted([first, first, second, second])


@pytest.mark.parametrize(("written", "images_have"), [("7", "007"), ("1.10", "1.1"), ("01", "1")])
def test_a_plate_map_key_equal_only_as_a_number_is_refused_naming_both(
    tmp_path: Path, pipeline_file: Path, cli_here, written: str, images_have: str
) -> None:
    images = _images(tmp_path / "images", [f"{images_have}_A01.tif", f"{images_have}_A02.tif"])
    plate_map = tmp_path / "map.csv"
    plate_map.write_text(f"plate,well,compound\n{written},A01,cpd-1\n{written},A02,DMSO\n")
    out = tmp_path / "out"
    result = cli_here(
        "run", pipeline_file, images, "-o", out, "--executor", "serial", "--metadata", METADATA,
        "--annotations", plate_map,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"row 1 (plate={written})" in result.stderr
    assert f"{written!r} equals the images' plate {images_have!r} only as a number" in result.stderr
    assert "--annotations" in result.stderr and "Traceback" not in result.stderr
    assert not (out / "images.csv").exists()


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_each_folder_takes_its_own_row_of_the_parameter_table(
    tmp_path: Path, pipeline_file: Path, cli_here, first: str, second: str
) -> None:
    images = _images(tmp_path / "images", [f"{first}/a.tif", f"{second}/b.tif"])
    table = tmp_path / "params.csv"
    table.write_text(f"folder,blurred.sigma\n{first},3\n{second},1\n")
    out = tmp_path / "out"
    result = cli_here(
        "run", pipeline_file, images, "-o", out, "--executor", "serial", "--recursive", "--params", table
    )
    assert result.returncode == 0, result.stderr
    values = _text(out / "images.csv")
    assert values.loc[f"{first}/a.tif", "blurred.sigma"] == "3.0"
    assert values.loc[f"{second}/b.tif", "blurred.sigma"] == "1.0"


def test_a_parameter_table_key_equal_only_as_a_number_is_refused_naming_both(
    tmp_path: Path, pipeline_file: Path, cli_here
) -> None:
    images = _images(tmp_path / "images", ["1.1/a.tif", "2/b.tif"])
    table = tmp_path / "params.csv"
    table.write_text("folder,blurred.sigma\n2,3\n1.10,1\n")
    out = tmp_path / "out"
    result = cli_here(
        "run", pipeline_file, images, "-o", out, "--executor", "serial", "--recursive", "--params", table
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "parameter table 'params.csv', row 2 (line 3): folder '1.10' matches no image" in result.stderr
    assert "equals the folder '1.1' only as a number" in result.stderr and "--params" in result.stderr
    assert not out.exists()
