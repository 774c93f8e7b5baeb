"""A finished run's conclusions, written from its tables without recomputing an image.

After the tables of a run are written (and again by ``summarize``, with other settings):

1. the plate map's annotation columns, and ``row`` and ``column`` from a ``well``, join
   images.csv and every ``<stage>.csv`` (those of an earlier conclusion are dropped
   first: run.json records which columns were added);
2. images.csv gets ``flagged`` from the quality rules;
3. ``summary.csv`` and ``summary.png`` (flagged images left out);
4. with wells, ``wells.csv`` (see :mod:`.wells`); with a negative control,
   ``normalized.csv``; with both controls, ``assay.csv`` (both on wells when the run knows
   wells); with wells, ``plate_<plate>.png`` per plate;
5. with the Parquet table format, each table also as ``<table>.parquet``.

What was used is recorded under ``screen`` in run.json, so that a later ``summarize``
starts from it. Conclusions no longer asked for (a control dropped) are removed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import PipelineError
from ..files import atomic_path
from ..images.fields import FILE_PREFIX
from ..pipeline.quality import QUALITY_KEY, QualityRule
from ..pipeline.yaml_file import load_yaml, read_pipeline_text
from ..run_folder.layout import RunLayout
from ..run_folder.links import linked_folder
from ..run_folder.lock import RunLock
from ..run_folder.reader import RunResults
from ..run_folder.tables import COLUMN, FLAGGED, FOLDER, IMAGE, ROW, WELL, read_table
from ..run_folder.writer import RunFolder
from . import figure_imports
from .annotations import Annotations, check_positions, digit_ids, read_annotations, with_wells
from .plate_map import write_plate_plots
from .scores import assay_table, normalized_table
from .screen import (
    Control,
    ScreenSettings,
    check_controls,
    check_table_format,
    choose_readout,
    flag_images,
    per_image_measurements,
    refuse_number_twins,
    settings_from_record,
)
from .summary import begin_summary, check_group_by, read_summary
from .wells import knows_wells, well_table

__all__ = [
    "READOUT_SHOWN",
    "SCREEN_KEY",
    "conclude",
    "parquet_tables",
    "read_quality",
    "readout_shown",
    "recorded_settings",
    "rewrite_tables",
    "run_annotations",
    "screen_images",
    "screen_tables",
    "settings_with",
    "summarize",
]

#: run.json's record of the last conclusion (settings and the columns it added)
SCREEN_KEY = "screen"
_ADDED = "added_columns"
#: the record's readout the plate figures show (the one named, else the default)
READOUT_SHOWN = "readout_shown"
log = logging.getLogger(__name__)


def readout_shown(results: RunResults) -> str | None:
    """The readout the run's plate figures show (run.json), None before a screen's conclusion."""
    record = results.provenance.get(SCREEN_KEY)
    return str(record[READOUT_SHOWN]) if isinstance(record, dict) and record.get(READOUT_SHOWN) else None


def recorded_settings(results: RunResults) -> ScreenSettings:
    """The settings the run folder's last conclusion used (defaults if none)."""
    return settings_from_record(results.provenance.get(SCREEN_KEY), results.pipeline.stages)


