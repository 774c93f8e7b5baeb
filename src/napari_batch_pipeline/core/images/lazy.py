"""Images read region by region, for inputs larger than memory.

:func:`open_region_reader` gives a :class:`RegionReader` over one field: its shape, dtype
and pixel size from the header, and :meth:`RegionReader.read` of any box, decoding only
the chunks the box touches. TIFF and OME-TIFF (tiled or in strips, BigTIFF too) are read
through tifffile's zarr store, or memory-mapped when uncompressed and contiguous; OME-Zarr
through zarr. Any other format is read whole, once, through the format layer: tiling then
still bounds the memory the chain itself takes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from .fields import read_field, spacing_of
from .formats import ImageReadError
from .sources import Source

__all__ = ["RegionReader", "open_region_reader"]

_SPATIAL = "ZYX"


class RegionReader:
    """One field's pixels, read by box.

    Attributes
    ----------
    shape : tuple of int
        (Y, X) or (Z, Y, X).
    dtype : numpy dtype
    spacing : tuple of float or None
        The pixel size in micrometres, matching ``shape``.
    """

    def __init__(self, array: Any, spacing: tuple[float, ...] | None, closing: Any = None):
        self._array = array
        self.shape: tuple[int, ...] = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.spacing = spacing
        self._closing = closing
        self._lock = threading.Lock()

    def read(self, box: tuple[slice, ...]) -> np.ndarray:
        """The pixels in ``box`` (one slice per axis), as a new ndarray; thread-safe."""
        if isinstance(self._array, np.ndarray):
            return np.array(self._array[box])
        with self._lock:  # a file's reader is shared: one read at a time
            return np.array(self._array[box])

    def close(self) -> None:
        if self._closing is not None:
            self._closing.close()
            self._closing = None

    def __enter__(self) -> RegionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_region_reader(source: Source, input_name: str = "input") -> RegionReader:
    """A reader of ``source``'s single-channel field, region by region.

    Raises
    ------
    ImageReadError
        If the file cannot be read, or the field has several channels.
    """
    if source.problem is not None:
        raise ImageReadError(source.problem)
    path = Path(source.path)
    # a planned single-channel field names its channel (``input``: 0); several are refused below
    channel = source.channel_index[0][1] if len(source.channel_index) == 1 else None
    if not source.channel_files and (channel is not None or not source.channel_index):
        if path.suffix.lower() == ".zarr" or path.name.lower().endswith(".ome.zarr"):
            return _zarr(path, source, channel)
        if path.suffix.lower() in (".tif", ".tiff", ".btf", ".tf8", ".tf2"):
            reader = _tiff(path, source, channel)
            if reader is not None:
                return reader
    loaded = read_field(source, input_name)
    if len(loaded.images) != 1:
        raise ImageReadError(
            f"{source.relative}: a tiled run reads one channel, this field has {len(loaded.images)}"
        )
    return RegionReader(next(iter(loaded.images.values())), loaded.spacing)


def _tiff(path: Path, source: Source, channel: int | None) -> RegionReader | None:
    """A zarr view of the field's series, or None when its axes are not plain (T)(Z)YX."""
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(path)
    except Exception as error:
        raise ImageReadError(f"{source.relative}: cannot read as TIFF: {error}") from error
    try:
        scene = source.scene or 0
        series = tif.series[scene]
        axes = series.axes.upper()
        keep: list[Any] = []
        for letter, size in zip(axes, series.shape, strict=True):
            if letter in "YX" or (letter == "Z" and size > 1):
                keep.append(slice(None))
            elif letter == "T":
                keep.append(source.t or 0)
            elif size == 1:
                keep.append(0)
            elif letter == "C" and channel is not None and channel < size:
                keep.append(channel)
            else:  # samples, several channels, another axis: the format layer reads it
                tif.close()
                return None
        view: Any
        if getattr(series, "is_pyramidal", False):
            view = zarr.open(series.aszarr(level=0), mode="r")
        else:
            memory = tifffile.memmap(path, series=scene, mode="r") if _mappable(series) else None
            view = memory if memory is not None else zarr.open(series.aszarr(), mode="r")
        spacing = spacing_of(source.pixel_size, sum(1 for k in keep if isinstance(k, slice)))
        return RegionReader(_Cropped(view, tuple(keep)), spacing, tif)
    except ImageReadError:
        tif.close()
        raise
    except Exception:
        tif.close()
        return None


def _mappable(series: Any) -> bool:
    try:
        return series.dataoffset is not None
    except Exception:
        return False


def _zarr(path: Path, source: Source, channel: int | None) -> RegionReader:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:
        raise ImageReadError(f"{source.relative}: cannot open as Zarr: {error}") from error
    scales = None
    if hasattr(node, "attrs") and "multiscales" in node.attrs:
        multiscale = node.attrs["multiscales"][0]
        first = multiscale["datasets"][0]
        array = node[first["path"]]
        names = [
            axis["name"].upper() if isinstance(axis, dict) else str(axis).upper()
            for axis in multiscale.get("axes", [])
        ]
        for transform in first.get("coordinateTransformations", []):
            if transform.get("type") == "scale":
                scales = transform["scale"]
    else:
        array, names = node, []
    names = names or list("TCZYX"[-array.ndim :])
    keep: list[Any] = []
    for letter, size in zip(names, array.shape, strict=True):
        if letter in "YX" or (letter == "Z" and size > 1):
            keep.append(slice(None))
        elif size == 1 or letter == "T":
            keep.append(source.t or 0 if letter == "T" else 0)
        elif letter == "C" and channel is not None and channel < size:
            keep.append(channel)
        else:
            raise ImageReadError(f"{source.relative}: a tiled run reads one channel, this image has {size}")
    spacing = None
    if scales is not None:
        spatial = [
            float(s)
            for s, k, n in zip(scales, keep, names, strict=True)
            if isinstance(k, slice) and n in _SPATIAL
        ]
        spacing = tuple(spatial) if spatial else None
    return RegionReader(_Cropped(array, tuple(keep)), spacing)


class _Cropped:
    """An array-like that fixes some axes of another (singleton channels, the time point)."""

    def __init__(self, array: Any, keep: tuple[Any, ...]):
        self._array, self._keep = array, keep
        self.dtype = array.dtype
        self.shape = tuple(n for n, k in zip(array.shape, keep, strict=True) if isinstance(k, slice))

    def __getitem__(self, box: tuple[slice, ...]) -> Any:
        parts = iter(box)
        index = tuple(next(parts) if isinstance(k, slice) else k for k in self._keep)
        return self._array[index]
