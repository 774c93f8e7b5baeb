"""What a screen needs before it concludes: its settings, flagged images, controls, plates.

Definitions (DESIGN, "Screens"), over the per-image measurements of images.csv (each
``<stage>.count`` and ``<stage>.mean_<measurement>``), taking only images that are done
and not flagged:

- ``flagged``: the quality rules an image breaks (see :mod:`..pipeline.quality`), joined
  by ``; ``; empty for an image that breaks none, and for one that did not finish.
- controls: ``COLUMN=VALUE`` names the images whose column equals the value (as text, or
  as numbers).
- replicates: the wells, each the median (or mean) of its usable fields, when the run
  knows wells; else the usable images (see :mod:`.wells`); :mod:`.scores` scores them.

This module owns those names. It computes; :mod:`.conclusions` reads and writes.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PipelineError
from ..pipeline.quality import COUNT, QualityRule, parse_quality
from ..run_folder.records import DONE
from ..run_folder.tables import (
    BOOKKEEPING,
    ERROR,
    FLAGGED,
    IMAGE,
    PLATE,
    SECONDS,
    STATUS,
    WELL,
    count_column,
    mean_column,
)
from .annotations import (
    Annotations,
    check_positions,
    matching,
    number_twin,
    read_annotations,
    with_wells,
)
from .summary import ALL, OBJECTS, TASKS_DONE, TASKS_FAILED, TASKS_FLAGGED, measurements
from .wells import FIELDS, FIELDS_FLAGGED, LEVEL, check_well_aggregate

__all__ = [
    "TABLE_FORMATS",
    "Control",
    "ScreenSettings",
    "check_controls",
    "check_screen",
    "check_table_format",
    "choose_readout",
    "flag_images",
    "flag_measured",
    "per_image_measurements",
    "plates",
    "refuse_number_twins",
    "settings_from_record",
]

TABLE_FORMATS = ("csv", "parquet")
#: columns an annotation may not take: those the run writes itself
RUN_COLUMNS = frozenset(
    {*BOOKKEEPING, IMAGE, STATUS, ERROR, SECONDS, FLAGGED, TASKS_DONE, TASKS_FAILED, TASKS_FLAGGED, OBJECTS}
    | {FIELDS, FIELDS_FLAGGED, LEVEL}
)
_FLAG_SEPARATOR = "; "


@dataclass(frozen=True)
class Control:
    """The control images of a screen: those whose ``column`` equals ``value``."""

    column: str
    value: str

    @classmethod
    def parse(cls, text: str, option: str) -> Control:
        """``'control=negative'`` -> ``Control('control', 'negative')``.

        Raises
        ------
        PipelineError
            If ``text`` is not ``COLUMN=VALUE``, naming ``option``.
        """
        column, equals, value = str(text).partition("=")
        if not equals or not column.strip() or not value.strip():
            raise PipelineError(
                f"{option.replace('_', ' ')}: expected COLUMN=VALUE (e.g. control=DMSO), got {text!r}",
                options=(option,),
            )
        return cls(column.strip(), value.strip())

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of ``frame`` are this control."""
        return matching(frame, {self.column: self.value})

    def __str__(self) -> str:
        return f"{self.column}={self.value}"


@dataclass(frozen=True)
class ScreenSettings:
    """How a run's tables are concluded: its plate map, controls and table format.

    Attributes
    ----------
    annotations : Path or None
        The plate map (see :mod:`.annotations`).
    negative, positive : Control or None
        The control images; a positive control needs a negative one.
    table_format : {'csv', 'parquet'}
        ``parquet``: every table also as ``<table>.parquet``.
    quality : tuple of QualityRule or None
        Rules that replace the pipeline's (None: the pipeline's own).
    well_aggregate : {'median', 'mean'}
        How the fields of a well become its row of wells.csv (see :mod:`.wells`).
    readout : str or None
        The measurement the screen is about, instead of the pipeline's ``screen:
        readout`` (see :func:`choose_readout`); None: the pipeline's.
    """

    annotations: Path | None = None
    negative: Control | None = None
    positive: Control | None = None
    table_format: str = "csv"
    quality: tuple[QualityRule, ...] | None = field(default=None)
    well_aggregate: str = "median"
    readout: str | None = None

    def __post_init__(self) -> None:
        check_well_aggregate(self.well_aggregate)
        if self.table_format not in TABLE_FORMATS:
            raise PipelineError(
                f"table format {self.table_format!r}: expected one of {', '.join(TABLE_FORMATS)}",
                options=("table_format",),
            )
        if self.positive is not None and self.negative is None:
            raise PipelineError(
                f"positive control {self.positive}: Z' compares it with a negative control; name one too",
                options=("positive_control", "negative_control"),
            )

    def describe(self) -> dict[str, Any]:
        """What run.json records (see :meth:`from_record`)."""
        return {
            "annotations": str(self.annotations) if self.annotations else None,
            "negative_control": str(self.negative) if self.negative else None,
            "positive_control": str(self.positive) if self.positive else None,
            "table_format": self.table_format,
            "quality": [rule.to_dict() for rule in self.quality] if self.quality is not None else None,
            "well_aggregate": self.well_aggregate,
            "readout": self.readout,
        }