def settings_with(
    run_dir: str | Path,
    annotations: str | Path | None = None,
    negative_control: str | None = None,
    positive_control: str | None = None,
    table_format: str | None = None,
    quality: str | Path | None = None,
    well_aggregate: str | None = None,
    readout: str | None = None,
) -> ScreenSettings:
    """The settings the run folder's last conclusion used, with those given instead (None:
    as recorded): a plate map, controls ``COLUMN=VALUE``, a table format, a YAML file of
    ``quality:`` rules (see :func:`read_quality`), how a well's fields are aggregated,
    the readout (a per-image measurement of the run).

    Raises
    ------
    PipelineError
        For a control that is not ``COLUMN=VALUE``, rules that do not fit the run, or a
        readout the run did not measure (naming those it did).
    """
    results = RunResults(run_dir)
    changes: dict[str, Any] = {}
    if annotations:
        changes["annotations"] = Path(annotations).expanduser().resolve()
    for name, text, option in (
        ("negative", negative_control, "negative_control"),
        ("positive", positive_control, "positive_control"),
    ):
        if text:
            changes[name] = Control.parse(text, option)
    if table_format:
        changes["table_format"] = table_format
    if quality:
        changes["quality"] = read_quality(quality, results)
    if well_aggregate:
        changes["well_aggregate"] = well_aggregate
    if readout:
        measured = per_image_measurements(results.images, results.table_stages)
        if readout not in measured:
            raise PipelineError(
                f"readout {readout!r}: not a measurement of this run; its measurements are "
                f"{', '.join(measured) or 'none (no image done)'}",
                options=("readout",),
            )
        changes["readout"] = readout
    return dataclasses.replace(recorded_settings(results), **changes)


def read_quality(path: str | Path, results: RunResults) -> tuple[QualityRule, ...]:
    """The ``quality:`` rules of a YAML file (a pipeline file, or one holding only
    ``quality:``), checked against the run's pipeline; no key: no rule.

    Raises
    ------
    PipelineError
        If the file cannot be read, or a rule does not fit the run's pipeline.
    """
    path = Path(path)
    data = load_yaml(read_pipeline_text(path), str(path))
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: expected a mapping with the key {QUALITY_KEY!r}", options=("quality",))
    try:
        return results.pipeline.with_quality(data.get(QUALITY_KEY)).quality
    except PipelineError as error:
        raise PipelineError(f"{path}: {error}", options=("quality",)) from None


def run_annotations(results: RunResults, settings: ScreenSettings) -> Annotations | None:
    """The plate map of ``settings`` read against the run's key columns (folder, image,
    metadata fields), or None without one."""
    if settings.annotations is None:
        return None
    images = results.images
    keys = {FOLDER, IMAGE, *results.metadata_columns}
    keys |= {c for c in images.columns if str(c).startswith(FILE_PREFIX)}
    taken = set(images.columns) - keys - set(_previously_added(results))
    return read_annotations(settings.annotations, keys=keys & set(images.columns) | {IMAGE}, taken=taken)


def conclude(
    run_dir: str | Path,
    group_by: Sequence[str] | None = None,
    settings: ScreenSettings | None = None,
) -> list[Path]:
    """Write a run folder's conclusions (see the module's docstring).

    Parameters
    ----------
    run_dir : path
        A run folder whose tables are written.
    group_by : sequence of str, optional
        The summary's grouping (None: the recorded one, else the default).
    settings : ScreenSettings, optional
        None: those run.json recorded.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    PipelineError
        For a plate map, control or quality rule that does not fit the run, before any
        table is rewritten.
    """
    figure_imports.wait()  # a run began importing matplotlib while its tasks computed
    results = RunResults(run_dir)
    settings = settings if settings is not None else recorded_settings(results)
    # every setting is checked before anything is written
    check_table_format(settings.table_format)
    rules = settings.quality if settings.quality is not None else results.pipeline.quality
    annotations = run_annotations(results, settings)
    previous = _previously_added(results)
    layout, stages = results.layout, results.table_stages
    images, added = screen_images(layout, annotations, rules, previous)
    check_controls(images, {"negative_control": settings.negative, "positive_control": settings.positive})
    if settings.negative is not None:  # the plates' heat maps place each image by its well
        check_positions(images, ("annotations",) if settings.annotations is not None else ("metadata",))
    if group_by is not None:
        check_group_by(group_by, [str(c) for c in images.columns])
    written: list[Path] = []
    if previous or added:
        written += rewrite_tables(layout, stages, images, previous, annotations)
    summary, drawing = begin_summary(run_dir, group_by)  # summary.png drawn meanwhile
    written.append(summary)
    again = RunResults(run_dir)
    named = settings.readout or results.pipeline.readout  # the option's, else the pipeline's
    shown = dataclasses.replace(settings, readout=named)
    written += screen_tables(layout, again.images, results.pipeline.table_stages, shown)
    text = [*again.metadata_columns, *digit_ids(images, annotations)]
    written += parquet_tables(layout, stages, text, settings.table_format)
    record = {**settings.describe(), "quality": [r.to_dict() for r in rules], _ADDED: added}
    columns = per_image_measurements(again.images, stages)
    if settings.negative is not None and columns:  # a screen: which readout its figures show
        record[READOUT_SHOWN], note = choose_readout(columns, named)
        log.info("readout: %s%s", record[READOUT_SHOWN], f" ({note})" if note else "")
    written.insert(written.index(summary) + 1, drawing.result())
    RunFolder(layout.root).write_provenance({SCREEN_KEY: record})
    return written


