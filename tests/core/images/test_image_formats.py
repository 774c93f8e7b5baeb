"""The format layer reads every kind of file as the file holds it: scenes, time points,
channels (with their stored names), z planes and pixel sizes, pixel for pixel."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from image_files import MAKERS

from napari_batch_pipeline.core.images.formats import ImageReadError, probe, read_scene


@pytest.mark.parametrize("kind", list(MAKERS))
def test_every_kind_of_file_reads_as_written(tmp_path: Path, kind: str) -> None:
    expected = MAKERS[kind](tmp_path)
    info = probe(expected.path)
    assert len(info.scenes) == len(expected.scenes)
    for index, (scene, want) in enumerate(zip(info.scenes, expected.scenes, strict=True)):
        t, c, z, y, x = want.data.shape
        assert scene.sizes == {"T": t, "C": c, "Z": z, "Y": y, "X": x}
        assert scene.channel_names == want.channel_names
        assert scene.pixel_size == pytest.approx(want.pixel_size)
        for time in range(t):
            data, _ = read_scene(expected.path, index, time)
            np.testing.assert_array_equal(data, want.data[time])


def test_a_damaged_tiff_names_the_file(tmp_path: Path) -> None:
    good = MAKERS["plain 2D"](tmp_path).path
    broken = tmp_path / "broken.tif"
    broken.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageReadError, match=r"broken\.tif is a truncated or damaged TIFF"):
        read_scene(broken, 0, 0)


def test_a_vendor_file_without_its_reader_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plate.nd2"
    path.write_bytes(b"not really an nd2 file")
    monkeypatch.setitem(sys.modules, "bioio", None)  # as if bioio were not installed
    with pytest.raises(ImageReadError, match=r"plate.nd2 needs bioio and bioio-nd2.*pip install"):
        probe(path)


def test_a_file_no_reader_opens_fails_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "plate.lif"
    path.write_bytes(b"not really a lif file" * 10)
    with pytest.raises(ImageReadError, match=r"plate\.lif"):
        probe(path)


def test_a_scene_that_does_not_exist_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = MAKERS["OME-TIFF 2 series"](tmp_path).path
    with pytest.raises(ImageReadError, match=r"two_series\.ome\.tif has no scene 5"):
        read_scene(path, 5, 0)


def test_a_tiff_with_a_header_and_no_image_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.tif"
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    with pytest.raises(ImageReadError, match=r"junk\.tif"):
        probe(path)


@pytest.mark.parametrize(("suffix", "reader"), [(".czi", "bioio-czi"), (".nd2", "bioio-nd2")])
def test_a_damaged_vendor_file_says_why_quietly_not_that_its_reader_is_missing(
    tmp_path: Path, suffix: str, reader: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # A truncated CZI or a garbage ND2 was reported as needing its reader installed, when it
    # was; and bioio's log lines reached stderr past --quiet.
    pytest.importorskip(reader.replace("-", "_"))
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(b"ZISRAWFILE" + bytes(range(256)) * 4)
    with pytest.raises(ImageReadError, match=f"{reader} cannot read it; the file may be damaged") as error:
        probe(path)
    assert "pip install" not in str(error.value)
    assert "Attempted file" not in capfd.readouterr().err