def per_image_measurements(images: pd.DataFrame, table_stages: Sequence[str]) -> list[str]:
    """The per-image measurement columns of images.csv, stage by stage: ``<stage>.count``,
    then its ``<stage>.mean_<measurement>`` columns."""
    columns = []
    for stage in table_stages:
        if count_column(stage) in images.columns:
            columns.append(count_column(stage))
        columns += [mean_column(s, m) for s, m in measurements(images, [stage])]
    return columns


def flag_images(images: pd.DataFrame, rules: Sequence[QualityRule]) -> pd.Series:
    """The ``flagged`` column: the rules each done image breaks, ``'; '``-joined.

    A measurement that is not a column of ``images`` (a user's stage that does not give
    it; no image done) is missing for every image: it cannot be judged, which breaks the
    rule (the pipeline file's rules on built-in stages are checked when it loads).
    """
    flags: list[list[str]] = [[] for _ in range(len(images))]
    done = (images[STATUS] == DONE).to_numpy()
    for rule in rules:
        if rule.measurement == COUNT:
            column = count_column(rule.stage)
        else:
            column = mean_column(rule.stage, rule.measurement)
        values = np.full(len(images), np.nan)
        if column in images.columns:
            values = pd.to_numeric(images[column], errors="coerce").to_numpy(dtype=float)
        for position in np.flatnonzero(done):
            broken = rule.broken(float(values[position]))
            if broken:
                flags[position].append(broken)
    return pd.Series([_FLAG_SEPARATOR.join(f) for f in flags], index=images.index, dtype=object)


def flag_measured(measured: Mapping[str, Any], rules: Sequence[QualityRule]) -> str:
    """The ``flagged`` cell of one done image from its per-image measurements (``{<stage>
    .count: n, <stage>.mean_<measurement>: value}``, as images.csv holds them): judged
    as :func:`flag_images` judges a row of images.csv."""
    frame = pd.DataFrame([{STATUS: DONE, **measured}])
    return str(flag_images(frame, rules).iloc[0])


def choose_readout(columns: Sequence[str], named: str | None) -> tuple[str, str]:
    """The measurement a screen's figures show and the words that say why.

    Parameters
    ----------
    columns : sequence of str
        The run's per-image measurements (:func:`per_image_measurements`), not empty.
    named : str or None
        The readout named (the readout option, else the pipeline's ``screen: readout``).

    Returns
    -------
    column : str
        ``named`` when the run measured it; else the default: the first mean
        measurement (the first count when there is none).
    note : str
        What the figures say of it: ``the screen's readout``, or what is shown instead
        and why.
    """
    if named is not None and named in columns:
        return named, "the screen's readout"
    first = next((c for c in columns if ".mean_" in c), columns[0])
    if named is not None:
        return first, f"the readout {named} was not measured: the first measurement instead"
    return first, "no readout named (screen: readout, or the readout option): the first measurement"


def plates(images: pd.DataFrame) -> pd.Series:
    """Each image's plate: the ``plate`` column as text, else ``all``."""
    if PLATE not in images.columns:
        return pd.Series(ALL, index=images.index, dtype=object)
    return images[PLATE].astype(object).where(images[PLATE].notna(), "").astype(str)


def check_controls(frame: pd.DataFrame, controls: Mapping[str, Control | None]) -> None:
    """Refuse a control whose column is not in ``frame`` or that matches none of its rows.

    Parameters
    ----------
    frame : DataFrame
        One row per image, with the columns the tables will have (image, parameters,
        metadata, annotations, row and column).
    controls : mapping of str to Control or None
        By option name (``negative_control``, ``positive_control``).

    Raises
    ------
    PipelineError
        Naming the control, and the columns or the values there are.
    """
    for option, control in controls.items():
        if control is None:
            continue
        name = option.replace("_", " ")
        if control.column not in frame.columns:
            raise PipelineError(
                f"{name} {control}: no column {control.column!r} in this run's tables; "
                f"its columns are {', '.join(map(str, frame.columns))}",
                options=(option,),
            )
        if not control.mask(frame).any():
            twin = number_twin(frame, {control.column: control.value})
            if twin is not None:
                raise PipelineError(
                    f"{name} {control} matches no image: values match as text, and "
                    f"{control.column!r} holds {twin[2]!r}, equal to {twin[1]!r} only as a number; "
                    "write the value as the tables do",
                    options=(option,),
                )
            values = sorted({str(v) for v in frame[control.column].dropna()})[:12]
            raise PipelineError(
                f"{name} {control} matches no image; {control.column!r} holds "
                f"{', '.join(values) or 'nothing'}",
                options=(option,),
            )