def summarize(
    run_dir: str | Path,
    group_by: Sequence[str] | None = None,
    *,
    annotations: str | Path | None = None,
    negative_control: str | None = None,
    positive_control: str | None = None,
    table_format: str | None = None,
    quality: str | Path | None = None,
    well_aggregate: str | None = None,
    readout: str | None = None,
) -> list[Path]:
    """Conclude a finished run folder again with other settings (``summarize``), holding
    its lock meanwhile: refused while a run writes the folder, and no run starts into it
    until the tables are written.

    Parameters
    ----------
    run_dir : path
        A run folder.
    group_by : sequence of str, optional
        The summary's grouping (None: the recorded one).
    annotations, negative_control, positive_control, table_format, quality, well_aggregate, readout : optional
        Settings given instead of the recorded ones (see :func:`settings_with`).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    PipelineError
        If a run holds the folder (naming it), or a setting does not fit the run; nothing
        is written then.
    """
    layout = RunResults(run_dir).layout  # a run folder, or a message saying what it is not
    linked = linked_folder(layout, [], [])  # the lock file is written in place
    if linked is not None:
        raise PipelineError(
            f"run folder {str(layout.root)!r}: {linked.name!r} is a link (to {os.readlink(linked)!r}); "
            "nothing was written. Remove the link"
        )
    lock = RunLock(layout.lock_file, layout.root)
    lock.acquire()
    try:
        settings = settings_with(
            layout.root,
            annotations,
            negative_control,
            positive_control,
            table_format,
            quality,
            well_aggregate,
            readout,
        )
        written = conclude(layout.root, group_by, settings)
        RunFolder(layout.root).concluded()  # a run that failed at its conclusions is finished
        return written
    finally:
        lock.release()


def screen_images(
    layout: RunLayout,
    annotations: Annotations | None,
    rules: Sequence[QualityRule],
    previous: Sequence[str] = (),
) -> tuple[pd.DataFrame, list[str]]:
    """images.csv as its text, the ``previous`` conclusion's columns dropped, with the
    plate map's columns, ``row`` and ``column``, and ``flagged``; the columns added.
    Nothing is written."""
    images = _read_text(layout.images_table)
    images, added = _annotate(images.drop(columns=[c for c in previous if c in images]), annotations)
    if rules:
        images[FLAGGED] = flag_images(images, rules)
        added.append(FLAGGED)
    return images, added


def _previously_added(results: RunResults) -> list[str]:
    record = results.provenance.get(SCREEN_KEY)
    return [str(c) for c in (record.get(_ADDED) or [])] if isinstance(record, dict) else []


def _read_text(path: Path) -> pd.DataFrame:
    """A table with every cell as its text: rewritten, nothing is re-typed."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _annotate(frame: pd.DataFrame, annotations: Annotations | None) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with the plate map's columns and ``row``/``column``; the columns added."""
    before = list(frame.columns)
    if WELL in frame.columns and not {ROW, COLUMN} & set(frame.columns):
        with_wells(frame, options=("metadata",))  # wells of the metadata: said so if not wells
    if annotations is not None:
        refuse_number_twins(annotations, frame)
        frame = annotations.join(frame)
    frame = with_wells(frame)
    return frame, [c for c in frame.columns if c not in before]


