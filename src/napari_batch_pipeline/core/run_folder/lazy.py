"""A run's saved outputs as lazy arrays: one dask stack per stage, read only when shown.

Nothing here holds more than one image at a time: saved outputs become dask arrays
whose blocks are read from their files only when a viewer (or a computation) asks for
them, so opening a run of 1,000 images costs a directory listing and 1,000 TIFF
headers, each a few dozen bytes read by :func:`tiff_header` (a plain one-page TIFF, as
the engine writes) without building a ``tifffile.TiffFile``. Each array comes with its
scale, the pixel size of its images, for a viewer to show it at (:meth:`SavedOutputs.scale_of`).
A tiled image's output, an OME-Zarr store, is kept apart: its levels, as lazy zarr
arrays (:class:`Pyramid`), are one multiscale layer; so is a large input image
(:func:`large_input`), its levels lazy dask arrays.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..images.formats import FileInfo, ImageReadError, probe, read_scene
from ..images.lazy import is_large, open_input_pyramid
from ..images.ome_zarr import is_store, open_store
from ..images.sources import read_image

__all__ = [
    "FieldFile",
    "Pyramid",
    "SavedOutputs",
    "field_headers",
    "image_scale",
    "large_input",
    "lazy_stack",
    "load_pyramids",
    "load_saved",
    "read_field_file",
    "read_saved",
    "read_tiff",
    "tiff_header",
]

Scale = tuple[float, ...]


def lazy_stack(
    paths: Sequence[Any],
    shape: tuple[int, ...],
    dtype: Any,
    reader: Callable[[Any], np.ndarray] | None = None,
) -> Any:
    """A dask array stacking TIFF files of one shape, each read only when needed.

    Parameters
    ----------
    paths : sequence of path
        The files, in stack order (or anything ``reader`` reads, such as a
        :class:`FieldFile`).
    shape : tuple of int
        The shape every file holds, e.g. ``(M, N)``.
    dtype : numpy dtype
        Their dtype.
    reader : callable, optional
        ``reader(path) -> ndarray``, called with an item of ``paths``; default:
        ``tifffile.imread``.

    Returns
    -------
    (len(paths), *shape) dask array
        One block per file; building it reads nothing.
    """
    import dask.array as da

    files = list(paths)
    read_file = reader or read_tiff
    if not files:
        raise ValueError("lazy_stack needs at least one file, got none")

    def read(block_id: tuple[int, ...] | None = None) -> np.ndarray:
        assert block_id is not None
        return np.asarray(read_file(files[block_id[0]])).reshape(shape)[np.newaxis]

    chunks = ((1,) * len(files), *((n,) for n in shape))
    meta = np.empty((0,) * (len(shape) + 1), dtype)
    # a name of its own: dask would otherwise hash ``read`` with every path it holds
    name = f"lazy-stack-{uuid.uuid4().hex}"
    return da.map_blocks(read, chunks=chunks, dtype=dtype, meta=meta, name=name)


def read_tiff(path: str | Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def read_saved(path: Path) -> np.ndarray | list[Any]:
    """A saved output as a viewer shows it.

    Parameters
    ----------
    path : Path
        ``<stage>/<stem>.tif`` or ``<stage>/<stem>.ome.zarr`` of a run folder (as
        ``RunResults.task_outputs`` gives it: checked to lie inside the run folder).

    Returns
    -------
    ndarray or list of zarr arrays
        The TIFF's pixels, (M, N) or (P, M, N); or the store's levels, largest first,
        lazily (nothing of the pixels is read until asked).

    Raises
    ------
    ValueError
        If the store is damaged (see :func:`.ome_zarr.open_store`).
    """
    if is_store(path):
        return open_store(path)
    return read_image(path)


class FieldFile(NamedTuple):
    """One field of an input file: its scene and time point (see :func:`read_field_file`)."""

    path: Path
    scene: int
    t: int


def read_field_file(field: FieldFile) -> np.ndarray:
    """The field's pixels as :func:`~..images.sources.read_image` gives a file's first one:
    (Y, X), (Z, Y, X), or with several channels (C, Y, X) or (C, Z, Y, X)."""
    data, _ = read_scene(field.path, field.scene, field.t)
    return np.squeeze(data, axis=tuple(i for i in (0, 1) if data.shape[i] == 1))


def field_headers(fields: Sequence[FieldFile]) -> list[tuple[tuple[int, ...], np.dtype] | None]:
    """Shape (singleton axes dropped) and dtype of each field, None where unreadable.

    Reads headers only, each file's once: the shape from its scene's sizes, the dtype
    from the file's first series.
    """
    described: dict[Path, tuple[FileInfo, np.dtype] | None] = {}
    headers: list[tuple[tuple[int, ...], np.dtype] | None] = []
    for path, scene, _ in fields:
        if path not in described:
            header = _image_header(path)
            try:
                described[path] = (probe(path), header[1]) if header is not None else None
            except ImageReadError:
                described[path] = None
        info = described[path]
        if info is None or scene >= len(info[0].scenes):
            headers.append(None)
            continue
        sizes = info[0].scenes[scene].sizes
        headers.append((tuple(sizes[a] for a in "CZYX" if sizes[a] != 1), info[1]))
    return headers


def _image_header(path: Path) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape (singleton axes dropped) and dtype of an image file, or None if unreadable.

    Reads only the header: TIFF through tifffile, other formats through imageio.
    """
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            quick = tiff_header(path)
            if quick is not None:
                return tuple(n for n in quick[0] if n != 1), quick[1]
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                # one page (what the engine writes): its header says all, and is quick to read
                page = tiff.pages.first if len(tiff.pages) == 1 else tiff.series[0]
                shape, dtype = tuple(page.shape), np.dtype(page.dtype)
        else:
            import imageio.v3 as iio

            props = iio.improps(path)
            shape, dtype = tuple(props.shape), np.dtype(props.dtype)
    except Exception:
        return None
    return tuple(n for n in shape if n != 1), dtype


