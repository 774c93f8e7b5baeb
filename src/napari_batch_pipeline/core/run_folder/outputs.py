"""Writing one task's results into the run folder: saved stage images and table rows.

The worker of a task calls :func:`write_task_outputs` once its chain has run (or, in
the horizontal strategy, once its intermediates are complete); it is the only place
that writes them. Every file is written whole or not at all.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path
from .layout import RunLayout
from .tables import object_rows, summarize

__all__ = ["save_image", "write_task_outputs"]


def save_image(path: Path, data: np.ndarray, spacing: Sequence[float] | None = None) -> None:
    """Write an array as TIFF, whole or not at all (masks as uint8).

    Parameters
    ----------
    path : Path
        The target file.
    data : ndarray
        Any shape; a boolean mask is written as 0 and 1.
    spacing : sequence of float, optional
        The pixel size in micrometres, (y, x) or (z, y, x) for the last axes. It is
        written as OME-XML (``PhysicalSizeX/Y/Z``) and as the TIFF resolution tags, so
        that tifffile, bioio, Fiji and this package's reader all find it.
    """
    import tifffile

    if data.dtype == bool:
        data = data.astype(np.uint8)
    options: dict[str, Any] = {}
    if spacing is not None and data.ndim in (2, 3) and len(spacing) == data.ndim:
        *z, y, x = (float(v) for v in spacing)
        metadata: dict[str, Any] = {"axes": "ZYX"[-data.ndim :], "PhysicalSizeX": x, "PhysicalSizeY": y}
        metadata.update({"PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"})
        if z:
            metadata.update({"PhysicalSizeZ": z[0], "PhysicalSizeZUnit": "µm"})
        options = {
            "ome": True,
            "metadata": metadata,
            "resolution": (1e4 / y, 1e4 / x),
            "resolutionunit": "CENTIMETER",
            "photometric": "minisblack",
        }
    try:
        with atomic_path(path) as temporary:
            tifffile.imwrite(temporary, data, **options)
    except OSError as error:
        raise _as_disk_full(error, path, data.nbytes) from error


def _as_disk_full(error: OSError, path: Path, needed: int) -> OSError:
    """``error``, or an ENOSPC error when it is a short write for want of space (tifffile
    reports those as ``'N requested and M written'``, without an errno)."""
    if error.errno is not None:
        return error
    try:
        info = os.statvfs(path.parent)
    except OSError:
        return error
    if info.f_bavail * info.f_frsize >= needed:
        return error
    return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({error})", str(path))


def write_task_outputs(
    layout: RunLayout,
    saved: list[str],
    tables: list[str],
    outputs: Mapping[str, Any],
    *,
    key: str,
    image: str,
    stem: str,
    spacing: Sequence[float] | None = None,
    label: str,
    params: Mapping[str, Any],
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """Write a task's saved stage outputs and its rows of the table stages.

    Parameters
    ----------
    layout : RunLayout
        The run folder.
    saved, tables : list of str
        The stages whose output is saved, and the table stages.
    outputs : mapping
        Stage name to output (array or DataFrame); may be lazy, e.g. a dict-like
        that loads intermediates on access.
    key, image, stem, spacing, label, params, metadata
        The task: its identity, ``image`` column, output name (see
        :func:`.layout.output_stem`), pixel size, parameter-set label, swept parameters
        and the columns that say where its image comes from.

    Returns
    -------
    dict
        The task's summary values for ``images.csv``.

    Raises
    ------
    OSError
        If a file cannot be written (nothing half-written is left).
    """
    for stage in saved:
        save_image(layout.output(stage, stem), outputs[stage], spacing)
    summary: dict[str, Any] = {}
    for stage in tables:
        table = outputs[stage]
        with atomic_path(layout.part(stage, key)) as temporary:
            object_rows(image, params, metadata, table).to_csv(temporary, index=False)
        summary.update(summarize(stage, table))
    return summary
