"""Inputs: the images of a folder, found by pattern, naturally sorted, with filename metadata.

Files inside the output folder are never taken as inputs, even when it lies inside the
input folder. Nothing that looks like an input is skipped without a word: a folder named
like an image (``x.tif``), a broken link or a special file becomes an input whose task
fails with what it is. A name that is not valid UTF-8 is read all the same; the tables
show it with the bad bytes escaped (``bad\\xff.tif``).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from ..errors import PipelineError
from .formats import BIOIO_SUFFIXES, IMAGEIO_SUFFIXES, TIFF_SUFFIXES, ImageReadError, read_scene

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "Source",
    "escaped",
    "find_images",
    "natural_key",
    "read_image",
]

IMAGE_SUFFIXES = (*TIFF_SUFFIXES, *IMAGEIO_SUFFIXES, *BIOIO_SUFFIXES)


@dataclass(frozen=True)
class Source:
    """One input: a file, or once planned (:func:`.images.fields.plan_fields`) one field
    of it: a scene and time point, its channels located.

    Attributes
    ----------
    path : Path
        Absolute path of the file (with channels in separate files: the first one).
    relative : str
        Path relative to the input folder, with ``/`` separators (the ``image`` column);
        with channels in separate files, the text in place of the pattern's ``*``.
    metadata : dict
        Values of the named groups of the metadata pattern.
    scene, t : int or None
        The field's scene and time point; None when no input of the run has several
        (then there is no such column).
    scene_name : str or None
        The scene's name as the file gives it.
    channel_index : tuple of (name, index)
        Where each named channel is in the file.
    channel_files : tuple of (name, path or None)
        With channels in separate files: each channel's file (None: missing).
    pixel_size : (z, y, x)
        Micrometres, None where the file does not say.
    problem : str or None
        Why this field cannot be read; its task fails with it.
    pixels : int or None
        How many values one field holds (every channel, plane, row and column), from the
        file's header: the estimate scales the first image's memory to the largest.
    """

    path: Path
    relative: str
    metadata: dict[str, Any] = field(default_factory=dict)
    scene: int | None = None
    t: int | None = None
    scene_name: str | None = None
    channel_index: tuple[tuple[str, int], ...] = ()
    channel_files: tuple[tuple[str, str | None], ...] = ()
    pixel_size: tuple[float | None, float | None, float | None] = (None, None, None)
    problem: str | None = None
    #: the field's values (channels x z x y x x) as its file's header says; None if unknown
    pixels: int | None = None
    #: the field's z planes, from its file's header; None if unknown
    planes: int | None = None
    #: ``'2D'`` or ``'3D'`` in a run that mixes both (a table column then); None otherwise
    dims: str | None = None

    @property
    def files(self) -> list[Path]:
        """Every file this input reads."""
        if self.channel_files:
            return [Path(p) for _, p in self.channel_files if p is not None]
        return [self.path]


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
    skip_folder: Callable[[Path], bool] | None = None,
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
    skip_folder : callable, optional
        Folders for which it returns True are not looked into (another run's folder
        inside the input folder, say).

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
    _check_pattern(pattern)
    regex = _compile_metadata(metadata)
    skip = [Path(p).expanduser().resolve() for p in exclude or []]
    walker = root.rglob if recursive else root.glob
    found = []
    seen: dict[Path, bool] = {}
    linked: list[str] = []
    for path in walker(pattern or "*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if recursive and path.is_symlink() and path.is_dir() and path.suffix.lower() not in IMAGE_SUFFIXES:
            linked.append(escaped(relative.as_posix()))  # not followed: a loop would never end
            continue
        if any(part.lower().endswith(".zarr") for part in relative.parts[:-1]):
            continue  # inside an OME-Zarr image
        suffix = path.suffix.lower()
        if pattern is None and suffix not in IMAGE_SUFFIXES:
            continue
        if any(path.resolve().is_relative_to(s) for s in skip):
            continue
        if skip_folder is not None and any(
            _skipped(root / p, skip_folder, seen) for p in list(relative.parents)[:-1]
        ):
            continue
        name = escaped(relative.as_posix())
        if path.is_file() or (path.is_dir() and suffix == ".zarr"):
            found.append(Source(path=path, relative=name))
        elif not path.is_dir() or suffix in IMAGE_SUFFIXES:
            found.append(Source(path=path, relative=name, problem=_not_a_file(path, name)))
    if linked:
        linked.sort(key=natural_key)
        names = ", ".join(map(repr, linked[:3])) + (f" and {len(linked) - 3} more" if len(linked) > 3 else "")
        warnings.warn(
            f"{names}: a link to a folder, not looked into; give the folder itself as input, "
            "or link its files",
            stacklevel=2,
        )
    if not found:
        what = (
            f"matching {pattern!r}" if pattern else "with an image suffix (" + ", ".join(IMAGE_SUFFIXES) + ")"
        )
        if recursive:
            raise PipelineError(f"no files {what} in {str(root)!r} or its subfolders")
        if not any(entry.is_dir() for entry in _entries(root)):
            raise PipelineError(f"no files {what} in {str(root)!r}")
        raise PipelineError(
            f"no files {what} in {str(root)!r} (try looking in subfolders too)", options=("recursive",)
        )
    found.sort(key=lambda s: natural_key(s.relative))
    if regex is not None:
        found = [_with_metadata(s, regex) for s in found]
    return found


def _entries(folder: Path) -> list[Path]:
    """The entries of ``folder``; none if it cannot be listed."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _skipped(folder: Path, skip_folder: Callable[[Path], bool], seen: dict[Path, bool]) -> bool:
    if folder not in seen:
        seen[folder] = bool(skip_folder(folder))
    return seen[folder]


