"""Inputs: finding images in a folder, their order and metadata, and reading them safely."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.images.sources import ImageReadError, find_images, natural_key, read_image
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.run_folder.layout import path_stem


def relatives(folder: Path, **options) -> list[str]:
    return [source.relative for source in find_images(folder, **options)]


def touch_images(folder: Path, names: list[str]) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, np.zeros((8, 8), np.uint8))


# -- finding ----------------------------------------------------------------------------------


def test_natural_sort_puts_img2_before_img10(tmp_path: Path) -> None:
    touch_images(tmp_path, ["img10.tif", "img2.tif", "IMG3.tif", "img1.tif", "img100.tif"])
    assert relatives(tmp_path) == ["img1.tif", "img2.tif", "IMG3.tif", "img10.tif", "img100.tif"]
    assert sorted(["a10b2", "a2b10", "a2b9"], key=natural_key) == ["a2b9", "a2b10", "a10b2"]


def test_default_takes_image_suffixes_only_and_pattern_narrows(tmp_path: Path) -> None:
    touch_images(tmp_path, ["a.tif", "b.TIFF", "c_dapi.tif", "c_gfp.tif"])
    iio.imwrite(tmp_path / "d.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "table.csv").write_text("a,b\n")
    assert relatives(tmp_path) == ["a.tif", "b.TIFF", "c_dapi.tif", "c_gfp.tif", "d.png"]
    assert relatives(tmp_path, pattern="*_dapi.tif") == ["c_dapi.tif"]
    # an explicit pattern takes any matching file; reading decides later
    assert relatives(tmp_path, pattern="*.txt") == ["notes.txt"]


def test_recursive_finds_subfolders_with_slash_paths(tmp_path: Path) -> None:
    touch_images(tmp_path, ["top.tif", "plate1/well2/a.tif", "plate1/well10/a.tif", "plate2/b.tif"])
    assert relatives(tmp_path) == ["top.tif"]
    assert relatives(tmp_path, recursive=True) == [
        "plate1/well2/a.tif",
        "plate1/well10/a.tif",
        "plate2/b.tif",
        "top.tif",
    ]
    sources = find_images(tmp_path, recursive=True)
    assert all(s.path.is_absolute() and s.path.exists() for s in sources)
    assert path_stem(sources[0].relative) == "plate1/well2/a"


def test_metadata_regex_gives_columns(tmp_path: Path) -> None:
    touch_images(tmp_path, ["A01_s1_dapi.tif", "B12_s10_dapi.tif", "B12_s2_dapi.tif"])
    sources = find_images(tmp_path, metadata=r"(?P<well>[A-H]\d+)_s(?P<site>\d+)")
    assert [s.relative for s in sources] == ["A01_s1_dapi.tif", "B12_s2_dapi.tif", "B12_s10_dapi.tif"]
    assert [s.metadata for s in sources] == [
        {"well": "A01", "site": "1"},
        {"well": "B12", "site": "2"},
        {"well": "B12", "site": "10"},
    ]  # text, always: a barcode 007 is not 7


def test_metadata_regex_that_misses_a_file_warns_and_leaves_it_empty(tmp_path: Path) -> None:
    touch_images(tmp_path, ["A01_s1.tif", "other.tif"])
    with pytest.warns(UserWarning, match="other.tif"):
        sources = find_images(tmp_path, metadata=r"(?P<well>[A-H]\d+)_s(?P<site>\d+)")
    assert sources[1].metadata == {"well": None, "site": None}


@pytest.mark.parametrize(
    ("regex", "message"),
    [("(?P<well>[A-H", "not a valid regular expression"), (r"[A-H]\d+", "no named groups")],
)
def test_bad_metadata_regex_is_a_pipeline_error(tmp_path: Path, regex: str, message: str) -> None:
    touch_images(tmp_path, ["A01.tif"])
    with pytest.raises(PipelineError, match=message):
        find_images(tmp_path, metadata=regex)


def test_hidden_files_and_folders_are_skipped(tmp_path: Path) -> None:
    touch_images(tmp_path, ["a.tif", ".hidden.tif", "._a.tif", ".cache/b.tif", "sub/.c.tif", "sub/d.tif"])
    assert relatives(tmp_path, recursive=True) == ["a.tif", "sub/d.tif"]
    assert relatives(tmp_path, pattern="*", recursive=True) == ["a.tif", "sub/d.tif"]


def test_output_folder_inside_input_folder_is_never_an_input(tmp_path: Path) -> None:
    touch_images(tmp_path, ["a.tif", "results/labels/a.tif", "results/b.tif"])
    found = relatives(tmp_path, recursive=True, exclude=[tmp_path / "results"])
    assert found == ["a.tif"]


def test_output_folder_inside_input_folder_in_a_real_run(
    tmp_path: Path, pipeline: Pipeline, image_folder: Path, image_names: list[str]
) -> None:
    out = image_folder / "results"
    first = run_batch(pipeline, image_folder, out, recursive=True, pattern="*.tif")
    assert list(first.images["image"]) == image_names
    assert (out / "labels" / "img1.tif").exists()
    # a second run sees the same inputs, not the first run's saved label images
    again = run_batch(pipeline, image_folder, out, recursive=True, pattern="*.tif")
    assert list(again.images["image"]) == image_names
    assert again.skipped == len(image_names)
    assert not (out / "labels" / "labels").exists()


@pytest.mark.parametrize("case", ["missing", "a file", "empty", "no match"])
def test_unusable_folder_is_a_pipeline_error(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "images"
    pattern = None
    if case == "a file":
        folder.write_text("")
    elif case == "empty":
        folder.mkdir()
        (folder / "readme.txt").write_text("no images here")
    elif case == "no match":
        touch_images(folder, ["a.tif"])
        pattern = "*.png"
    with pytest.raises(PipelineError) as excinfo:
        find_images(folder, pattern)
    assert str(folder) in str(excinfo.value)
    expected = {
        "missing": "does not exist",
        "a file": "not a folder",
        "empty": "no files",
        "no match": "'*.png'",
    }[case]
    assert expected in str(excinfo.value)


def test_names_with_spaces_and_non_ascii_letters_end_to_end(
    tmp_path: Path, pipeline: Pipeline, write_images: Callable[..., list[Path]]
) -> None:
    names = ["Zelle Nr 1.tif", "noyau été 2.tif", "ядро 3.tif", "細胞 4.tif"]
    folder = tmp_path / "données brutes"
    write_images(folder, ["sub dir/" + name for name in names])
    out = tmp_path / "résultats à part"
    report = run_batch(pipeline, folder, out, recursive=True)
    assert report.exit_code == 0
    images = report.images
    assert sorted(images["image"]) == sorted("sub dir/" + n for n in names)
    assert (images["status"] == "done").all()
    nuclei = pd.read_csv(out / "nuclei.csv")
    assert set(nuclei["image"]) == set(images["image"])
    for name in names:
        saved = out / "labels" / "sub dir" / name
        assert saved.exists(), saved
        assert tifffile.imread(saved).max() > 0


# -- reading ----------------------------------------------------------------------------------


@pytest.fixture
def good_tiff(tmp_path: Path) -> Path:
    path = tmp_path / "good.tif"
    tifffile.imwrite(path, (np.arange(64 * 64).reshape(64, 64) % 4000).astype(np.uint16))
    return path


def test_read_image_gives_2d_arrays(tmp_path: Path, good_tiff: Path) -> None:
    image = read_image(good_tiff)
    assert image.shape == (64, 64) and image.dtype == np.uint16
    iio.imwrite(tmp_path / "gray.png", np.full((16, 24), 7, np.uint8))
    assert read_image(tmp_path / "gray.png").shape == (16, 24)
    tifffile.imwrite(tmp_path / "single.tif", np.zeros((1, 16, 24), np.float32))
    assert read_image(tmp_path / "single.tif").shape == (16, 24)  # singleton axes dropped


def _bad_file(tmp_path: Path, good_tiff: Path, case: str) -> Path:
    data = good_tiff.read_bytes()
    if case == "zero-byte":
        path = tmp_path / "empty image.tif"
        path.write_bytes(b"")
    elif case == "truncated":
        path = tmp_path / "cut short.tif"
        path.write_bytes(data[: len(data) // 2])
    elif case == "text with a TIFF suffix":
        path = tmp_path / "notes.tif"
        path.write_text("these are notes, not pixels\n")
    elif case == "text file":
        path = tmp_path / "notes.txt"
        path.write_text("these are notes, not pixels\n")
    elif case == "RGB":
        path = tmp_path / "colour.tif"
        tifffile.imwrite(path, np.zeros((32, 32, 3), np.uint8))
    elif case == "RGB png":
        path = tmp_path / "colour.png"
        iio.imwrite(path, np.zeros((32, 32, 3), np.uint8))
    elif case == "3D":
        path = tmp_path / "stack.tif"
        tifffile.imwrite(path, np.zeros((5, 32, 32), np.uint16))
    else:
        path = tmp_path / "missing.tif"
    return path


@pytest.mark.parametrize(
    ("case", "shape"), [("RGB", (3, 32, 32)), ("RGB png", (3, 32, 32)), ("3D", (5, 32, 32))]
)
def test_read_image_gives_channels_first_and_z_stacks(
    tmp_path: Path, good_tiff: Path, case: str, shape: tuple[int, ...]
) -> None:
    assert read_image(_bad_file(tmp_path, good_tiff, case)).shape == shape


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("zero-byte", "zero-byte"),
        ("truncated", "truncated"),
        ("text with a TIFF suffix", "not a readable image"),
        ("text file", "not a readable image"),
        ("missing", "cannot open"),
    ],
)
def test_read_image_errors_name_the_file_and_the_problem(
    tmp_path: Path, good_tiff: Path, case: str, expected: str
) -> None:
    path = _bad_file(tmp_path, good_tiff, case)
    with pytest.raises(ImageReadError) as excinfo:
        read_image(path)
    message = str(excinfo.value)
    assert path.name in message
    assert expected in message
    assert "\n" not in message
    # one clean error, not a library exception chained under it
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__ or excinfo.value.__context__ is None


def test_a_linked_subfolder_is_named_in_a_warning_not_skipped_silently(tmp_path: Path) -> None:
    # With subfolders, a linked folder was skipped without a row or a word.
    elsewhere = tmp_path / "elsewhere"
    touch_images(elsewhere, ["far.tif"])
    root = tmp_path / "input"
    touch_images(root, ["near.tif"])
    (root / "plate2").symlink_to(elsewhere, target_is_directory=True)
    with pytest.warns(UserWarning, match="'plate2': a link to a folder, not looked into"):
        sources = find_images(root, recursive=True)
    assert [s.relative for s in sources] == ["near.tif"]
    (root / "loop").symlink_to(root, target_is_directory=True)  # a loop still ends
    with pytest.warns(UserWarning, match="'loop', 'plate2'"):
        assert [s.relative for s in find_images(root, recursive=True)] == ["near.tif"]