def check_screen(
    frame: pd.DataFrame, settings: ScreenSettings, keys: Collection[str], *, limited: bool = False
) -> Annotations | None:
    """Refuse, before anything runs, a plate map or a control that does not fit the images:
    a row of the plate map that matches no image (unless the run is ``limited`` to its
    first images), an annotation named as a column of the run, a well that is not a
    well, a control naming no column or no image.

    Parameters
    ----------
    frame : DataFrame
        One row per task, with the columns its tables will have before the plate map
        (images.csv without results).
    settings : ScreenSettings
    keys : collection of str
        The columns a plate map may key its rows by (folder, image, metadata fields).

    Returns
    -------
    Annotations or None
        The plate map, read.

    Raises
    ------
    PipelineError
        Naming the row, column, well or control.
    """
    check_table_format(settings.table_format)
    if WELL in frame.columns:  # a metadata field: every table gets row and column from it
        with_wells(frame, options=("metadata",))
    annotations = None
    if settings.annotations is not None:
        taken = {*RUN_COLUMNS, *(c for c in frame.columns if c not in keys)}
        annotations = read_annotations(settings.annotations, keys=keys, taken=taken)
        unmatched = annotations.unmatched_rows(frame)
        if not limited:
            refuse_number_twins(annotations, frame)
        if unmatched and not limited:
            cells = ", ".join(f"{k}={v}" for k, v in annotations.rows[unmatched[0] - 1][0].items())
            more = f" ({len(unmatched)} rows match none)" if len(unmatched) > 1 else ""
            raise PipelineError(
                f"plate map {settings.annotations.name!r}, row {unmatched[0]} ({cells}) matches no "
                f"image{more}",
                options=("annotations",),
            )
        frame = annotations.join(frame)
    controls = {"negative_control": settings.negative, "positive_control": settings.positive}
    placed = with_wells(frame)
    check_controls(placed, controls)
    if settings.negative is not None:  # the plates' heat maps place each image by its well
        check_positions(placed, ("annotations",) if settings.annotations is not None else ("metadata",))
    return annotations


def refuse_number_twins(annotations: Annotations, frame: pd.DataFrame) -> None:
    """Refuse a plate map row that matches no row of ``frame`` as text but would as
    numbers (``7`` and ``007``): keys match as text.

    Raises
    ------
    PipelineError
        Naming the row, the column, its cell and the value of ``frame`` it equals.
    """
    for number in annotations.unmatched_rows(frame):
        twin = number_twin(frame, annotations.rows[number - 1][0])
        if twin is not None:
            column, cell, value = twin
            raise PipelineError(
                f"plate map {annotations.path.name!r}, row {number} ({column}={cell}) matches no "
                f"image: keys match as text, and {cell!r} equals the images' {column} {value!r} "
                f"only as a number; write it as the images do ({value!r})",
                options=("annotations",),
            )


def check_table_format(table_format: str) -> None:
    """Refuse, before anything is written, a table format this Python cannot write.

    Raises
    ------
    PipelineError
        For ``parquet`` without pyarrow, with the line to install it.
    """
    if table_format != "parquet":
        return
    try:  # by name: an exported script imports pyarrow only for Parquet, as its docstring says
        importlib.import_module("pyarrow")
    except ImportError as error:
        raise PipelineError(
            f"the Parquet table format needs pyarrow: pip install pyarrow ({error})",
            options=("table_format",),
        ) from None


def settings_from_record(record: Mapping[str, Any] | None, stages: Collection[Any] = ()) -> ScreenSettings:
    """The settings run.json recorded (see :meth:`ScreenSettings.describe`); default
    settings for a run that recorded none."""
    if not isinstance(record, Mapping):
        return ScreenSettings()
    negative, positive = record.get("negative_control"), record.get("positive_control")
    quality = record.get("quality")
    return ScreenSettings(
        annotations=Path(record["annotations"]) if record.get("annotations") else None,
        negative=Control.parse(negative, "negative_control") if negative else None,
        positive=Control.parse(positive, "positive_control") if positive else None,
        table_format=str(record.get("table_format") or "csv"),
        quality=parse_quality(quality, list(stages)) if quality is not None else None,
        well_aggregate=str(record.get("well_aggregate") or "median"),
        readout=str(record["readout"]) if record.get("readout") else None,
    )
