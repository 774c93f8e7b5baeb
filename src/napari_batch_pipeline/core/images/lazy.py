"""Images read region by region, for inputs larger than memory.

:func:`open_region_reader` gives a :class:`RegionReader` over one field: its shape, dtype
and pixel size from the header, and :meth:`RegionReader.read` of any box, decoding only
the chunks the box touches. TIFF and OME-TIFF (tiled or in strips, BigTIFF too) are read
through tifffile's zarr store, or memory-mapped when uncompressed and contiguous; OME-Zarr
through zarr. Any other format is read whole, once, through the format layer: tiling then
still bounds the memory the chain itself takes.

:func:`open_input_pyramid` gives a viewer a large input (a plane of more than
:data:`LARGE_PLANE` pixels) the same way, as the levels of one multiscale image: level 0
a dask array read chunk by chunk (the file's own tiles), the smaller levels the file's
own pyramid or 2x-strided views of level 0, with contrast limits from a few chunks of
the smallest level, never from the whole image.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .fields import read_field, spacing_of
from .formats import ImageReadError
from .sources import Source

__all__ = [
    "LARGE_PLANE",
    "InputPyramid",
    "RegionReader",
    "is_large",
    "open_input_pyramid",
    "open_region_reader",
]

#: an input whose plane (Y x X) holds more pixels than this is large: a viewer shows it
#: lazily, level by level (:func:`open_input_pyramid`); a smaller one is read whole
LARGE_PLANE = 4096 * 4096
#: strided levels are added until a plane's longer side is at most this
_SMALLEST_SIDE = 1024
#: a level of at most this many pixels gives its contrast limits whole; a larger one
#: from a grid of _SAMPLES chunks along each axis (_SAMPLES x _SAMPLES in a plane)
_WHOLE_LIMITS = 2048 * 2048
_SAMPLES = 3
#: a dask chunk holds at least this many pixels along Y and X (a TIFF of one-row strips
#: would otherwise make a graph of one task per row)
_CHUNK_SIDE = 512
#: a strided smallest level up to this size keeps its chunks once read: a viewer reads it
#: for its thumbnail and again to draw it, and each of its chunks decodes one of level 0
_KEPT_BYTES = 64 * 2**20

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


def is_large(shape: tuple[int, ...]) -> bool:
    """Whether an image of ``shape`` (its last two axes Y and X) is large: a plane of
    more than :data:`LARGE_PLANE` pixels."""
    return len(shape) >= 2 and shape[-2] * shape[-1] > LARGE_PLANE


class InputPyramid(NamedTuple):
    """A large input, ready to show as one multiscale image.

    Attributes
    ----------
    levels : list of dask array
        (Y, X) or (Z, Y, X), largest first; nothing is read until a level's chunks are
        computed.
    contrast_limits : (float, float)
        From the smallest level (a few of its chunks when it is itself large).
    own : bool
        Whether the smaller levels are the file's own pyramid (else 2x-strided views
        of level 0, which read level 0's chunks).
    """

    levels: list[Any]
    contrast_limits: tuple[float, float]
    own: bool


def open_input_pyramid(path: str | Path, scene: int = 0, t: int = 0) -> InputPyramid | None:
    """A large input image as lazy multiscale levels, or None to read it whole.

    Reads headers and metadata, then the contrast limits' pixels only (see
    :class:`InputPyramid`). TIFF, BigTIFF and OME-TIFF are read through tifffile's zarr
    store (its pyramid levels when it has them), OME-Zarr through its multiscale levels.
    The file stays open as long as the levels are referenced.

    Parameters
    ----------
    path : path
        The input file (or ``.ome.zarr`` folder).
    scene, t : int
        The field: its series (scene) and time point.

    Returns
    -------
    InputPyramid or None
        None when the image is not large (:func:`is_large`), has several channels, or
        is in another format or unreadable: the caller reads it whole as before.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".zarr"):
        opened = _zarr_levels(path, t)
    elif path.suffix.lower() in (".tif", ".tiff", ".btf", ".tf8", ".tf2"):
        opened = _tiff_levels(path, scene, t)
    else:
        return None
    if opened is None:
        return None
    arrays, keep, own = opened
    import dask.array as da

    lock = threading.Lock()  # one file: one read at a time, whichever level asks
    levels = [da.from_array(a, chunks=_dask_chunks(a), lock=lock, name=False)[keep] for a in arrays]
    if not own:
        base = levels[0]
        while max(levels[-1].shape[-2:]) > _SMALLEST_SIDE:
            step = 2 ** len(levels)
            levels.append(base[..., ::step, ::step])
        if len(levels) > 1 and levels[-1].nbytes <= _KEPT_BYTES:
            levels[-1] = _kept(levels[-1])
    return InputPyramid(levels, _contrast_limits(levels[-1], whole=own), own)