#: TIFF tags the quick header reader looks at
_WIDTH, _LENGTH, _BITS, _SAMPLES, _FORMAT, _DEPTH = 256, 257, 258, 277, 339, 32997
#: (SampleFormat, BitsPerSample) -> numpy dtype kind and size
_KINDS = {1: "u", 2: "i", 3: "f"}


def tiff_header(path: str | Path) -> tuple[tuple[int, int], np.dtype] | None:
    """Shape and dtype of a plain one-page TIFF, from its first image file directory.

    Reads a few dozen bytes: the header, the directory's entries. Plain means what
    the engine writes: little-endian classic TIFF, one page, one sample per pixel,
    8, 16, 32 or 64-bit unsigned, signed or float pixels (any compression or
    tiling). Anything else (several pages, BigTIFF, big-endian, RGB, volumes, 1-bit)
    gives None: ask ``tifffile`` then.

    Returns
    -------
    ((M, N), dtype) or None
    """
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            if len(head) < 8 or head[:4] != b"II*\x00":
                return None
            (offset,) = struct.unpack("<I", head[4:])
            file.seek(offset)
            raw = file.read(2)
            if len(raw) < 2:
                return None
            (count,) = struct.unpack("<H", raw)
            raw = file.read(12 * count + 4)
    except OSError:
        return None
    if len(raw) < 12 * count + 4 or struct.unpack("<I", raw[-4:])[0] != 0:
        return None  # truncated, or a second page
    tags: dict[int, int] = {}
    for entry in range(count):
        tag, kind, values, value = struct.unpack("<HHII", raw[12 * entry : 12 * entry + 12])
        if values != 1 or kind not in (3, 4):  # one SHORT or LONG, stored in the entry itself
            if tag in (_WIDTH, _LENGTH, _BITS, _SAMPLES, _FORMAT, _DEPTH):
                return None
            continue
        tags[tag] = value & 0xFFFF if kind == 3 else value
    kind_code = _KINDS.get(tags.get(_FORMAT, 1))
    bits = tags.get(_BITS, 1)
    if (
        _WIDTH not in tags
        or _LENGTH not in tags
        or tags.get(_SAMPLES, 1) != 1
        or tags.get(_DEPTH, 1) != 1
        or kind_code is None
        or bits not in (8, 16, 32, 64)
        or (kind_code == "f" and bits == 8)
    ):
        return None
    return (tags[_LENGTH], tags[_WIDTH]), np.dtype(f"<{kind_code}{bits // 8}")


def image_scale(pixel_size: Sequence[float | None] | None, ndim: int) -> Scale | None:
    """The scale of an image of ``ndim`` axes whose (z, y, x) pixel size is ``pixel_size``.

    A 2D image takes (y, x); one of 3 axes (Z, Y, X) takes all three (a (C, Y, X) one
    too: its z size is 1.0 unless the file gave one); axes before those get 1.0, and so
    does a size the file did not give. None when no size is known.
    """
    if pixel_size is None or all(size is None for size in pixel_size):
        return None
    z, y, x = (1.0 if size is None else float(size) for size in pixel_size)
    spatial = (y, x) if ndim <= 2 else (z, y, x)
    return (1.0,) * max(0, ndim - len(spatial)) + spatial[-ndim:]


def load_saved(
    result: SavedOutputs,
    found: Sequence[tuple[str, Any, Sequence[float | None] | None]],
    max_separate: int,
    reader: Callable[[Any], np.ndarray],
) -> SavedOutputs:
    """Fill ``result`` with one lazy stack of ``found`` (name, path, (z, y, x) pixel size
    or None) triples, or with separate arrays when they differ in shape, dtype or scale.

    A path may be a :class:`FieldFile` (one scene and time point of a file), which
    ``reader`` then reads."""
    fields = [path for _, path, _ in found if isinstance(path, FieldFile)]
    field_header = iter(field_headers(fields))
    headers = [
        next(field_header) if isinstance(path, FieldFile) else _image_header(path) for _, path, _ in found
    ]
    readable = [
        (name, path, (*header, image_scale(pixel_size, len(header[0]))))
        for (name, path, pixel_size), header in zip(found, headers, strict=True)
        if header is not None
    ]
    result.left_out += len(found) - len(readable)
    if not readable:
        return result
    if len({header for _, _, header in readable}) == 1:
        shape, dtype, scale = readable[0][2]
        result.names = [name for name, _, _ in readable]
        result.stack = lazy_stack([path for _, path, _ in readable], shape, dtype, reader)
        result.scales = [None if scale is None else (1.0, *scale)]  # 1 on the axis of the tasks
        return result
    for name, path, (shape, dtype, scale) in readable[:max_separate]:
        result.names.append(name)
        result.separate.append(lazy_stack([path], shape, dtype, reader)[0])
        result.scales.append(scale)
    result.left_out += max(0, len(readable) - max_separate)
    return result