def escaped(text: str) -> str:
    """``text`` with the bytes of a file name that are not UTF-8 written as ``\\xff``
    (they come from the file system as surrogates, which no table or log can hold)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _check_pattern(pattern: str | None) -> None:
    """Refuse a pattern that would look outside the input folder."""
    if pattern is None:
        return
    if os.path.isabs(pattern) or pattern.startswith("~") or ".." in PurePath(pattern).parts:
        raise PipelineError(
            f"file pattern {pattern!r}: expected a pattern of file names inside the input folder "
            "(like '*.tif' or 'plate*/*.tif'), without '..', '~' or a leading '/'",
            options=("pattern",),
        )
    if not pattern.strip():
        raise PipelineError(
            "file pattern: expected a pattern like '*.tif', got an empty one", options=("pattern",)
        )


def _not_a_file(path: Path, name: str) -> str:
    """Why ``path``, named like an input, cannot be read as one."""
    if path.is_symlink() and not path.exists():
        return f"{name} is a broken link: it points to {escaped(os.readlink(path))!r}, which does not exist"
    if path.is_dir():
        return f"{name} is a folder, not an image file"
    return f"{name} is not a regular file (a device, pipe or socket)"


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
        values = dict(match.groupdict())  # text, always: "007" is not "7"
    return Source(source.path, source.relative, values)


def read_image(path: str | Path) -> np.ndarray:
    """Read the first scene and time point of an image file, singleton axes dropped.

    A single-channel image gives (Y, X) or (Z, Y, X); a multi-channel one (C, Y, X) or
    (C, Z, Y, X). Tasks read their fields through :func:`.images.fields.read_field`.

    Raises
    ------
    ImageReadError
        With a message that names the file and says what is wrong with it.
    """
    path = Path(path)
    data, _ = read_scene(path, 0, 0)
    image = np.squeeze(data, axis=tuple(i for i in (0, 1) if data.shape[i] == 1))
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise ImageReadError(f"{path.name} has non-numeric pixels (dtype {image.dtype})")
    return image
