"""Fields: what one task reads. Each scene and time point of a file is one field; its
channels are named by the pipeline (or it is the single channel ``input``).

:func:`plan_fields` turns the files found in a folder into fields before anything runs
(it opens each file's header, never its pixels); :func:`read_field` reads one field in
the worker, as the arrays the pipeline's stages take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import PipelineError
from .channels import Channel, channel_lines, match_channel_file, resolve_channels
from .formats import FileInfo, ImageReadError, SceneInfo, probe, read_pixels, read_scene
from .sources import Source, natural_key

__all__ = ["DIMS", "FIELD_COLUMNS", "Field", "field_columns", "plan_fields", "read_field", "spacing_of"]

SCENE, SCENE_NAME, TIME = "scene", "scene_name", "t"
#: ``2D`` or ``3D``: a column of runs that mix both, whose areas and volumes never pool
DIMS = "dims"
PIXEL_SIZE_COLUMNS = ("pixel_size_z", "pixel_size_y", "pixel_size_x")
#: columns the fields add to the tables (and ``file.<channel>``): no metadata group may take them
FIELD_COLUMNS = (SCENE, SCENE_NAME, TIME, DIMS, *PIXEL_SIZE_COLUMNS)
FILE_PREFIX = "file."


@dataclass(frozen=True)
class Field:
    """One field as the pipeline takes it.

    Attributes
    ----------
    images : dict of str to ndarray
        Each named channel (or ``input``) as (Y, X) or (Z, Y, X).
    spacing : tuple of float or None
        The pixel size matching the images' dimensions, in micrometres; None if unknown.
    """

    images: dict[str, np.ndarray]
    spacing: tuple[float, ...] | None


def plan_fields(files: Sequence[Source], channels: Sequence[Channel], input_name: str) -> list[Source]:
    """Every field of the files found, in order: file by file, scene by scene, time point
    by time point.

    Parameters
    ----------
    files : list of Source
        The files found in the input folder (:func:`~..sources.find_images`).
    channels : list of Channel
        The pipeline's named channels; empty when it names none.
    input_name : str
        The name of a single-channel input (``input``).

    Raises
    ------
    PipelineError
        Before anything runs: a multi-channel file for a pipeline that names no
        channels (listing them, with the lines to add); channel names a file lacks;
        metadata groups named like a field column.
    """
    for source in files[:1]:
        taken = sorted(set(source.metadata) & set(FIELD_COLUMNS))
        if taken:
            raise PipelineError(
                f"metadata group {taken[0]!r} is a column the run writes itself; rename the group"
            )
    if channels and channels[0].file is not None:
        files = _group_channel_files(files, channels)
    described = [(source, _describe(source)) for source in files]
    scenes = any(isinstance(info, FileInfo) and len(info.scenes) > 1 for _, info in described)
    times = any(isinstance(info, FileInfo) and any(s.times > 1 for s in info.scenes) for _, info in described)
    fields: list[Source] = []
    for source, info in described:
        if not isinstance(info, FileInfo):  # unreadable: one field that fails with the reason
            fields.append(replace(source, scene=0 if scenes else None, t=0 if times else None, problem=info))
            continue
        for index, scene in enumerate(info.scenes):
            located = _locate(source, scene, channels, input_name)
            for t in range(scene.times):
                fields.append(
                    replace(
                        located,
                        scene=index if scenes else None,
                        t=t if times else None,
                        scene_name=scene.name if scenes else None,
                        pixel_size=scene.pixel_size,
                        pixels=_pixels(scene.sizes),
                        planes=int(scene.sizes.get("Z", 1)),
                    )
                )
    if len({f.planes > 1 for f in fields if f.planes}) > 1:  # 2D and 3D: say which is which
        fields = [replace(f, dims=("3D" if f.planes > 1 else "2D") if f.planes else None) for f in fields]
    return fields


def _pixels(sizes: dict[str, int]) -> int | None:
    """The values of one field (one scene, one time point) of a file with these sizes."""
    count = 1
    for axis, size in sizes.items():
        if axis.upper() not in ("T", "S"):
            count *= max(1, int(size))
    return count if sizes else None


def _describe(source: Source) -> FileInfo | str:
    if source.problem is not None:
        return source.problem
    try:
        return probe(source.path)
    except ImageReadError as error:
        return str(error)


def _locate(source: Source, scene: SceneInfo, channels: Sequence[Channel], input_name: str) -> Source:
    """The source with its channels found in the file, or refused."""
    if source.channel_files:
        return source
    where = source.relative + (f" (scene {scene.name})" if scene.name != "Image:0" else "")
    if not channels:
        if scene.channels > 1:
            raise PipelineError(
                f"{where} has {scene.channels} channels, and the pipeline names none; add a "
                f"channels: section that names the ones it uses, for instance\n"
                f"{channel_lines(scene.channel_names, scene.channels)}\n"
                f"then use the names as stage inputs (inputs: {{image: <name>}})",
            )
        return replace(source, channel_index=((input_name, 0),))
    try:
        found = resolve_channels(channels, scene.channel_names, scene.channels, where)
    except PipelineError as error:
        return replace(source, problem=str(error))
    return replace(source, channel_index=tuple(found.items()))


def _group_channel_files(files: Sequence[Source], channels: Sequence[Channel]) -> list[Source]:
    """Files matching the channels' patterns, grouped by the text in place of ``*``."""
    groups: dict[str, dict[str, Source]] = {}
    for source in files:
        relative = PurePosixPath(source.relative)
        for channel in channels:
            assert channel.file is not None
            text = match_channel_file(channel.file, relative.name)
            if text is None:
                continue
            key = (relative.parent / text).as_posix() if str(relative.parent) != "." else text
            groups.setdefault(key, {})[channel.name] = source
            break
    if not groups:
        patterns = ", ".join(f"{c.name}: {c.file!r}" for c in channels)
        raise PipelineError(f"no file matches the channels' file patterns ({patterns})")
    grouped = []
    for key in sorted(groups, key=natural_key):
        members = groups[key]
        first = next(iter(members.values()))
        files_by_channel = tuple(
            (c.name, str(members[c.name].path) if c.name in members else None) for c in channels
        )
        missing = [c for c in channels if c.name not in members]
        problem = None
        if missing:
            problem = "; ".join(
                f"channel {c.name!r} has no file {c.file.replace('*', PurePosixPath(key).name)!r}"  # type: ignore[union-attr]
                for c in missing
            )
        grouped.append(
            replace(
                first,
                relative=key,
                channel_files=files_by_channel,
                channel_index=tuple((c.name, 0) for c in channels),
                problem=problem,
            )
        )
    return grouped


