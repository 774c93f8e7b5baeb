"""A run folder read back: saved stage outputs as lazy stacks, the tables, and plot data.

(The plot of a measurement against a swept parameter is :mod:`.sweep_plot`.)

Nothing here holds more than one image at a time: saved outputs become dask arrays
whose blocks are read from their TIFF files only when a viewer (or a computation)
asks for them, so opening a run of 1,000 images costs a directory listing and 1,000
TIFF headers. Qt- and napari-free: the reader and the widgets build on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import PipelineError
from .pipeline import Pipeline
from .plan import output_stem, param_label
from .sources import read_image

__all__ = [
    "RunResults",
    "SavedOutputs",
    "is_run_folder",
    "lazy_stack",
    "measurement_columns",
    "measurement_values",
    "object_counts",
    "output_stem",
    "param_columns",
    "task_label",
    "task_outputs",
]

#: files that mark a folder as a run folder
MARKERS = ("pipeline.yaml", "images.csv")
#: columns of images.csv and <stage>.csv that are bookkeeping, not measurements
_BOOKKEEPING = {"image", "status", "error", "seconds", "label", "index"}


def is_run_folder(path: str | Path) -> bool:
    """True if ``path`` is a folder holding ``pipeline.yaml`` and ``images.csv``."""
    path = Path(path)
    return path.is_dir() and all((path / name).is_file() for name in MARKERS)


def task_label(key: str) -> str:
    """The parameter-set label inside a task key (``'a.tif|blurred.sigma=2.0'``), or ``''``."""
    return key.partition("|")[2]


def lazy_stack(
    paths: Sequence[str | Path],
    shape: tuple[int, ...],
    dtype: Any,
    reader: Callable[[str], np.ndarray] | None = None,
) -> Any:
    """A dask array stacking TIFF files of one shape, each read only when needed.

    Parameters
    ----------
    paths : sequence of path
        The files, in stack order.
    shape : tuple of int
        The shape every file holds, e.g. ``(M, N)``.
    dtype : numpy dtype
        Their dtype.
    reader : callable, optional
        ``reader(path) -> ndarray``; default: ``tifffile.imread``.

    Returns
    -------
    (len(paths), *shape) dask array
        One block per file; building it reads nothing.
    """
    import dask.array as da

    files = [str(p) for p in paths]
    read_file = reader or _read_tiff
    if not files:
        raise ValueError("lazy_stack needs at least one file, got none")

    def read(block_id: tuple[int, ...] | None = None) -> np.ndarray:
        assert block_id is not None
        return np.asarray(read_file(files[block_id[0]])).reshape(shape)[np.newaxis]

    chunks = ((1,) * len(files), *((n,) for n in shape))
    return da.map_blocks(read, chunks=chunks, dtype=dtype, meta=np.empty((0,) * (len(shape) + 1), dtype))


def _read_tiff(path: str) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def _image_header(path: Path) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape (singleton axes dropped) and dtype of an image file, or None if unreadable.

    Reads only the header: TIFF through tifffile, other formats through imageio.
    """
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
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


