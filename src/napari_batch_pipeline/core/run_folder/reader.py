"""Reading a run folder back: its tables, provenance, and each task's saved outputs.

Qt- and napari-free: the reader plugin, the widgets, the report of a finished batch
and the command line all read runs through :class:`RunResults`.
"""

from __future__ import annotations

import json
import os
import re
import stat
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PipelineError
from ..images.fields import PIXEL_SIZE_COLUMNS, SCENE, TIME
from ..images.formats import read_scene
from ..images.ome_zarr import is_store, store_within
from ..images.sources import read_image
from ..pipeline.model import Pipeline
from ..pipeline.recorded import load_recorded
from .groups import read_groups
from .layout import MARKERS, TABLE_SUFFIX, RunLayout, output_stem, param_label
from .lazy import (
    FieldFile,
    SavedOutputs,
    image_scale,
    large_input,
    load_pyramids,
    load_saved,
    read_field_file,
    read_tiff,
)
from .provenance import STAGE_RETURNS
from .tables import ERROR, IMAGE, STATUS, param_columns, read_table

__all__ = ["RunResults", "is_run_folder", "task_outputs"]


def is_run_folder(path: str | Path) -> bool:
    """True if ``path`` is a folder holding ``pipeline.yaml`` and ``images.csv``."""
    return RunLayout(Path(path)).is_run_folder()


