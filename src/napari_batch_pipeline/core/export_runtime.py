"""The runtime of an exported script: find the fields, run the pipeline on each, write the tables.

:mod:`.export` copies these functions into the standalone script it writes, with the
package's code they use (:mod:`.export_bundle`): finding the files, the format layer,
the fields with their channels and pixel sizes, the tasks and their output names, the
writers of saved outputs and tables. The script adds ``process`` (every stage on one
field), its stage lists and its ``channels:`` section, and calls :func:`main`. So this
module may use only the standard library, numpy, pandas, tifffile and scikit-image, and
from the package only code that uses no more (its source is copied; the package's import
lines are not).

What a script writes is what the engine writes for the same pipeline and folder, vertical
and serial: ``images.csv`` (one row per scene and time point of every file), ``<stage>.csv``
for each table stage and ``<stage>/<image stem>[__s<scene>][__t<time>].tif`` for each saved
one, with its pixel size.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PipelineError, StageError
from .files import atomic_path
from .images.channels import parse_channels
from .images.fields import plan_fields, read_field
from .images.sources import find_images
from .plan import Task, check_output_names, make_tasks
from .run_folder.layout import RunLayout
from .run_folder.outputs import write_task_outputs
from .run_folder.records import DONE, TaskRecord
from .run_folder.tables import concatenate, images_frame
from .stage_config import INPUT
from .tasks import failure_message

__all__ = ["main", "run_stage", "run_task"]

#: ``process(images, spacing)``: every stage on one field's images (by channel name, or
#: ``input``) with its pixel size; ``{stage name: output}``
Process = Callable[[dict[str, np.ndarray], tuple[float, ...] | None], dict[str, Any]]
#: the command-line flags of the options a message may speak of
_FLAGS = {"pattern": "--pattern", "recursive": "--recursive"}


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
    except Exception as error:
        raise StageError(stage, function, error) from error


def run_task(
    task: Task,
    layout: RunLayout,
    process: Process,
    saved_stages: Sequence[str],
    table_stages: Sequence[str],
) -> TaskRecord:
    """Run the pipeline on one field; save its outputs and its table rows, as the engine does.

    Parameters
    ----------
    task : Task
        The field (a scene and time point of a file, its channels located).
    layout : RunLayout
        The output folder.
    process : callable
        ``process(images, spacing)`` gives ``{stage name: output}``.
    saved_stages, table_stages : sequence of str
        The stages whose outputs are saved as TIFF files, and those that give tables;
        a table's rows go to the task's part of ``<stage>.csv``.

    Returns
    -------
    TaskRecord
        Done with the task's summary, or failed with the engine's message: an error
        fails this field alone.
    """
    start = time.perf_counter()
    try:
        loaded = read_field(task.source)
        outputs = process(loaded.images, loaded.spacing)
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
            params=task.params,
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
) -> int:
    """The command line ``INPUT_DIR OUTPUT_DIR [--pattern GLOB] [--recursive]``.

    Every scene and time point of every file is one task, its channels named by
    ``channels``; the tables and saved outputs are the engine's.

    Parameters
    ----------
    process : callable
        ``process(images, spacing)`` gives ``{stage name: output}``.
    saved_stages, table_stages : sequence of str
        The stages whose outputs are saved, and those that give tables.
    channels : mapping, optional
        The pipeline's ``channels:`` section; None when it names none.
    argv : sequence of str, optional
        The arguments; default ``sys.argv[1:]``.
    description : str, optional
        The help text's description (its first line is used).

    Returns
    -------
    int
        0 if every task is done, 1 if any failed, 2 if nothing ran (no images, a
        multi-channel file for a pipeline that names no channels, colliding output
        names); the message goes to stderr.
    """
    parser = argparse.ArgumentParser(description=(description or "").strip().partition("\n")[0])
    parser.add_argument("input", type=Path, help="folder of input images")
    parser.add_argument("output", type=Path, help="folder for the tables and saved outputs")
    parser.add_argument("--pattern", default=None, help="file name pattern (default: image files)")
    parser.add_argument("--recursive", action="store_true", help="also look in subfolders")
    args = parser.parse_args(argv)
    folder, layout = args.input.expanduser().resolve(), RunLayout.at(args.output)
    try:
        if layout.root == folder:
            raise PipelineError("the output folder must differ from the input folder")
        files = find_images(folder, args.pattern, recursive=args.recursive, exclude=[layout.root])
        fields = plan_fields(files, parse_channels(channels, reserved=(INPUT,)), INPUT)
        tasks = make_tasks(fields, [{}])
        check_output_names(tasks)
    except PipelineError as error:
        flags = [_FLAGS[name] for name in error.options if name in _FLAGS]
        hint = f" (command line: {', '.join(flags)})" if flags else ""
        print(f"error: {error}{hint}", file=sys.stderr)
        return 2
    shutil.rmtree(layout.parts_dir, ignore_errors=True)  # left by an interrupted run
    records = {}
    for task in tasks:
        records[task.key] = record = run_task(task, layout, process, saved_stages, table_stages)
        print(f"{record.status}: {task.field}", file=sys.stderr)
    frame = images_frame((task.image, task.params, task.metadata, records[task.key]) for task in tasks)
    with atomic_path(layout.images_table) as temporary:
        frame.to_csv(temporary, index=False)
    done = [task.key for task in tasks if records[task.key].done]
    for stage in table_stages:
        concatenate([layout.part(stage, key) for key in done], layout.table(stage))
    shutil.rmtree(layout.parts_dir, ignore_errors=True)
    failed = len(tasks) - len(done)
    print(f"{len(done)} done, {failed} failed; tables in {layout.root}", file=sys.stderr)
    return 1 if failed else 0