def _load(
    result: SavedOutputs,
    found: Sequence[tuple[str, Path]],
    max_separate: int,
    reader: Callable[[str], np.ndarray],
) -> SavedOutputs:
    """Fill ``result`` with one lazy stack of ``found`` (name, path) pairs, or separate arrays."""
    headers = [_image_header(path) for _, path in found]
    readable = [
        (name, path, header)
        for (name, path), header in zip(found, headers, strict=True)
        if header is not None
    ]
    result.left_out = len(found) - len(readable)
    if not readable:
        return result
    if len({header for _, _, header in readable}) == 1:
        shape, dtype = readable[0][2]
        result.names = [name for name, _, _ in readable]
        result.stack = lazy_stack([path for _, path, _ in readable], shape, dtype, reader)
        return result
    for name, path, (shape, dtype) in readable[:max_separate]:
        result.names.append(name)
        result.separate.append(lazy_stack([path], shape, dtype, reader)[0])
    result.left_out += max(0, len(readable) - max_separate)
    return result


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
    """

    stage: str
    kind: str
    names: list[str] = field(default_factory=list)
    stack: Any = None
    separate: list[Any] = field(default_factory=list)
    left_out: int = 0

    @property
    def is_labels(self) -> bool:
        return self.kind in ("mask", "labels")


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
        self.path = Path(path).expanduser().resolve()
        if not is_run_folder(self.path):
            raise PipelineError(
                f"{str(self.path)!r} is not a run folder: expected {' and '.join(MARKERS)} in it"
            )
        self.pipeline = Pipeline.from_yaml(self.path / "pipeline.yaml")

    # -- tables -------------------------------------------------------------------------

    @cached_property
    def images(self) -> pd.DataFrame:
        """images.csv: one row per task."""
        frame = pd.read_csv(self.path / "images.csv")
        if "error" in frame:
            frame["error"] = frame["error"].fillna("").astype(str)
        return frame

    @cached_property
    def provenance(self) -> dict[str, Any]:
        """run.json, or an empty mapping if it is missing or unreadable."""
        try:
            return dict(json.loads((self.path / "run.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    @property
    def table_stages(self) -> list[str]:
        return [s for s in self.pipeline.table_stages if (self.path / f"{s}.csv").is_file()]

    def table(self, stage: str) -> pd.DataFrame:
        """The per-object table ``<stage>.csv``."""
        return pd.read_csv(self.path / f"{stage}.csv")

    @property
    def param_columns(self) -> list[str]:
        """The swept parameter columns of images.csv (``'blurred.sigma'``), in sweep order."""
        return param_columns(list(self.images.columns), self.pipeline)

    @property
    def input_dir(self) -> Path | None:
        """The input folder the run read, if run.json names it."""
        folder = self.provenance.get("input_dir")
        return Path(folder) if folder else None

    # -- one task -----------------------------------------------------------------------

    def row_label(self, index: int) -> str:
        """The parameter-set label of row ``index`` of images.csv (``''`` without a sweep)."""
        row = self.images.iloc[index]
        return param_label({column: _scalar(row[column]) for column in self.param_columns})

    def row_name(self, index: int) -> str:
        """A readable name of row ``index``: ``'a.tif'`` or ``'a.tif [blurred.sigma=2.0]'``."""
        image = str(self.images.iloc[index]["image"])
        label = self.row_label(index)
        return f"{image} [{label}]" if label else image

    def input_path(self, index: int) -> Path | None:
        """The input image of row ``index``, if the input folder is known."""
        folder = self.input_dir
        return folder / str(self.images.iloc[index]["image"]) if folder else None

    def task_outputs(self, index: int) -> dict[str, Path]:
        """The saved outputs of row ``index`` that exist, by stage."""
        image = str(self.images.iloc[index]["image"])
        return task_outputs(self.path, self.pipeline, image, self.row_label(index))

    # -- every task ---------------------------------------------------------------------

    def done_rows(self) -> list[int]:
        """Row numbers of images.csv whose task is done."""
        images = self.images
        return list(images.index[images["status"] == "done"]) if "status" in images else []

    def saved_outputs(self, stage: str, *, max_separate: int = 20) -> SavedOutputs:
        """The saved outputs of ``stage`` for every done task, as lazy arrays.

        Parameters
        ----------
        stage : str
            A stage with ``save: true``.
        max_separate : int
            When the outputs differ in shape or dtype, load at most this many, one
            array each.
        """
        found = []
        for index in self.done_rows():
            stem = output_stem(str(self.images.at[index, "image"]), self.row_label(index))
            path = self.path / stage / f"{stem}.tif"
            if path.is_file():
                found.append((self.row_name(index), path))
        return _load(SavedOutputs(stage, self.pipeline[stage].returns), found, max_separate, _read_tiff)

    def saved_inputs(self, *, max_separate: int = 20) -> SavedOutputs:
        """The input images of the done tasks, as lazy arrays in the same order as the outputs.

        Empty when run.json does not name the input folder or the files are gone.
        """
        found = []
        for index in self.done_rows():
            path = self.input_path(index)
            if path is not None and path.is_file():
                found.append((self.row_name(index), path))
        return _load(SavedOutputs("input", "image"), found, max_separate, read_image)

    def object_counts(self, stage: str | None = None) -> pd.DataFrame:
        """Objects per task: see :func:`object_counts`."""
        return object_counts(self.images, stage or (self.table_stages or [""])[0], self.param_columns)


def param_columns(columns: Sequence[str], pipeline: Pipeline) -> list[str]:
    """The columns named ``<stage>.<param>`` for a parameter of ``pipeline``."""
    params = {f"{s.name}.{p}" for s in pipeline.stages for p in s.params}
    return [c for c in columns if c in params]


def task_outputs(output_dir: str | Path, pipeline: Pipeline, image: str, label: str = "") -> dict[str, Path]:
    """The saved outputs of one task that exist, by stage.

    Parameters
    ----------
    output_dir : path
        The run folder.
    pipeline : Pipeline
        The pipeline that was run.
    image, label : str
        The task's ``image`` (relative path) and parameter-set label.
    """
    stem = output_stem(image, label)
    paths = {stage: Path(output_dir) / stage / f"{stem}.tif" for stage in pipeline.saved_stages}
    return {stage: path for stage, path in paths.items() if path.is_file()}


# -- plot data --------------------------------------------------------------------------


def measurement_columns(table: pd.DataFrame, pipeline: Pipeline | None = None) -> list[str]:
    """The numeric measurement columns of a table: not image, label, status or parameters."""
    skip = set(_BOOKKEEPING)
    if pipeline is not None:
        skip |= set(param_columns(list(table.columns), pipeline))
    return [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]


def object_counts(images: pd.DataFrame, stage: str, params: Sequence[str] = ()) -> pd.DataFrame:
    """Objects per task from images.csv, for a bar chart.

    Parameters
    ----------
    images : DataFrame
        images.csv.
    stage : str
        The table stage whose ``<stage>.count`` column counts the objects.
    params : sequence of str
        Parameter columns, appended to each task's name.

    Returns
    -------
    DataFrame
        Columns ``name`` and ``count``, done tasks only, in images.csv order.
    """
    column = f"{stage}.count"
    if column not in images:
        return pd.DataFrame({"name": pd.Series(dtype=str), "count": pd.Series(dtype=float)})
    done = images[images["status"] == "done"] if "status" in images else images
    names = [
        str(row["image"]) + (" [" + param_label({p: _scalar(row[p]) for p in params}) + "]" if params else "")
        for _, row in done.iterrows()
    ]
    return pd.DataFrame({"name": names, "count": done[column].to_numpy(dtype=float)})


def measurement_values(table: pd.DataFrame, column: str) -> np.ndarray:
    """The finite values of a numeric column, for a histogram.

    Raises
    ------
    ValueError
        If the column is missing or not numeric.
    """
    if column not in table:
        raise ValueError(
            f"no column {column!r} in the table; its columns are {', '.join(map(str, table.columns))}"
        )
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _scalar(value: Any) -> Any:
    """A pandas cell as the plain Python value the run labelled its files with."""
    return value.item() if isinstance(value, np.generic) else value