class Pyramid(NamedTuple):
    """A tiled image's saved output: the levels of its OME-Zarr store.

    Attributes
    ----------
    name : str
        The output's name (image and parameter set), as :attr:`SavedOutputs.names`.
    levels : list of zarr array
        Largest first, each 2x smaller along Y and X than the one before; lazy.
    scale : tuple of float or None
        The scale of level 0 (its pixel size); None when unknown.
    contrast_limits : (float, float) or None
        Where known without reading the smallest level whole (a large input's: see
        :func:`..images.lazy.open_input_pyramid`); None: from the smallest level.
    """

    name: str
    levels: list[Any]
    scale: Scale | None
    contrast_limits: tuple[float, float] | None = None


def load_pyramids(
    result: SavedOutputs,
    stores: Sequence[tuple[str, Path, Sequence[float | None] | None]],
    max_separate: int,
) -> SavedOutputs:
    """Add to ``result`` the ``stores`` (name, OME-Zarr store, (z, y, x) pixel size or
    None), each as a :class:`Pyramid` of lazy levels: at most ``max_separate``; a store
    that cannot be opened (damaged metadata) is left out, as an unreadable file is."""
    for name, path, pixel_size in stores:
        if len(result.pyramids) >= max_separate:
            result.left_out += 1
            continue
        try:
            levels = open_store(path)
        except ValueError:  # damaged metadata
            result.left_out += 1
            continue
        result.pyramids.append(Pyramid(name, levels, image_scale(pixel_size, levels[0].ndim)))
    return result


def large_input(
    name: str, path: Path, scene: int, t: int, pixel_size: Sequence[float | None] | None
) -> Pyramid | None:
    """An input image as a :class:`Pyramid` of lazy levels when it is large (see
    :func:`..images.lazy.open_input_pyramid`), else None: read it as before.

    A plain one-page TIFF (what most inputs are) is judged by :func:`tiff_header`, a few
    dozen bytes, so that a run of many small images opens no TIFF twice.
    """
    if path.suffix.lower() in (".tif", ".tiff"):
        quick = tiff_header(path)
        if quick is not None and not is_large(quick[0]):
            return None
    pyramid = open_input_pyramid(path, scene, t)
    if pyramid is None:
        return None
    scale = image_scale(pixel_size, pyramid.levels[0].ndim)
    return Pyramid(name, pyramid.levels, scale, pyramid.contrast_limits)


@dataclass
class SavedOutputs:
    """The saved outputs of one stage of a run, ready to show.

    Attributes
    ----------
    stage : str
        The stage name.
    kind : {'image', 'mask', 'labels'}
        What the stage gives; masks and labels are shown as labels.
    names : list of str
        One name per output (image and parameter set), in images.csv order.
    stack : dask array or None
        ``(len(names), M, N)``: every output, lazily, when they share shape and dtype.
    separate : list of dask array
        Otherwise one lazy array per output, at most ``max_separate`` of them.
    left_out : int
        Outputs not loaded because of that cap (or unreadable).
    scales : list of tuple of float or None
        The scale of the stack (one entry), or of each separate array; None where the
        pixel size is unknown. Outputs are stacked only when they share it.
    pyramids : list of Pyramid
        The outputs of tiled images (OME-Zarr stores), one multiscale each, after
        those of :attr:`names`; at most ``max_separate`` of them.
    """

    stage: str
    kind: str
    names: list[str] = field(default_factory=list)
    stack: Any = None
    separate: list[Any] = field(default_factory=list)
    left_out: int = 0
    scales: list[Scale | None] = field(default_factory=list)
    pyramids: list[Pyramid] = field(default_factory=list)

    @property
    def is_labels(self) -> bool:
        return self.kind in ("mask", "labels")

    def scale_of(self, data: Any) -> Scale | None:
        """The scale to show ``data`` at: :attr:`stack` or one of :attr:`separate`.

        The pixel size in micrometres on the image axes, 1.0 on the stack's axis of the
        tasks; None when the run does not know the pixel size (or ``data`` is neither).
        """
        arrays = [self.stack] if self.stack is not None else self.separate
        index = next((i for i, array in enumerate(arrays) if array is data), None)
        return self.scales[index] if index is not None and index < len(self.scales) else None
