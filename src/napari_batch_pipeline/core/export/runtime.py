"""The runtime of an exported script: find the fields, run the pipeline on each, write the tables.

:mod:`.export` copies these functions into the standalone script it writes, with the
package's code they use (:mod:`.export_bundle`): finding the files, the format layer,
the fields with their channels and pixel sizes, the tasks and their output names, the
writers of saved outputs and tables. The script adds ``process`` (every stage on one
field), its stage lists and its ``channels:`` section, and calls :func:`main`. So this
module may use only the standard library, numpy, pandas, tifffile and scikit-image, and
from the package only code that uses no more (its source is copied; the package's import
lines are not).

What a script writes is what the engine writes for the same pipeline, folder and
parameter table, vertical and serial: ``images.csv`` (one row per scene and time point of
every file), ``<stage>.csv`` for each table stage, ``<stage>/<image stem>[__s<scene>][__t<time>].tif``
for each saved one, with its pixel size, and ``summary.csv`` (``summary.png`` where
matplotlib is installed); for a screen, the flags, plate map and conclusions of
:mod:`.screening`. A parameter table is read, checked and applied by the engine's
own code (:mod:`.params_table`), over :class:`ExportedPipeline`, which stands in for the
pipeline there; its cells are read as YAML, so ``--params`` needs PyYAML.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.jobs import failure_message
from ..errors import PipelineError, StageError
from ..files import atomic_path
from ..images.channels import parse_channels
from ..images.fields import plan_fields, read_field
from ..images.sources import find_images
from ..pipeline.stage_config import INPUT, _plain, upstream
from ..plan.options import _columns
from ..plan.params_table import apply_params_table, key_columns, read_params_table
from ..plan.tasks import Task, check_output_names, make_tasks
from ..results.summary import check_group_by, default_group_by, summary_figure, summary_table
from ..run_folder.layout import RunLayout
from ..run_folder.outputs import write_task_outputs
from ..run_folder.records import DONE, TaskRecord
from ..run_folder.tables import IMAGE, concatenate, images_frame, read_table
from ..stages.registry import ParamSpec, check_param, check_range
from .group_passes import learn_groups
from .screening import add_screen_arguments, conclude_screen, plan_screen

__all__ = ["ExportedPipeline", "ExportedStage", "main", "run_stage", "run_task", "write_summary"]

#: ``process(images, spacing, values, given, until)``: every stage on one field's images
#: (by channel name, or ``input``) with its pixel size, the parameter values of its row of
#: the parameter table (``{'stage.param': value}``) and its groups' results by group
#: stage; ``{stage name: output}``, up to the group stage ``until`` if one is named
Process = Callable[..., dict[str, Any]]
#: ``check(params, connected)``: a message when a stage's values cannot work together
Check = Callable[[dict[str, Any], set[str]], str | None]
#: the command-line flags of the options a message may speak of
_FLAGS = {
    "pattern": "--pattern",
    "recursive": "--recursive",
    "metadata": "--metadata",
    "params": "--params",
    "group_by": "--group-by",
    "annotations": "--annotations",
    "negative_control": "--negative-control",
    "positive_control": "--positive-control",
    "table_format": "--table-format",
    "well_aggregate": "--well-aggregate",
}


@dataclass(frozen=True)
class ExportedStage:
    """One stage as a parameter table sees it: its values, what each must be, its check.

    Attributes
    ----------
    name, function : str
        The stage's name and function (``gaussian``, ``package.module:function``).
    params : dict
        Its parameter values by name, in the order of the function's signature.
    types : dict
        Each parameter's annotation, which a value must fit (``check_param``).
    connected : tuple of str
        Its data arguments fed by an image or a stage, for ``check``.
    check : callable, optional
        The stage's own check of its values together (see ``stages.registry.stage``).
    inputs : dict
        Its data arguments and the image or stage that feeds each.
    group_by : tuple of str, optional
        A group stage's key columns; None for a stage of one image.
    """

    name: str
    function: str
    params: dict[str, Any]
    types: dict[str, Any]
    connected: tuple[str, ...] = ()
    check: Check | None = None
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    group_by: tuple[str, ...] | None = None


class ExportedPipeline:
    """The pipeline's stages and parameters; a parameter table's values are checked
    against it with the pipeline's checks and messages (``stage_config``), the stage
    catalogue aside.

    What :func:`~.params_table.read_params_table` and ``apply_params_table`` use of a
    :class:`~.pipeline.Pipeline`: ``stage_names``, ``pipeline[name]`` (a stage's
    ``function`` and ``params``) and :meth:`with_params`.

    Raises
    ------
    PipelineError
        For a value that does not fit its parameter, or a stage's values that cannot
        work together, naming the stage and the key, as a pipeline file's.
    """

    def __init__(self, stages: Iterable[ExportedStage], *, ranges: bool = False):
        self.stages = tuple(_validated(stage, ranges) for stage in stages)
        self._by_name = {stage.name: stage for stage in self.stages}

    @property
    def stage_names(self) -> list[str]:
        return list(self._by_name)

    def __getitem__(self, name: str) -> ExportedStage:
        return self._by_name[name]

    @property
    def group_stages(self) -> list[str]:
        return [stage.name for stage in self.stages if stage.group_by is not None]

    def upstream(self, name: str) -> set[str]:
        """The stages ``name`` depends on, directly or not."""
        return upstream({stage.name: stage.inputs for stage in self.stages}, name)

    def with_params(self, overrides: Mapping[str, Any]) -> ExportedPipeline:
        """A copy with some parameters changed, keyed ``'stage.param'``; validated."""
        stages = dict(self._by_name)
        for key, value in overrides.items():
            name, _, param = key.partition(".")
            if name not in stages or not param:
                raise PipelineError(
                    f"parameter {key!r}: expected 'stage.param' with a stage among {', '.join(stages)}"
                )
            stages[name] = dataclasses.replace(stages[name], params={**stages[name].params, param: value})
        return ExportedPipeline(stages.values(), ranges=True)


def _validated(stage: ExportedStage, ranges: bool) -> ExportedStage:
    """The stage with its values checked and normalised as a pipeline file's; with
    ``ranges``, each value also within the range its name implies (as the pipeline checks
    the values it is given, and all of them when they are changed)."""
    params = {}
    for key, value in stage.params.items():
        if key not in stage.types:
            known = ", ".join(stage.types) or "none"
            raise PipelineError(
                f"unknown parameter of {stage.function}; its parameters are: {known}",
                stage=stage.name,
                key=f"params.{key}",
            )
        try:
            params[key] = _plain(check_param(ParamSpec(key, stage.types[key], None), value))
        except ValueError as error:
            raise PipelineError(str(error), stage=stage.name, key=f"params.{key}") from None
    problem = stage.check(params, set(stage.connected)) if stage.check is not None else None
    if problem:
        raise PipelineError(problem, stage=stage.name, key="params")
    for key in params if ranges else ():
        problem = check_range(key, params[key])
        if problem:
            raise PipelineError(problem, stage=stage.name, key=f"params.{key}")
    return dataclasses.replace(stage, params=params)


def run_stage(stage: str, function: str, step: Callable[..., Any], *arguments: Any) -> Any:
    """``step(*arguments)``: one stage; an error is the engine's :class:`StageError`.

    Parameters
    ----------
    stage, function : str
        The stage's name and function, for the message.
    step : callable
        The stage's call; ``arguments`` are the outputs so far (and the pixel size).
    """
    try:
        return step(*arguments)
    except (Exception, SystemExit) as error:  # sys.exit in a stage fails one image
        raise StageError(stage, function, error) from error


def run_task(
    task: Task,
    layout: RunLayout,
    process: Process,
    saved_stages: Sequence[str],
    table_stages: Sequence[str],
    given: Mapping[str, Any] | None = None,
) -> TaskRecord:
    """Run the pipeline on one field; save its outputs and its table rows, as the engine does.

    Parameters
    ----------
    task : Task
        The field (a scene and time point of a file, its channels located).
    layout : RunLayout
        The output folder.
    process : callable
        ``process(images, spacing, values)`` gives ``{stage name: output}``.
    saved_stages, table_stages : sequence of str
        The stages whose outputs are saved as TIFF files, and those that give tables;
        a table's rows go to the task's part of ``<stage>.csv``.
    given : mapping, optional
        The results of the task's group stages, by stage.

    Returns
    -------
    TaskRecord
        Done with the task's summary, or failed with the engine's message: an error
        fails this field alone.
    """
    start = time.perf_counter()
    try:
        loaded = read_field(task.source)
        arguments = (loaded.images, loaded.spacing, task.values)
        # the group results only where there are some: a process of a pipeline without
        # group stages may take three arguments
        outputs = process(*arguments, dict(given)) if given else process(*arguments)
        summary = write_task_outputs(
            layout,
            list(saved_stages),
            list(table_stages),
            outputs,
            key=task.key,
            image=task.image,
            stem=task.output_stem,
            spacing=loaded.spacing,
            label=task.label,
            params=task.values,
            metadata=task.metadata,
        )
    except Exception as error:
        seconds = round(time.perf_counter() - start, 4)
        return TaskRecord.failure(
            task.key, task.index, task.image, failure_message(error), label=task.label, seconds=seconds
        )
    seconds = round(time.perf_counter() - start, 4)
    return TaskRecord(task.key, task.index, task.image, DONE, "", seconds, summary, task.label)


def main(
    process: Process,
    saved_stages: Sequence[str],
    table_stages: Sequence[str],
    channels: Mapping[str, Any] | None = None,
    argv: Sequence[str] | None = None,
    description: str | None = None,
    pipeline: ExportedPipeline | None = None,
    groups: Mapping[str, Callable[..., Any]] | None = None,
    quality: Sequence[tuple[str, str, float | None, float | None]] = (),
    readout: str | None = None,
) -> int:
    """The command line ``INPUT_DIR OUTPUT_DIR [--pattern GLOB] [--recursive]
    [--metadata REGEX] [--params TABLE.csv] [--group-by COL,...]``.

    Every scene and time point of every file is one task, its channels named by
    ``channels``, its parameter values those of its row of the parameter table; the
    tables, saved outputs and summary are the engine's.

    Parameters
    ----------
    process : callable
        ``process(images, spacing, values)`` gives ``{stage name: output}``.
    saved_stages, table_stages : sequence of str
        The stages whose outputs are saved, and those that give tables.
    channels : mapping, optional
        The pipeline's ``channels:`` section; None when it names none.
    argv : sequence of str, optional
        The arguments; default ``sys.argv[1:]``.
    description : str, optional
        The help text's description (its first line is used).
    pipeline : ExportedPipeline, optional
        The stages and parameters a parameter table may set; None: none.
    groups : mapping, optional
        The group stages' functions, ``function(outputs, values)``, by stage: their
        results are learnt first (:func:`~.group_passes.learn_groups`).
    quality : sequence of (stage, measurement, min, max)
        The pipeline's quality rules, checked when it was exported.
    readout : str, optional
        The pipeline's readout: the plate figures' measurement unless ``--readout`` names one.

    Returns
    -------
    int
        0 if every task is done, 1 if any failed, 2 if nothing ran (no images, a
        multi-channel file for a pipeline that names no channels, colliding output
        names, a refused parameter table or grouping); the message goes to stderr.
    """
    parser = argparse.ArgumentParser(description=(description or "").strip().partition("\n")[0])
    parser.add_argument("input", type=Path, help="folder of input images")
    parser.add_argument("output", type=Path, help="folder for the tables and saved outputs")
    parser.add_argument("--pattern", default=None, help="file name pattern (default: image files)")
    parser.add_argument("--recursive", action="store_true", help="also look in subfolders")
    parser.add_argument("--metadata", default=None, help="regular expression with named groups: columns")
    parser.add_argument(
        "--params",
        default=None,
        help="per-dataset parameters: key columns (folder, image, metadata) and stage.param columns",
    )
    parser.add_argument(
        "--group-by",
        default=None,
        help="columns that group summary.csv (default: folder, else metadata, else parameters)",
    )
    add_screen_arguments(parser, readout)
    args = parser.parse_args(argv)
    layout = RunLayout.at(args.output)
    try:
        tasks, columns, note = _plan(args, layout, channels, pipeline or ExportedPipeline(()))
        screen = plan_screen(args, tasks)
        # the tables' columns: image, parameters, metadata and the plate map's (as the engine)
        annotated = screen.annotations.columns if screen.annotations is not None else ()
        values = {c for task in tasks for c in (*task.values, *task.metadata)}
        check_group_by(_columns(args.group_by), {IMAGE, *annotated, *values})
    except PipelineError as error:
        flags = [_FLAGS[name] for name in error.options if name in _FLAGS]
        hint = f" (command line: {', '.join(flags)})" if flags else ""
        print(f"error: {error}{hint}", file=sys.stderr)
        return 2
    if note:
        print(note, file=sys.stderr)
    shutil.rmtree(layout.parts_dir, ignore_errors=True)  # left by an interrupted run
    exported = pipeline or ExportedPipeline(())
    given, failures = learn_groups(exported, tasks, layout, process, groups or {}, quality)
    records = {}
    for task in tasks:
        if task.key in failures:
            record = TaskRecord.failure(
                task.key, task.index, task.image, failures[task.key], label=task.label
            )
        else:
            record = run_task(task, layout, process, saved_stages, table_stages, given.get(task.key))
        records[task.key] = record
        print(f"{record.status}: {task.field}", file=sys.stderr)
    frame = images_frame((task.image, task.values, task.metadata, records[task.key]) for task in tasks)
    with atomic_path(layout.images_table) as temporary:
        frame.to_csv(temporary, index=False)
    done = [task.key for task in tasks if records[task.key].done]
    for stage in table_stages:
        concatenate([layout.part(stage, key) for key in done], layout.table(stage))
    shutil.rmtree(layout.parts_dir, ignore_errors=True)
    metadata = list(re.compile(args.metadata).groupindex) if args.metadata else []
    group_by = _columns(args.group_by)
    summary = functools.partial(write_summary, layout, table_stages, group_by, metadata, columns)
    written = conclude_screen(layout, screen, quality, table_stages, metadata, summary)
    failed = len(tasks) - len(done)
    print(
        f"{len(done)} done, {failed} failed; tables and {', '.join(written)} in {layout.root}",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _plan(
    args: argparse.Namespace,
    layout: RunLayout,
    channels: Mapping[str, Any] | None,
    pipeline: ExportedPipeline,
) -> tuple[list[Task], list[str], str]:
    """The tasks, with their values from the parameter table, the table's parameter
    columns and how many tasks it matched (as the engine logs it); everything checked as
    the engine checks a batch before it runs.

    Raises
    ------
    PipelineError
        As the engine: for a refused folder, table or grouping.
    """
    _columns(args.group_by)  # a column given twice is refused here, as the engine refuses it
    folder = Path(args.input).expanduser().resolve()
    if layout.root == folder:
        raise PipelineError("the output folder must differ from the input folder")
    files = find_images(
        folder, args.pattern, recursive=args.recursive, metadata=args.metadata, exclude=[layout.root]
    )
    fields = plan_fields(files, parse_channels(channels, reserved=(INPUT,)), INPUT)
    tasks = make_tasks(fields, [{}], folders=args.recursive)
    columns: list[str] = []
    note = ""
    if args.params is not None:
        keys = key_columns(tasks, args.metadata, args.recursive)
        try:  # the table's cells are YAML, read as the engine reads them
            importlib.import_module("yaml")
        except ImportError:
            raise PipelineError(
                "reading a parameter table needs PyYAML: pip install pyyaml", options=("params",)
            ) from None
        # the stand-in has what these use of a Pipeline (see ExportedPipeline)
        table = read_params_table(args.params, pipeline, keys=keys)  # type: ignore[arg-type]
        tasks, unmatched = apply_params_table(tasks, table, pipeline)  # type: ignore[arg-type]
        columns = list(table.columns)
        note = (
            f"parameter table {table.path.name}: {len(tasks) - unmatched} task(s) take a row's values, "
            f"{unmatched} task(s) keep the pipeline's values"
        )
    check_output_names(tasks)
    return tasks, columns, note


def write_summary(
    layout: RunLayout,
    table_stages: Sequence[str],
    group_by: Sequence[str] | None,
    metadata: Sequence[str] = (),
    params: Sequence[str] = (),
) -> list[str]:
    """Write ``summary.csv``, and ``summary.png`` where matplotlib is installed, from the
    run's images.csv as the engine does; the names of the files written.

    ``group_by`` None: ``folder`` when the tables have it, else the ``metadata`` columns,
    else the ``params`` columns, else one group.
    """
    images = read_table(layout.images_table, metadata)
    keys = list(group_by) if group_by else default_group_by(list(images.columns), metadata, params)
    with atomic_path(layout.summary_table) as temporary:
        summary_table(images, table_stages, keys).to_csv(temporary, index=False)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:  # the table alone
        return [layout.summary_table.name]
    with atomic_path(layout.summary_plot) as temporary:
        FigureCanvasAgg(summary_figure(images, table_stages, keys)).print_png(str(temporary))
    return [layout.summary_table.name, layout.summary_plot.name]
