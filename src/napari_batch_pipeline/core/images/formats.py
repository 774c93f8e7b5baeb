"""The format layer: what a file holds (scenes, time points, channels, z planes, pixel
sizes), and one field of it as an array.

Every TIFF flavour (plain, ImageJ hyperstacks, OME-TIFF with several series, compressed
through imagecodecs) is read with tifffile, which also gives ImageJ channel labels and
pixel sizes; PNG, JPEG... with imageio; CZI, ND2, LIF, OME-Zarr through bioio's plugins
(``formats`` extra). A file fails alone: its reader missing, with the line to install it.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bioio_log import quiet_bioio, unsupported

__all__ = [
    "BIOIO_SUFFIXES",
    "IMAGEIO_SUFFIXES",
    "TIFF_SUFFIXES",
    "FileInfo",
    "ImageReadError",
    "SceneInfo",
    "probe",
    "read_scene",
]

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGEIO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
#: suffix -> the reader plugin bioio needs for it
BIOIO_READERS = {
    ".czi": "bioio-czi",
    ".nd2": "bioio-nd2",
    ".lif": "bioio-lif",
    ".zarr": "bioio-ome-zarr",
}
BIOIO_SUFFIXES = tuple(BIOIO_READERS)
FORMATS_EXTRA = "pip install 'napari-batch-pipeline[formats]'"


class ImageReadError(Exception):
    """An input that cannot be used as an image; fails its task alone."""


@dataclass(frozen=True)
class SceneInfo:
    """One scene (series, position) of a file.

    Attributes
    ----------
    name : str
        The name the file gives it (``'Image:0'`` or the position's name).
    sizes : dict
        ``{'T': n, 'C': n, 'Z': n, 'Y': n, 'X': n}``.
    channel_names : tuple of str
        As stored in the file; empty when it stores none.
    pixel_size : (z, y, x)
        In micrometres; None where the file does not say.
    """

    name: str
    sizes: dict[str, int]
    channel_names: tuple[str, ...] = ()
    pixel_size: tuple[float | None, float | None, float | None] = (None, None, None)

    @property
    def channels(self) -> int:
        return self.sizes["C"]

    @property
    def times(self) -> int:
        return self.sizes["T"]


@dataclass(frozen=True)
class FileInfo:
    """What one image file holds."""

    scenes: tuple[SceneInfo, ...]


def probe(path: Path) -> FileInfo:
    """Open ``path`` and describe its scenes, without reading pixels.

    Raises
    ------
    ImageReadError
        Naming the file and what is wrong (missing, empty, damaged, needs a reader).
    """
    _check_exists(path)
    info: FileInfo = _call(path, _reader(path).probe, path)
    if not info.scenes or any(scene.sizes["Y"] * scene.sizes["X"] == 0 for scene in info.scenes):
        raise ImageReadError(f"{path.name} holds no image (a damaged or empty image file)")
    return info


def read_scene(path: Path, scene: int, t: int) -> tuple[np.ndarray, SceneInfo]:
    """One time point of one scene as a (C, Z, Y, X) array, with its scene's description."""
    _check_exists(path)
    return _call(path, _reader(path).read, path, scene, t)


def read_pixels(path: Path, scene: int, t: int) -> np.ndarray:
    """:func:`read_scene`'s array alone, for a file whose scenes are known already (probed
    when the run was planned): a TIFF's channel names and pixel size are not parsed again,
    which cost a tenth of the time tifffile takes to read a 1024 x 1024 image."""
    _check_exists(path)
    reader = _reader(path)
    if reader is _Tiff:
        return _call(path, _Tiff.read, path, scene, t, False)[0]
    return _call(path, reader.read, path, scene, t)[0]


def _check_exists(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ImageReadError(f"cannot open {path.name}: {error.strerror or error}") from None
    if size == 0 and not path.is_dir():
        raise ImageReadError(f"{path.name} is an empty (zero-byte) file")


def _call(path: Path, function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except (ImageReadError, MemoryError):
        raise
    except Exception as error:
        raise ImageReadError(_describe(path, error)) from None


def _describe(path: Path, error: Exception) -> str:
    text = _first_line(error)
    if "imagecodecs" in text.lower():
        return f"{path.name} is compressed with a codec that needs the imagecodecs package ({text})"
    what = "a truncated or damaged TIFF file" if _has_tiff_header(path) else "not a readable image"
    return f"{path.name} is {what} ({type(error).__name__}: {text})"


def _has_tiff_header(path: Path) -> bool:
    """Whether the file starts like a TIFF (classic or BigTIFF, either byte order)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else "no details"


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _reader(path: Path) -> Any:
    suffix = _suffix(path)
    if suffix in BIOIO_SUFFIXES or path.is_dir():
        return _BioIO
    if suffix in TIFF_SUFFIXES or (suffix not in IMAGEIO_SUFFIXES and _has_tiff_header(path)):
        return _Tiff
    return _ImageIO


# -- TIFF through tifffile -----------------------------------------------------------------

#: tifffile axis letters -> ours; pages of unknown meaning (I, Q) are z planes, as in ImageJ
_TIFF_AXES = {"T": "T", "C": "C", "S": "C", "Z": "Z", "Y": "Y", "X": "X", "I": "Z", "Q": "Z"}
_UNIT_SCALE = {
    "um": 1.0,
    "µm": 1.0,
    "\u03bcm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "m": 1e6,
}


class _Tiff:
    @staticmethod
    def probe(path: Path) -> FileInfo:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return FileInfo(tuple(_tiff_scene(tif, index) for index in range(len(tif.series))))

    @staticmethod
    def read(path: Path, scene: int, t: int, describe: bool = True) -> tuple[np.ndarray, SceneInfo | None]:
        """The array and, if ``describe``, the scene's description (else None)."""
        import tifffile

        with tifffile.TiffFile(path) as tif:
            if scene >= len(tif.series):
                raise ImageReadError(f"{path.name} has no scene {scene} (it has {len(tif.series)})")
            info = _tiff_scene(tif, scene) if describe else None
            series = tif.series[scene]
            axes = _axes(series.axes)
            times = _sizes(series.shape, axes)["T"]
            pages = math.prod(series.shape[:-2])
            if axes[:1] == "T" and series.axes.endswith("YX") and times > 1 and len(series.pages) == pages:
                per_t = len(series.pages) // times
                data = tif.asarray(series=scene, key=slice(t * per_t, (t + 1) * per_t))
                data = np.asarray(data).reshape(series.shape[1:])
                return _to_czyx(data, axes[1:]), info
            data = series.asarray()
            if "T" in axes:
                data = np.take(data, t, axis=axes.index("T"))
                axes = axes.replace("T", "")
            return _to_czyx(data, axes), info


def _axes(tiff_axes: str) -> str:
    """tifffile's axes in our letters; a second C-like axis (RGB samples of a C stack) stays."""
    out = ""
    for letter in tiff_axes:
        ours = _TIFF_AXES.get(letter, "Z")
        if ours in out:
            ours = {"C": "c", "Z": "z"}.get(ours, "o")
        out += ours
    return out


def _to_czyx(data: np.ndarray, axes: str) -> np.ndarray:
    """An array with axes among C, Z, Y, X (others folded in) as (C, Z, Y, X)."""
    for extra, into in (("c", "C"), ("z", "Z"), ("o", "Z")):
        if extra in axes:
            data = np.moveaxis(data, axes.index(extra), axes.index(into) + 1)
            axes = axes.replace(extra, "")
            shape = list(data.shape)
            position = axes.index(into)
            shape[position : position + 2] = [shape[position] * shape[position + 1]]
            data = data.reshape(shape)
    for letter in "CZ":
        if letter not in axes:
            data = data[np.newaxis]
            axes = letter + axes
    return np.transpose(data, [axes.index(letter) for letter in "CZYX"])


def _sizes(shape: Sequence[int], axes: str) -> dict[str, int]:
    sizes = {"T": 1, "C": 1, "Z": 1, "Y": 1, "X": 1}
    for letter, size in zip(axes, shape, strict=True):
        key = letter.upper() if letter in "cz" else ("Z" if letter == "o" else letter)
        sizes[key] *= int(size)
    return sizes


def _tiff_scene(tif: Any, index: int) -> SceneInfo:
    series = tif.series[index]
    axes = _axes(series.axes)
    sizes = _sizes(series.shape, axes)
    if tif.is_ome:
        names, pixel_size = _ome_image(tif.ome_metadata, index)
        name = series.name or f"Image:{index}"
    elif tif.is_imagej:
        names, pixel_size = _imagej(tif, sizes)
        name = f"Image:{index}"
    else:
        names, pixel_size = (), _tiff_resolution(series.pages[0])
        name = f"Image:{index}"
    if len(names) != sizes["C"]:
        names = ()
    if "S" in series.axes and not names and sizes["C"] in (3, 4):
        names = ("red", "green", "blue", "alpha")[: sizes["C"]]
    return SceneInfo(name, sizes, tuple(names), pixel_size)


PixelSize = tuple[float | None, float | None, float | None]


def _imagej(tif: Any, sizes: dict[str, int]) -> tuple[tuple[str, ...], PixelSize]:
    meta = tif.imagej_metadata or {}
    labels = meta.get("Labels") or []
    names = tuple(str(label) for label in labels[: sizes["C"]]) if sizes["C"] > 1 else ()
    scale = _UNIT_SCALE.get(str(meta.get("unit", "")).strip().lower().replace("\\u00b5", "µ"))
    y = x = z = None
    if scale is not None:
        page = tif.pages.first
        y, x = _per_pixel(page, "YResolution"), _per_pixel(page, "XResolution")
        y = y * scale if y else None
        x = x * scale if x else None
        spacing = meta.get("spacing")
        z = float(spacing) * scale if spacing else None
    return names, (z, y, x)


def _per_pixel(page: Any, tag: str) -> float | None:
    """The pixel size a resolution tag gives (its inverse), in the file's unit."""
    value = page.tags.get(tag)
    if value is None:
        return None
    numerator, denominator = value.value
    if not numerator or not denominator:
        return None
    size = denominator / numerator
    return size if math.isfinite(size) and size > 0 and size != 1.0 else None


def _tiff_resolution(page: Any) -> tuple[float | None, float | None, float | None]:
    """Plain TIFF: resolution tags count only with a metric unit (inch is a print size)."""
    unit = page.tags.get("ResolutionUnit")
    if unit is None or int(unit.value) != 3:  # 3: centimetre
        return (None, None, None)
    y, x = _per_pixel(page, "YResolution"), _per_pixel(page, "XResolution")
    return (None, y * 1e4 if y else None, x * 1e4 if x else None)


def _ome_image(xml: str | None, index: int) -> tuple[tuple[str, ...], PixelSize]:
    """Channel names and pixel size of the ``index``-th Image of OME-XML."""
    if not xml:
        return (), (None, None, None)
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return (), (None, None, None)
    images = [element for element in root if _local(element.tag) == "Image"]
    if index >= len(images):
        return (), (None, None, None)
    pixels = next((e for e in images[index] if _local(e.tag) == "Pixels"), None)
    if pixels is None:
        return (), (None, None, None)
    names = tuple(e.get("Name", "") for e in pixels if _local(e.tag) == "Channel")
    if not all(names):
        names = ()
    return names, (_ome_size(pixels, "Z"), _ome_size(pixels, "Y"), _ome_size(pixels, "X"))


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _ome_size(pixels: Any, axis: str) -> float | None:
    value = pixels.get(f"PhysicalSize{axis}")
    if value is None:
        return None
    unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
    scale = _UNIT_SCALE.get(unit.strip().lower())
    try:
        size = float(value) * scale if scale is not None else None
    except ValueError:
        return None
    return size if size and math.isfinite(size) and size > 0 else None


# -- PNG, JPEG ... through imageio ---------------------------------------------------------


class _ImageIO:
    @staticmethod
    def probe(path: Path) -> FileInfo:
        import imageio.v3 as iio

        properties = iio.improps(path)
        shape = tuple(properties.shape)
        if properties.n_images is not None and properties.n_images > 1:  # animated GIF, ...
            shape = shape[1:]
        return FileInfo((_imageio_scene(shape),))

    @staticmethod
    def read(path: Path, scene: int, t: int) -> tuple[np.ndarray, SceneInfo]:
        import imageio.v3 as iio

        data = np.asarray(iio.imread(path, index=0))
        info = _imageio_scene(data.shape)
        data = np.moveaxis(data, -1, 0) if data.ndim == 3 else data[np.newaxis]
        return data[:, np.newaxis], info


def _imageio_scene(shape: Sequence[int]) -> SceneInfo:
    channels = int(shape[2]) if len(shape) == 3 else 1
    sizes = {"T": 1, "C": channels, "Z": 1, "Y": int(shape[0]), "X": int(shape[1])}
    names = ("red", "green", "blue", "alpha")[:channels] if channels in (3, 4) else ()
    return SceneInfo("Image:0", sizes, names)


# -- vendor formats through bioio ------------------------------------------------------------


class _BioIO:
    @staticmethod
    def probe(path: Path) -> FileInfo:
        image = _bioimage(path)
        scenes = []
        for index in range(len(image.scenes)):
            image.set_scene(index)
            scenes.append(_bioio_scene(image))
        return FileInfo(tuple(scenes))

    @staticmethod
    def read(path: Path, scene: int, t: int) -> tuple[np.ndarray, SceneInfo]:
        image = _bioimage(path)
        if scene >= len(image.scenes):
            raise ImageReadError(f"{path.name} has no scene {scene} (it has {len(image.scenes)})")
        image.set_scene(scene)
        info = _bioio_scene(image)
        if "S" in image.dims.order and image.dims.S > 1:
            data = np.asarray(image.get_image_data("ZYXS", T=t, C=0))
            data = np.moveaxis(data, -1, 0)
        else:
            data = np.asarray(image.get_image_data("CZYX", T=t))
        return data, info


def _bioimage(path: Path) -> Any:
    reader = BIOIO_READERS.get(_suffix(path), "a bioio reader plugin for this format")
    try:
        from bioio import BioImage
    except ImportError:
        raise ImageReadError(
            f"{path.name} needs bioio and {reader}, which are not installed; run: {FORMATS_EXTRA}"
        ) from None
    try:
        with quiet_bioio(path) as reasons:  # bioio's lines go into the message, not to stderr
            return BioImage(path)
    except Exception as error:
        if type(error).__name__ == "UnsupportedFileFormatError":
            raise ImageReadError(unsupported(path, reader, reasons, FORMATS_EXTRA)) from None
        raise


def _bioio_scene(image: Any) -> SceneInfo:
    dims = image.dims
    channels = dims.C if "S" not in dims.order or dims.S == 1 else dims.S
    sizes = {"T": dims.T, "C": channels, "Z": dims.Z, "Y": dims.Y, "X": dims.X}
    names = tuple(str(name) for name in (image.channel_names or []))
    if len(names) != channels or any(re.fullmatch(r"Channel:\d+:\d+", n) for n in names):
        names = ()
    physical = image.physical_pixel_sizes
    z, y, x = (
        float(v) if v is not None and math.isfinite(float(v)) and float(v) > 0 else None
        for v in (physical.Z, physical.Y, physical.X)
    )
    pixel_size = (z, y, x)
    return SceneInfo(str(image.current_scene), sizes, names, pixel_size)