class RunResults:
    """The results of a batch run folder (finished, cancelled or still running).

    Parameters
    ----------
    path : path
        The run folder: ``pipeline.yaml``, ``images.csv`` and the rest (see DESIGN).

    Raises
    ------
    PipelineError
        If ``path`` is not a run folder.
    """

    def __init__(self, path: str | Path):
        self.layout = RunLayout.at(path)
        self.path = self.layout.root
        if not self.layout.is_run_folder():
            raise PipelineError(
                f"{str(self.path)!r} is not a run folder: expected {' and '.join(MARKERS)} in it"
            )
        #: the run's pipeline, read without importing any module it names (see
        #: :mod:`..pipeline.recorded`): reading results runs nobody's code
        self.pipeline: Pipeline = load_recorded(self.layout.pipeline_file, returns=self._recorded_returns())

    def _recorded_returns(self) -> dict[str, str]:
        """What each stage returned, as run.json records it; for folders of earlier
        versions, ``table`` for the stages with a ``<stage>.csv``."""
        recorded = self.provenance.get(STAGE_RETURNS)
        if isinstance(recorded, dict):
            return {str(k): str(v) for k, v in recorded.items()}
        return {p.stem: "table" for p in self.path.glob(f"*{TABLE_SUFFIX}")}

    # -- tables -------------------------------------------------------------------------

    @cached_property
    def images(self) -> pd.DataFrame:
        """images.csv: one row per task."""
        frame = read_table(self.layout.images_table, self._metadata_groups)
        if ERROR in frame:
            frame[ERROR] = frame[ERROR].astype(object).where(frame[ERROR].notna(), "").astype(str)
        return frame

    @cached_property
    def provenance(self) -> dict[str, Any]:
        """run.json, or an empty mapping if it is missing or unreadable."""
        try:
            return dict(json.loads(self.layout.provenance_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    @property
    def table_stages(self) -> list[str]:
        return [s for s in self.pipeline.table_stages if self.layout.table(s).is_file()]

    def table(self, stage: str) -> pd.DataFrame:
        """The per-object table ``<stage>.csv``."""
        return read_table(self.layout.table(stage), self._metadata_groups)

    @property
    def param_columns(self) -> list[str]:
        """The swept parameter columns of images.csv (``'blurred.sigma'``), in sweep order:
        those that name the outputs (not the parameter table's)."""
        return list(self._param_columns[0])

    @property
    def all_param_columns(self) -> list[str]:
        """Every parameter column of images.csv: swept and from the parameter table."""
        return list(self._param_columns[1])

    @property
    def table_param_columns(self) -> list[str]:
        """The parameter columns the run's parameter table set (run.json records them)."""
        return list(self._param_columns[2])

    @cached_property
    def _param_columns(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(swept, all, the parameter table's) parameter columns: worked out once, since
        every row's name and label asks for them."""
        every = param_columns(list(self.images.columns), self.pipeline)
        recorded = (self.provenance.get("params") or {}).get("columns") or []
        table = [c for c in every if c in recorded]
        return tuple(c for c in every if c not in table), tuple(every), tuple(table)

    @property
    def metadata_columns(self) -> list[str]:
        """The columns of the metadata pattern's named groups (run.json records the pattern)."""
        return [c for c in self._metadata_groups if c in self.images.columns]

    @cached_property
    def _metadata_groups(self) -> list[str]:
        """The metadata pattern's named groups: text columns of every table."""
        pattern = self.provenance.get("metadata")
        try:
            return list(re.compile(pattern).groupindex) if isinstance(pattern, str) else []
        except re.error:
            return []

    @property
    def input_dir(self) -> Path | None:
        """The input folder the run read, if run.json names it."""
        folder = self.provenance.get("input_dir")
        return Path(folder) if folder else None

    # -- one task -----------------------------------------------------------------------

    @cached_property
    def _rows(self) -> list[dict[str, Any]]:
        return [{str(k): v for k, v in row.items()} for row in self.images.to_dict("records")]

    def row(self, index: int) -> dict[str, Any]:
        """Row ``index`` of images.csv as ``{column: value}`` (quick: the rows are read once)."""
        return self._rows[index]

    def row_label(self, index: int) -> str:
        """The parameter-set label of row ``index`` of images.csv (``''`` without a sweep)."""
        row = self.row(index)
        return param_label({column: _scalar(row[column]) for column in self._param_columns[0]})

    def row_field(self, index: int) -> tuple[int | None, int | None]:
        """The scene and time point of row ``index`` (None where the run has no such column)."""
        row = self.row(index)
        return tuple(  # type: ignore[return-value]
            int(row[column]) if column in row and pd.notna(row[column]) else None for column in (SCENE, TIME)
        )

    def row_stem(self, index: int) -> str:
        """The name of row ``index``'s saved outputs (see :func:`.layout.output_stem`)."""
        return output_stem(str(self.row(index)[IMAGE]), self.row_label(index), *self.row_field(index))

    def row_spacing(self, index: int) -> tuple[float, float, float] | None:
        """The (z, y, x) pixel size of row ``index`` in micrometres (1.0 where unknown);
        None when the file gave none."""
        row = self.row(index)
        sizes = [float(row[c]) if c in row and pd.notna(row[c]) else None for c in PIXEL_SIZE_COLUMNS]
        if all(size is None for size in sizes):
            return None
        return tuple(size if size is not None else 1.0 for size in sizes)  # type: ignore[return-value]

    def row_name(self, index: int) -> str:
        """A readable name of row ``index``: ``'a.tif'``, ``'a.czi s1 t0'`` or
        ``'a.tif [blurred.sigma=2.0]'``."""
        image = str(self.row(index)[IMAGE])
        scene, t = self.row_field(index)
        image += (f" s{scene}" if scene is not None else "") + (f" t{t}" if t is not None else "")
        label = self.row_label(index)
        return f"{image} [{label}]" if label else image

    def input_path(self, index: int) -> Path | None:
        """The input image of row ``index``, if the input folder is known."""
        folder = self.input_dir
        if folder is None:
            return None
        path = folder / str(self.row(index)[IMAGE])
        return path if _within(folder, path) else None  # a crafted images.csv leads nowhere else

    def task_outputs(self, index: int) -> dict[str, Path]:
        """The saved outputs of row ``index`` that exist, by stage: ``<stage>/<stem>.tif``,
        or a tiled image's OME-Zarr store ``<stage>/<stem>.ome.zarr`` (a folder; open it
        with :func:`.lazy.read_saved`)."""
        paths = {stage: self._output(stage, index) for stage in self.pipeline.saved_stages}
        return {stage: path for stage, path in paths.items() if path is not None}

    def _output(self, stage: str, index: int) -> Path | None:
        """Row ``index``'s output of ``stage`` (see :func:`_saved_output`)."""
        return _saved_output(self.layout, stage, self.row_stem(index))

    # -- every task ---------------------------------------------------------------------

    def done_rows(self) -> list[int]:
        """Row numbers of images.csv whose task is done."""
        images = self.images
        return list(images.index[images[STATUS] == "done"]) if STATUS in images else []

    def saved_outputs(self, stage: str, *, max_separate: int = 20) -> SavedOutputs:
        """The saved outputs of ``stage`` for every done task, as lazy arrays, each with
        the scale of its pixel size (:meth:`SavedOutputs.scale_of`); the OME-Zarr stores
        of tiled images as their levels (:attr:`SavedOutputs.pyramids`).

        Parameters
        ----------
        stage : str
            A stage with ``save: true``.
        max_separate : int
            When the outputs differ in shape or dtype, load at most this many, one
            array each.
        """
        found, stores = [], []
        within = _FilesWithin(self.path)
        for index in self.done_rows():
            stem = self.row_stem(index)
            path = self.layout.output(stage, stem)
            if within(path):
                found.append((self.row_name(index), path, self.row_spacing(index)))
                continue
            store = self.layout.tiled_output(stage, stem)
            if is_store(store) and store_within(self.path, store):
                stores.append((self.row_name(index), store, self.row_spacing(index)))
        saved = load_saved(SavedOutputs(stage, self.pipeline[stage].returns), found, max_separate, read_tiff)
        return load_pyramids(saved, stores, max_separate)

    def group_results(self) -> list[tuple[str, str, Path]]:
        """The saved results of group stages, as ``(stage, group, path)``, in the order of
        ``groups.csv``; none for a run without group stages."""
        found = []
        for stage, group in read_groups(self.layout):
            path = self.layout.group_result(stage, group)
            if path.is_file():
                found.append((stage, group, path))
        return found

    def group_result(self, path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
        """A group result's pixels, (Y, X) or (Z, Y, X), and its scale (its pixel size;
        None where it has none)."""
        data, info = read_scene(path, 0, 0)
        data = np.squeeze(data, axis=tuple(i for i in (0, 1) if data.shape[i] == 1))
        return data, image_scale(info.pixel_size, data.ndim)

    def saved_inputs(self, *, max_separate: int = 20) -> SavedOutputs:
        """The input images of the done tasks, as lazy arrays in the same order as the outputs.

        Each row's own field: in runs with scenes or time points, its scene and time
        point of the file. A large image (a plane of more than
        :data:`..images.lazy.LARGE_PLANE` pixels, in a format read region by region:
        TIFF, OME-Zarr) is a :class:`.lazy.Pyramid` of :attr:`SavedOutputs.pyramids`,
        nothing of it read but a few chunks for its contrast limits. Empty when run.json
        does not name the input folder or the files are gone.
        """
        fields = SCENE in self.images or TIME in self.images
        found: list[tuple[str, Path | FieldFile, Any]] = []
        saved = SavedOutputs("input", "image")
        folder = self.input_dir
        within = _FilesWithin(folder) if folder is not None else None
        for index in self.done_rows():
            path = folder / str(self.row(index)[IMAGE]) if folder is not None else None
            if path is None or folder is None or within is None:
                continue
            store = path.name.lower().endswith(".zarr") and store_within(folder, path)
            if not store and not within(path):
                continue
            scene, t = self.row_field(index)
            name, spacing = self.row_name(index), self.row_spacing(index)
            pyramid = large_input(name, path, scene or 0, t or 0, spacing)
            if pyramid is not None:  # at most max_separate of them, as of the stores of tiled images
                if len(saved.pyramids) < max_separate:
                    saved.pyramids.append(pyramid)
                else:
                    saved.left_out += 1
            elif not store:
                found.append((name, FieldFile(path, scene or 0, t or 0) if fields else path, spacing))
        reader = read_field_file if fields else read_image
        return load_saved(saved, found, max_separate, reader)


def task_outputs(
    output_dir: str | Path,
    pipeline: Pipeline,
    image: str,
    label: str = "",
    scene: int | None = None,
    t: int | None = None,
) -> dict[str, Path]:
    """The saved outputs of one task that exist, by stage: TIFF files, or the OME-Zarr
    stores of a tiled image (see :meth:`RunResults.task_outputs`).

    Parameters
    ----------
    output_dir : path
        The run folder.
    pipeline : Pipeline
        The pipeline that was run.
    image, label : str
        The task's ``image`` (relative path) and parameter-set label.
    scene, t : int, optional
        The task's scene and time point, when the run has those columns.
    """
    layout = RunLayout.at(output_dir)
    stem = output_stem(image, label, scene, t)
    paths = {stage: _saved_output(layout, stage, stem) for stage in pipeline.saved_stages}
    return {stage: path for stage, path in paths.items() if path is not None}


def _saved_output(layout: RunLayout, stage: str, stem: str) -> Path | None:
    """The saved output ``stem`` of ``stage`` that exists: the TIFF of a whole image, else
    the store of a tiled one; None where there is neither, or where it would lead out of
    the run folder (``../`` or an absolute path in images.csv, a link to elsewhere)."""
    path = layout.output(stage, stem)
    if path.is_file():
        return path if _within(layout.root, path) else None
    store = layout.tiled_output(stage, stem)
    return store if is_store(store) and store_within(layout.root, store) else None


def _scalar(value: Any) -> Any:
    """A pandas cell as the plain Python value the run labelled its files with."""
    return value.item() if isinstance(value, np.generic) else value


class _FilesWithin:
    """``within(path)``: whether ``path`` is an existing file inside ``root``, as
    ``path.is_file() and _within(root, path)`` says, for many files: the root and each
    folder are resolved once, a file that is no link costs one ``lstat``."""

    def __init__(self, root: Path):
        self.root = root
        self._inside: str | None = None  # the resolved root, ending in a separator
        self._folders: dict[str, str] = {}  # resolved folders, by their text

    def __call__(self, path: Path) -> bool:
        try:
            mode = os.lstat(path).st_mode
        except (OSError, ValueError):
            return False
        if stat.S_ISLNK(mode):  # resolved whole, as _within does
            return path.is_file() and _within(self.root, path)
        if not stat.S_ISREG(mode):
            return False
        try:
            if self._inside is None:
                self._inside = os.path.join(str(self.root.resolve()), "")
            parent = path.parent
            folder = self._folders.get(str(parent))
            if folder is None:
                folder = self._folders[str(parent)] = os.path.join(str(parent.resolve()), "")
        except (OSError, RuntimeError, ValueError):
            return False
        return folder.startswith(self._inside)  # the file itself is no link: its folder says


def _within(root: Path, path: Path) -> bool:
    """Whether ``path`` lies inside ``root``, links and ``..`` resolved."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        return False