def _tiff_levels(path: Path, scene: int, t: int) -> tuple[list[Any], tuple[Any, ...], bool] | None:
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(path)
    except Exception:
        return None
    try:
        series = tif.series[scene]
        keep = _plane(series.axes.upper(), series.shape, t)
        if keep is None or not is_large(tuple(series.shape)):
            tif.close()
            return None
        count = len(getattr(series, "levels", None) or [series])
        arrays = [zarr.open(series.aszarr(level=level), mode="r") for level in range(count)]
    except Exception:
        tif.close()
        return None
    return arrays, keep, count > 1


def _zarr_levels(path: Path, t: int) -> tuple[list[Any], tuple[Any, ...], bool] | None:
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        multiscale = group.attrs["multiscales"][0]
        arrays = [group[dataset["path"]] for dataset in multiscale["datasets"]]
        names = (
            "".join(
                axis["name"].upper() if isinstance(axis, dict) else str(axis).upper()
                for axis in multiscale.get("axes", [])
            )
            or "TCZYX"[-arrays[0].ndim :]
        )
    except Exception:
        return None
    keep = _plane(names, arrays[0].shape, t)
    if keep is None or not is_large(tuple(arrays[0].shape)):
        return None
    return arrays, keep, len(arrays) > 1


def _plane(axes: str, shape: tuple[int, ...], t: int) -> tuple[Any, ...] | None:
    """Which index of each axis makes a (Y, X) or (Z, Y, X) field: the time point ``t``,
    0 on a singleton axis; None when another axis (channels, samples) has several."""
    if len(axes) != len(shape) or not axes.endswith("YX"):
        return None
    keep: list[Any] = []
    for letter, size in zip(axes, shape, strict=True):
        if letter in "YX" or (letter == "Z" and size > 1):
            keep.append(slice(None))
        elif letter == "T":
            keep.append(min(t, size - 1))
        elif size == 1:
            keep.append(0)
        else:
            return None
    return tuple(keep)


def _kept(level: Any) -> Any:
    """``level`` (a dask array) whose chunks, once computed, are kept and given again."""
    import uuid

    import dask.array as da

    kept: dict[tuple[int, ...], np.ndarray] = {}

    def read(block_id: tuple[int, ...] | None = None) -> np.ndarray:
        assert block_id is not None
        if block_id not in kept:  # two threads may both read it: the same pixels
            kept[block_id] = np.asarray(level.blocks[block_id].compute(scheduler="synchronous"))
        return kept[block_id]

    meta = np.empty((0,) * level.ndim, level.dtype)
    name = f"kept-level-{uuid.uuid4().hex}"
    return da.map_blocks(read, chunks=level.chunks, dtype=level.dtype, meta=meta, name=name)


def _dask_chunks(array: Any) -> tuple[int, ...]:
    """The array's own chunks, widened along Y and X to at least ``_CHUNK_SIDE``."""
    chunks = tuple(int(c) for c in array.chunks)
    widened = [
        min(n, c * max(1, _CHUNK_SIDE // c)) if axis >= len(chunks) - 2 else c
        for axis, (c, n) in enumerate(zip(chunks, array.shape, strict=True))
    ]
    return tuple(widened)


def _contrast_limits(level: Any, whole: bool) -> tuple[float, float]:
    """The lowest and highest value of ``level`` (a dask array): of all of it when
    ``whole`` and it is small, else of a grid of its chunks, ``_SAMPLES`` along each
    axis (Z too), spread from first to last (a strided level's chunk reads one chunk of
    level 0)."""
    import dask
    import dask.array as da

    if whole and math.prod(level.shape) <= _WHOLE_LIMITS:
        parts = [level]
    else:
        grid = [sorted({round(i) for i in np.linspace(0, n - 1, _SAMPLES)}) for n in level.numblocks]
        parts = [level.blocks[index] for index in _product(grid)]
    values = dask.compute(*[(da.nanmin(part), da.nanmax(part)) for part in parts], scheduler="threads")
    low = float(min(pair[0] for pair in values))
    high = float(max(pair[1] for pair in values))
    return (low, high) if high > low else (low, low + 1.0)


def _product(grid: list[list[int]]) -> list[tuple[int, ...]]:
    import itertools

    return list(itertools.product(*grid))