def field_columns(source: Source) -> dict[str, Any]:
    """The columns a field adds to every table: scene, time point, channel files, pixel size."""
    columns: dict[str, Any] = {DIMS: source.dims} if source.dims else {}
    if source.scene is not None:
        columns[SCENE] = source.scene
        columns[SCENE_NAME] = source.scene_name
    if source.t is not None:
        columns[TIME] = source.t
    for name, path in source.channel_files:
        columns[FILE_PREFIX + name] = Path(path).name if path is not None else None
    return columns


def pixel_columns(source: Source) -> dict[str, Any]:
    """``pixel_size_z/y/x`` where the file gives them."""
    return {column: size for column, size in zip(PIXEL_SIZE_COLUMNS, source.pixel_size, strict=True) if size}


def read_field(source: Source, input_name: str = "input") -> Field:
    """Read one field: each named channel (or ``input``) as (Y, X) or (Z, Y, X).

    A source that was not planned (:func:`plan_fields`) is read as one channel, named
    ``input_name``.

    Raises
    ------
    ImageReadError
        Naming the file (and the channel) and what is wrong.
    """
    if source.problem is not None:
        raise ImageReadError(source.problem)
    scene, t = source.scene or 0, source.t or 0
    images: dict[str, np.ndarray] = {}
    info: SceneInfo | None = None
    if source.channel_files:
        for name, path in source.channel_files:
            assert path is not None
            data = read_pixels(Path(path), scene, t)  # planned: the pixel size is the source's
            if data.shape[0] != 1:
                raise ImageReadError(
                    f"{Path(path).name} (channel {name!r}) has {data.shape[0]} channels; a file per "
                    "channel holds one"
                )
            images[name] = data[0]
    elif source.channel_index:  # planned: the file was probed, its pixel size is the source's
        data = read_pixels(source.path, scene, t)
        for name, index in source.channel_index:
            if index >= data.shape[0]:
                raise ImageReadError(f"{source.path.name} has no channel {index} (for {name!r})")
            images[name] = data[index]
    else:  # a file not planned: a single-channel image is the input
        data, info = read_scene(source.path, scene, t)
        if data.shape[0] > 1:
            raise ImageReadError(f"{source.path.name} has {data.shape[0]} channels; name them in channels:")
        images[input_name] = data[0]
    shapes = {image.shape for image in images.values()}
    if len(shapes) > 1:
        raise ImageReadError(
            f"{source.relative}: the channels have different shapes "
            + ", ".join(f"{name} {image.shape}" for name, image in images.items())
        )
    images = {name: _squeeze_z(image, source.relative) for name, image in images.items()}
    ndim = next(iter(images.values())).ndim
    pixel_size = info.pixel_size if info is not None else source.pixel_size
    return Field(images, spacing_of(pixel_size, ndim))


def _squeeze_z(image: np.ndarray, where: str) -> np.ndarray:
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise ImageReadError(f"{where} has non-numeric pixels (dtype {image.dtype})")
    return image[0] if image.shape[0] == 1 else image


def spacing_of(pixel_size: Sequence[float | None], ndim: int) -> tuple[float, ...] | None:
    """The (z, y, x) pixel size cut to ``ndim`` dimensions; None unless all are known."""
    sizes = tuple(pixel_size)[-ndim:]
    if len(sizes) != ndim or any(size is None for size in sizes):
        return None
    return tuple(float(size) for size in sizes)  # type: ignore[arg-type]