def rewrite_tables(
    layout: RunLayout,
    table_stages: Sequence[str],
    images: pd.DataFrame,
    previous: Sequence[str],
    annotations: Annotations | None,
) -> list[Path]:
    """Write ``images`` (from :func:`screen_images`) as images.csv, and each stage table
    again with the plate map's columns, ``row`` and ``column`` (``previous`` ones dropped)."""
    with atomic_path(layout.images_table) as temporary:
        images.to_csv(temporary, index=False)
    written = [layout.images_table]
    for stage in table_stages:
        if not layout.table(stage).is_file():
            continue
        table = _read_text(layout.table(stage))
        table, _ = _annotate(table.drop(columns=[c for c in previous if c in table]), annotations)
        with atomic_path(layout.table(stage)) as temporary:
            table.to_csv(temporary, index=False)
        written.append(layout.table(stage))
    return written


def screen_tables(
    layout: RunLayout, images: pd.DataFrame, table_stages: Sequence[str], settings: ScreenSettings
) -> list[Path]:
    """wells.csv when the run knows wells, and normalized.csv, assay.csv and the plate maps
    the controls ask for, from images.csv as read (``images``); those no longer asked for
    are removed."""
    columns = per_image_measurements(images, table_stages)
    written: list[Path] = []
    aggregate = settings.well_aggregate
    stale = [
        layout.wells_table,
        layout.normalized_table,
        layout.assay_table,
        *layout.root.glob(layout.plate_plot_glob),
    ]
    if knows_wells(images):
        written.append(_write_csv(well_table(images, columns, aggregate), layout.wells_table))
    if settings.negative is not None:
        normalized = normalized_table(images, columns, settings.negative, aggregate)
        written.append(_write_csv(normalized, layout.normalized_table))
        if settings.positive is not None:
            assay = assay_table(images, columns, settings.negative, settings.positive, aggregate)
            written.append(_write_csv(assay, layout.assay_table))
        if ROW in images.columns and COLUMN in images.columns and columns:
            written += write_plate_plots(layout, images, columns, settings.readout, settings)
    _remove(path for path in stale if path not in written)
    return written


def _write_csv(frame: pd.DataFrame, target: Path) -> Path:
    with atomic_path(target) as temporary:
        frame.to_csv(temporary, index=False)
    return target


def _tables(layout: RunLayout, stages: Sequence[str]) -> list[Path]:
    fixed = [
        layout.images_table,
        layout.summary_table,
        layout.wells_table,
        layout.normalized_table,
        layout.assay_table,
    ]
    return fixed + [layout.table(stage) for stage in stages]


def parquet_tables(
    layout: RunLayout, table_stages: Sequence[str], keys: Sequence[str], table_format: str
) -> list[Path]:
    """With the Parquet format, every CSV table of the run as Parquet, as the run folder's
    readers read the CSV (``keys``: the metadata columns, as text); else the Parquet
    files of an earlier conclusion removed."""
    if table_format != "parquet":
        _remove(RunLayout.parquet(path) for path in _tables(layout, table_stages))
        return []
    written = []
    for path in _tables(layout, table_stages):
        target = RunLayout.parquet(path)
        if not path.is_file():
            target.unlink(missing_ok=True)
            continue
        try:
            with atomic_path(target) as temporary:
                frame = read_summary(path) if path == layout.summary_table else read_table(path, keys)
                frame.to_parquet(temporary, index=False)
        except ImportError as error:
            raise PipelineError(
                f"the Parquet table format needs pyarrow: pip install pyarrow ({error})"
            ) from None
        written.append(target)
    return written


def _remove(paths: Any) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)
