"""The quick TIFF header reader of saved outputs: the same shape and dtype as tifffile,
or None (and tifffile asked) for anything it does not read itself."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_batch_pipeline.core.run_folder.lazy import _image_header, tiff_header

PLAIN = [np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.int64, np.float32, np.float64]


@pytest.mark.parametrize("dtype", PLAIN)
@pytest.mark.parametrize("how", [{}, {"compression": "zlib"}, {"tile": (16, 16)}])
def test_plain_one_page_tiffs_are_read_from_their_header(tmp_path, dtype, how):
    path = tmp_path / "plain.tif"
    data = np.arange(48 * 33, dtype=dtype).reshape(48, 33)
    tifffile.imwrite(path, data, **how)
    assert tiff_header(path) == ((48, 33), np.dtype(dtype))
    assert _image_header(path) == ((48, 33), np.dtype(dtype))


@pytest.mark.parametrize(
    ("name", "data", "how"),
    [
        ("rgb", np.zeros((8, 9, 3), np.uint8), {}),
        ("volume", np.zeros((3, 8, 9), np.uint16), {}),
        ("hyperstack", np.zeros((4, 5, 6), np.uint16), {"imagej": True}),
        ("bigtiff", np.zeros((5, 6), np.uint16), {"bigtiff": True}),
        ("big-endian", np.zeros((5, 6), np.uint16), {"byteorder": ">"}),
        ("bits", np.zeros((8, 9), bool), {}),
    ],
)
def test_other_tiffs_are_left_to_tifffile(tmp_path, name, data, how):
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, data, **how)
    assert tiff_header(path) is None
    shape, dtype = _image_header(path)
    assert shape == tuple(n for n in tifffile.imread(path).shape if n != 1)
    assert dtype == tifffile.imread(path).dtype


def test_empty_truncated_and_missing_files_give_none(tmp_path):
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.zeros((30, 40), np.uint16))
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "cut.tif").write_bytes(good.read_bytes()[:20])
    for name in ("empty.tif", "cut.tif", "missing.tif"):
        assert tiff_header(tmp_path / name) is None
        assert _image_header(tmp_path / name) is None
