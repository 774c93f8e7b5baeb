"""What an exported script does for a screen, as the engine does it.

Its options (a plate map, controls, the table format, the readout, which defaults to the
pipeline's ``screen: readout``; :func:`add_screen_arguments` puts them on the script's
command line) are checked before any image, by the engine's own check
(:func:`..results.screen.check_screen`); after the tables, the pipeline's quality rules
flag images, the plate map joins the tables, and ``wells.csv``, ``normalized.csv``, ``assay.csv``,
``plate_<plate>.png`` and the Parquet files are written by the engine's own writers
(:mod:`..results.conclusions`). Copied into the script with :mod:`.runtime`, so it uses
no more than the runtime does (matplotlib only for the plate maps; pyarrow only for
Parquet).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError
from ..pipeline.quality import QualityRule
from ..plan.params_table import key_columns
from ..plan.tasks import Task
from ..results.annotations import Annotations, digit_ids
from ..results.conclusions import parquet_tables, rewrite_tables, screen_images, screen_tables
from ..results.screen import Control, ScreenSettings, check_screen
from ..run_folder.layout import RunLayout
from ..run_folder.tables import images_frame, read_table

__all__ = ["ScreenPlan", "add_screen_arguments", "conclude_screen", "plan_screen"]


@dataclass(frozen=True)
class ScreenPlan:
    """A screen's settings and its plate map, checked against the tasks."""

    settings: ScreenSettings
    annotations: Annotations | None


def add_screen_arguments(parser: argparse.ArgumentParser, readout: str | None) -> None:
    """The script's screen options, as the command line's; ``--readout`` defaults to
    ``readout``, the pipeline's."""
    parser.add_argument("--annotations", default=None, help="plate map (CSV): key and annotation columns")
    parser.add_argument("--negative-control", default=None, help="COL=VALUE: the negative control images")
    parser.add_argument("--positive-control", default=None, help="COL=VALUE: the positive control images")
    parser.add_argument("--table-format", default="csv", choices=("csv", "parquet"), help="default: csv")
    parser.add_argument(
        "--well-aggregate",
        default="median",
        choices=("median", "mean"),
        help="how the fields of a well become its row of wells.csv (default: median)",
    )
    parser.add_argument(
        "--readout",
        default=readout,
        help=f"the measurement the plate figures show (default: {readout or 'the first measurement'})",
    )


def plan_screen(args: argparse.Namespace, tasks: Sequence[Task]) -> ScreenPlan:
    """The screen options of ``args``, checked against ``tasks`` as the engine checks them.

    Raises
    ------
    PipelineError
        For a control that is not ``COLUMN=VALUE`` or fits no image, a plate map that
        does not fit, or the Parquet format without pyarrow.
    """
    negative, positive = args.negative_control, args.positive_control
    settings = ScreenSettings(
        annotations=Path(args.annotations).expanduser().resolve() if args.annotations else None,
        negative=Control.parse(negative, "negative_control") if negative else None,
        positive=Control.parse(positive, "positive_control") if positive else None,
        table_format=args.table_format,
        well_aggregate=getattr(args, "well_aggregate", "median"),
        readout=getattr(args, "readout", None),
    )
    if settings.table_format == "parquet":
        try:
            importlib.import_module("pyarrow")
        except ImportError:
            raise PipelineError(
                "the Parquet table format needs pyarrow: pip install pyarrow", options=("table_format",)
            ) from None
    annotations = None
    if settings.annotations is not None or settings.negative is not None:
        frame = images_frame((task.image, task.values, task.metadata, None) for task in tasks)
        annotations = check_screen(frame, settings, key_columns(tasks, args.metadata, args.recursive))
    return ScreenPlan(settings, annotations)


def conclude_screen(
    layout: RunLayout,
    plan: ScreenPlan,
    quality: Sequence[tuple[str, str, float | None, float | None]],
    table_stages: Sequence[str],
    metadata: Sequence[str],
    write_summary: Callable[[], list[str]],
) -> list[str]:
    """After the tables: flags by the ``quality`` rules (``(stage, measurement, min,
    max)``, checked when the pipeline was exported) and the plate map, the summary
    (``write_summary``), the screen's tables and the Parquet files; the names of the
    files written."""
    rules = [QualityRule(*rule) for rule in quality]
    images, added = screen_images(layout, plan.annotations, rules)
    if added:
        rewrite_tables(layout, table_stages, images, (), plan.annotations)
    written = write_summary()
    typed = read_table(layout.images_table, metadata)
    try:
        written += [path.name for path in screen_tables(layout, typed, table_stages, plan.settings)]
    except ImportError:  # the plate maps need matplotlib; the tables are written before them
        tables = (layout.wells_table, layout.normalized_table, layout.assay_table)
        written += [p.name for p in tables if p.is_file()]
    written += [
        path.name
        for path in parquet_tables(
            layout,
            table_stages,
            [*metadata, *digit_ids(images, plan.annotations)],
            plan.settings.table_format,
        )
    ]
    return written
