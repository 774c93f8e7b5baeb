"""Every name and path of a run folder, and nothing else.

This module is the one place that knows how a run folder is laid out (see DESIGN, "Run
folder")::

    pipeline.yaml  run.json  images.csv  <stage>.csv  summary.csv  summary.png  errors.log
    wells.csv                                         screens: with wells
    normalized.csv  assay.csv  plate_<plate>.png      screens: with controls
    images.parquet  <stage>.parquet ...               with the Parquet table format
    <stage>/<image path without suffix>[__s<scene>][__t<time>][__<parameter set>].tif
    groups.csv  <group stage>/<group>.tif                              group stages
    intermediate/<stage>/<stage key>/<image stem>.npy|.csv          horizontal strategy
    .ledger.jsonl  .parts/<stage>/<task digest>.csv  .lock          bookkeeping

Writers, readers, the worker, the horizontal strategy and the reader plugin all ask
:class:`RunLayout` for a path instead of assembling one. Pure path arithmetic: nothing
here touches the disk.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "ASSAY_TABLE",
    "ERRORS_LOG",
    "GROUPS_TABLE",
    "IMAGES_TABLE",
    "INTERMEDIATE",
    "LEDGER",
    "LOCK_FILE",
    "MARKERS",
    "NORMALIZED_TABLE",
    "OUTPUT_SUFFIX",
    "PARQUET_SUFFIX",
    "PARTS",
    "PIPELINE_FILE",
    "PLATE_PLOT_PREFIX",
    "PROVENANCE_FILE",
    "SUMMARY_PLOT",
    "SUMMARY_TABLE",
    "SWEEP_PLOT",
    "TABLE_SUFFIX",
    "TILE_WORK",
    "RunLayout",
    "output_stem",
    "param_label",
    "path_stem",
]

PIPELINE_FILE = "pipeline.yaml"
PROVENANCE_FILE = "run.json"
IMAGES_TABLE = "images.csv"
ERRORS_LOG = "errors.log"
LEDGER = ".ledger.jsonl"
#: held while a run writes the folder: its pid and host (see ``run_folder.lock``)
LOCK_FILE = ".lock"
PARTS = ".parts"
INTERMEDIATE = "intermediate"
#: ``intermediate/tiles/``: the work folders of tiled tasks
TILE_WORK = "tiles"
OUTPUT_SUFFIX = ".tif"
#: a tiled image's saved output: an OME-Zarr store
ZARR_SUFFIX = ".ome.zarr"
TABLE_SUFFIX = ".csv"
ARRAY_SUFFIX = ".npy"
SWEEP_PLOT = "sweep.png"
SUMMARY_TABLE = "summary.csv"
SUMMARY_PLOT = "summary.png"
GROUPS_TABLE = "groups.csv"
NORMALIZED_TABLE = "normalized.csv"
#: ``wells.csv``: one row per plate and well, its fields aggregated (screens with wells)
WELLS_TABLE = "wells.csv"
ASSAY_TABLE = "assay.csv"
#: ``plate_<plate>.png``: one plate's heat map
PLATE_PLOT_PREFIX = "plate_"
PLOT_SUFFIX = ".png"
#: a table written as Parquet: ``images.parquet`` beside ``images.csv``
PARQUET_SUFFIX = ".parquet"
#: the files whose presence marks a folder as a run folder
MARKERS = (PIPELINE_FILE, IMAGES_TABLE)


#: double suffixes dropped whole: ``a.ome.tif`` -> ``a`` (an output named .ome.tif would not be OME)
_DOUBLE_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr", ".ome.btf")


def path_stem(relative: str) -> str:
    """``'plate 1/a.b.tif'`` -> ``'plate 1/a.b'``: a relative path without its last suffix
    (``a.ome.tif`` -> ``a``)."""
    for double in _DOUBLE_SUFFIXES:
        if relative.lower().endswith(double) and len(relative) > len(double):
            return relative[: -len(double)]
    suffix = PurePosixPath(relative).suffix
    return relative[: -len(suffix)] if suffix else relative


def param_label(params: Mapping[str, Any]) -> str:
    """A file-name friendly label of a parameter set: ``blurred.sigma=2,mask.method=otsu``.

    It names a task's outputs (``<image>__<label>.tif``) and completes its key.
    """
    return ",".join(f"{key}={_text(value)}" for key, value in params.items())


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_text(v) for v in value)
    text = str(value)
    return "".join(c if c.isalnum() or c in ".-_" else "-" for c in text)


def output_stem(image: str, label: str = "", scene: int | None = None, t: int | None = None) -> str:
    """The name (without suffix) of a task's saved outputs:
    ``<image stem>[__s<scene>][__t<time>][__<label>]``.

    Parameters
    ----------
    image : str
        The ``image`` column: the path relative to the input folder, ``/`` separated.
    label : str
        The task's parameter-set label, empty without a sweep.
    scene, t : int, optional
        The field's scene and time point, when the run has those columns.
    """
    stem = path_stem(image)
    if scene is not None:
        stem += f"__s{scene}"
    if t is not None:
        stem += f"__t{t}"
    return stem + ("__" + label if label else "")


#: the suffix of a pipeline version's run folder: a dash and 8 hexadecimal digits
_VERSION_SUFFIX = re.compile(r"-[0-9a-f]{8}$")


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder.

    Parameters
    ----------
    root : Path
        The run folder (absolute).
    """

    root: Path

    @staticmethod
    def version_folder(output_dir: str | Path, pipeline_hash: str) -> Path:
        """The run folder of one version of a pipeline beside ``output_dir``:
        ``<output>-<8 digits of the pipeline's hash>``, so that running that version again
        resumes its own run. A folder already named so loses its old digits first
        (``out-1a2b3c4d`` gives ``out-5e6f7a8b``, not ``out-1a2b3c4d-5e6f7a8b``)."""
        output_dir = Path(output_dir)
        base = _VERSION_SUFFIX.sub("", output_dir.name) or "run"
        return output_dir.with_name(f"{base}-{pipeline_hash[:8]}")

    @classmethod
    def at(cls, path: str | Path) -> RunLayout:
        """The layout of the folder ``path`` (made absolute; ``~`` expanded)."""
        return cls(Path(path).expanduser().resolve())

    # -- files of the run ---------------------------------------------------------------

    @property
    def pipeline_file(self) -> Path:
        return self.root / PIPELINE_FILE

    @property
    def provenance_file(self) -> Path:
        return self.root / PROVENANCE_FILE

    @property
    def images_table(self) -> Path:
        return self.root / IMAGES_TABLE

    @property
    def errors_log(self) -> Path:
        return self.root / ERRORS_LOG

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def parts_dir(self) -> Path:
        return self.root / PARTS

    @property
    def intermediate_dir(self) -> Path:
        return self.root / INTERMEDIATE

    @property
    def sweep_plot(self) -> Path:
        return self.root / SWEEP_PLOT

    @property
    def summary_table(self) -> Path:
        return self.root / SUMMARY_TABLE

    @property
    def summary_plot(self) -> Path:
        return self.root / SUMMARY_PLOT

    @property
    def groups_table(self) -> Path:
        """``groups.csv``: one row per group stage and group."""
        return self.root / GROUPS_TABLE

    def group_result(self, stage: str, group: str) -> Path:
        """``<stage>/<group>.tif``: the result of a group stage for one group."""
        return self.root / stage / f"{group}{OUTPUT_SUFFIX}"

    @property
    def wells_table(self) -> Path:
        return self.root / WELLS_TABLE

    @property
    def normalized_table(self) -> Path:
        return self.root / NORMALIZED_TABLE

    @property
    def assay_table(self) -> Path:
        return self.root / ASSAY_TABLE

    def plate_plot(self, plate: str) -> Path:
        """``plate_<plate>.png``: one plate's heat map (characters other than letters,
        digits, ``.-_`` become ``-``)."""
        return self.root / f"{PLATE_PLOT_PREFIX}{_text(plate)}{PLOT_SUFFIX}"

    @property
    def plate_plot_glob(self) -> str:
        """The pattern every plate's heat map matches, relative to the folder."""
        return f"{PLATE_PLOT_PREFIX}*{PLOT_SUFFIX}"

    @staticmethod
    def parquet(table: Path) -> Path:
        """The Parquet file of a table: ``images.csv`` -> ``images.parquet``."""
        return table.with_suffix(PARQUET_SUFFIX)

    def table(self, stage: str) -> Path:
        """``<stage>.csv``: the per-object table of a table stage."""
        return self.root / f"{stage}{TABLE_SUFFIX}"

    def stage_dir(self, stage: str) -> Path:
        """``<stage>/``: where a saved stage's outputs go."""
        return self.root / stage

    def output(self, stage: str, stem: str) -> Path:
        """``<stage>/<stem>.tif``: one saved output (``stem`` from :func:`output_stem`)."""
        return self.root / stage / f"{stem}{OUTPUT_SUFFIX}"

    def tiled_output(self, stage: str, stem: str) -> Path:
        """``<stage>/<stem>.ome.zarr``: one saved output of a tiled image (a folder)."""
        return self.root / stage / f"{stem}{ZARR_SUFFIX}"

    def tile_work(self, key: str) -> Path:
        """``intermediate/tiles/<task>/``: a tiled task's records, kept until it is done."""
        digest = hashlib.sha1(key.encode()).hexdigest()[:20]
        return self.root / INTERMEDIATE / TILE_WORK / digest

    def is_output(self, relative: str | PurePosixPath, stages: Collection[str] | None = None) -> bool:
        """Whether ``relative`` (to the folder) is named as a saved output is:
        ``<stage>/<stem>.tif`` or ``.ome.zarr``, with ``<stage>`` one of ``stages`` (any, if None)."""
        parts = PurePosixPath(relative).parts
        if len(parts) < 2 or ".." in parts or PurePosixPath(relative).is_absolute():
            return False
        if stages is not None and parts[0] not in stages:
            return False
        return any(
            parts[-1].endswith(suffix) and len(parts[-1]) > len(suffix)
            for suffix in (OUTPUT_SUFFIX, ZARR_SUFFIX)
        )

    def task_output(
        self, stage: str, image: str, label: str = "", scene: int | None = None, t: int | None = None
    ) -> Path:
        """The saved output of ``stage`` for the task of ``image`` (its scene and time
        point) with parameter set ``label``."""
        return self.output(stage, output_stem(image, label, scene, t))

    def part(self, stage: str, key: str) -> Path:
        """A task's rows of ``<stage>.csv``, written by its worker, joined at the end."""
        digest = hashlib.sha1(key.encode()).hexdigest()[:20]
        return self.root / PARTS / stage / f"{digest}{TABLE_SUFFIX}"

    def intermediate(self, stage: str, stage_key: str, field: str, *, table: bool) -> Path:
        """A horizontal intermediate: ``intermediate/<stage>/<stage key>/<field stem>.npy``.

        Parameters
        ----------
        stage_key : str
            The hash of the stage and everything upstream (``Pipeline.stage_key``).
        field : str
            The task's field: its output stem without the parameter set (the stage key
            already holds the parameters).
        table : bool
            A table (``.csv``) rather than an array (``.npy``).
        """
        suffix = TABLE_SUFFIX if table else ARRAY_SUFFIX
        return self.root / INTERMEDIATE / stage / stage_key / f"{field}{suffix}"

    # -- what the run wrote ---------------------------------------------------------------

    def written_by_run(self, table_stages: list[str]) -> list[Path]:
        """The run's own files and folders, with ``<stage>.csv`` of these table stages
        (not the saved outputs: the ledger lists those, file by file; not the horizontal
        intermediates, which a later run reuses by their keys)."""
        paths = [
            self.ledger,
            self.images_table,
            self.errors_log,
            self.provenance_file,
            self.parts_dir,
            self.summary_table,
            self.summary_plot,
            self.sweep_plot,
            self.groups_table,
            self.wells_table,
            self.normalized_table,
            self.assay_table,
        ]
        tables = [
            self.images_table,
            self.summary_table,
            self.wells_table,
            self.normalized_table,
            self.assay_table,
        ]
        tables += [self.table(stage) for stage in table_stages]
        return paths + [self.table(stage) for stage in table_stages] + [self.parquet(t) for t in tables]

    def is_run_folder(self) -> bool:
        """True if the folder holds ``pipeline.yaml`` and ``images.csv``."""
        return self.root.is_dir() and all((self.root / name).is_file() for name in MARKERS)
