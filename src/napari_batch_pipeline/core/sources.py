"""Inputs: the images of a folder, found by pattern, naturally sorted, with filename metadata.

Files inside the output folder are never taken as inputs, even when it lies inside the
input folder.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PipelineError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "Source",
    "find_images",
    "natural_key",
    "read_image",
]

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class ImageReadError(Exception):
    """An input that cannot be used as an image; fails its task alone."""


@dataclass(frozen=True)
class Source:
    """One input image.

    Attributes
    ----------
    path : Path
        Absolute path of the file.
    relative : str
        Path relative to the input folder, with ``/`` separators (the ``image`` column).
    metadata : dict
        Values of the named groups of the metadata pattern.
    """

    path: Path
    relative: str
    metadata: dict[str, Any] = field(default_factory=dict)


def natural_key(text: str) -> list[Any]:
    """Sort key that orders numbers by value: ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def find_images(
    folder: str | Path,
    pattern: str | None = None,
    *,
    recursive: bool = False,
    metadata: str | None = None,
    exclude: list[str | Path] | None = None,
) -> list[Source]:
    """Find the input images of a folder.

    Parameters
    ----------
    folder : path
        The input folder.
    pattern : str, optional
        A glob pattern on file names (``'*.tif'``); default: every file with a suffix an
        installed reader opens (TIFF through tifffile, the rest through imageio).
    recursive : bool
        Also look in subfolders.
    metadata : str, optional
        A regular expression with named groups, searched in each relative path; each
        group becomes a metadata column (``(?P<well>[A-H]\\d+)_(?P<site>\\d+)``).
    exclude : list of paths
        Folders whose files are never inputs (the output folder).

    Returns
    -------
    list of Source
        In natural order of their relative paths.

    Raises
    ------
    PipelineError
        If the folder is missing, not a folder, or holds no matching file.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise PipelineError(f"input folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise PipelineError(f"input {str(root)!r} is not a folder")
    root = root.resolve()
    regex = _compile_metadata(metadata)
    skip = [Path(p).expanduser().resolve() for p in exclude or []]
    walker = root.rglob if recursive else root.glob
    found = []
    for path in walker(pattern or "*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if pattern is None and path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if any(path.resolve().is_relative_to(s) for s in skip):
            continue
        found.append(Source(path=path, relative=relative.as_posix()))
    if not found:
        what = (
            f"matching {pattern!r}" if pattern else "with an image suffix (" + ", ".join(IMAGE_SUFFIXES) + ")"
        )
        if recursive:
            raise PipelineError(f"no files {what} in {str(root)!r} or its subfolders")
        raise PipelineError(
            f"no files {what} in {str(root)!r} (try looking in subfolders too)", options=("recursive",)
        )
    found.sort(key=lambda s: natural_key(s.relative))
    if regex is not None:
        found = [_with_metadata(s, regex) for s in found]
    return found


def _compile_metadata(metadata: str | None) -> re.Pattern[str] | None:
    if not metadata:
        return None
    try:
        regex = re.compile(metadata)
    except re.error as error:
        raise PipelineError(
            f"metadata pattern {metadata!r} is not a valid regular expression: {error}"
        ) from None
    if not regex.groupindex:
        raise PipelineError(f"metadata pattern {metadata!r} has no named groups; write them as (?P<name>...)")
    return regex


def _with_metadata(source: Source, regex: re.Pattern[str]) -> Source:
    match = regex.search(source.relative)
    if match is None:
        warnings.warn(f"metadata pattern does not match {source.relative!r}", stacklevel=3)
        values: dict[str, Any] = dict.fromkeys(regex.groupindex)
    else:
        values = {key: _number_or_text(value) for key, value in match.groupdict().items()}
    return Source(source.path, source.relative, values)


def _number_or_text(value: str | None) -> Any:
    if value is None or not value.isdigit():
        return value
    return int(value)


def read_image(path: str | Path) -> np.ndarray:
    """Read one 2D grayscale image.

    TIFF files are read with tifffile, others with imageio. Singleton axes are dropped.

    Raises
    ------
    ImageReadError
        With a message that names the file and says what is wrong with it: missing,
        empty, not an image, truncated, RGB or more than two dimensions.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ImageReadError(f"cannot open {path.name}: {error.strerror or error}") from None
    if size == 0:
        raise ImageReadError(f"{path.name} is an empty (zero-byte) file")
    try:
        image = _read(path)
    except MemoryError:
        raise
    except Exception as error:
        what = "a truncated or damaged TIFF file" if _has_tiff_header(path) else "not a readable image"
        raise ImageReadError(
            f"{path.name} is {what} ({type(error).__name__}: {_first_line(error)})"
        ) from None
    image = np.squeeze(np.asarray(image))
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        raise ImageReadError(
            f"{path.name} is an RGB image of shape {image.shape}; the pipeline expects 2D "
            "grayscale images (split or convert the channels first)"
        )
    if image.ndim != 2:
        raise ImageReadError(
            f"{path.name} has {image.ndim} dimensions, shape {image.shape}; the pipeline expects 2D images"
        )
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise ImageReadError(f"{path.name} has non-numeric pixels (dtype {image.dtype})")
    return image


def _read(path: Path) -> np.ndarray:
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        return tifffile.imread(path)
    import imageio.v3 as iio

    return iio.imread(path)


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
