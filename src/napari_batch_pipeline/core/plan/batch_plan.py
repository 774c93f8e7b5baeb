"""The plan of a batch: a pipeline, a folder and options turned into tasks, with no side effect.

:func:`plan_batch` finds the images, reads the parameter table, builds the parameter
sets and the tasks, and checks everything a run would refuse (names that collide with
the tables' columns, outputs that would share a name, a grouping by a column the tables
will not have). It writes nothing, locks nothing and starts no worker: a plan can be
built, inspected and estimated (:meth:`BatchPlan.estimate`, which runs the chain once on
the first image, in this process) as often as wanted. Running a plan into a run folder
is the engine's part (:mod:`..engine.runner`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PipelineError, StageError
from ..images.fields import plan_fields
from ..images.sources import Source, find_images
from ..pipeline.model import INPUT, Pipeline
from ..pipeline.readout import check_readout
from ..results.annotations import Annotations
from ..results.screen import check_screen
from ..results.summary import check_group_by
from ..run_folder.layout import RunLayout
from ..run_folder.tables import IMAGE, images_frame
from .estimate import Estimate, estimate
from .groups import Group, plan_groups
from .options import BatchOptions
from .parameters import parameter_sets
from .params_table import ParamsTable, apply_params_table, key_columns, read_params_table
from .reserved import check_reserved_names
from .tasks import Task, check_output_names, make_tasks
from .training import check_training

__all__ = ["BatchPlan", "plan_batch"]


@dataclass(frozen=True)
class BatchPlan:
    """Every task of a batch, with what made them; checked, nothing written.

    Attributes
    ----------
    pipeline : Pipeline
        The pipeline every task runs.
    options : BatchOptions
        How the batch runs.
    input_dir : Path
        The input folder, absolute.
    output_dir : Path or None
        The run folder the batch is planned for, absolute (None: planned for no folder).
    files : list of Source
        The image files found, in order (one per file, before fields are split out).
    param_sets : list of dict
        The sweep's grid, ``[{}]`` without a sweep; values normalised by the pipeline.
    sources : list of Source
        The fields to process (scene, time point, channel files), in order.
    tasks : list of Task
        Every field with every parameter set, the parameter table's values applied.
    params_table : ParamsTable or None
        The parameter table, if one was given.
    unmatched : int
        How many tasks no row of the parameter table matched.
    groups : tuple of Group
        The groups of the pipeline's group stages (none without one).
    """

    pipeline: Pipeline
    options: BatchOptions
    input_dir: Path
    output_dir: Path | None
    files: list[Source]
    param_sets: list[dict[str, Any]]
    sources: list[Source]
    tasks: list[Task]
    params_table: ParamsTable | None
    unmatched: int
    groups: tuple[Group, ...] = ()

    @property
    def sweep(self) -> dict[str, Any]:
        """The swept parameters, ``{'stage.param': [values]}``."""
        return dict(self.options.sweep)

    @property
    def output_names(self) -> list[str]:
        """The stem every task's outputs are named by, in task order."""
        return [task.output_stem for task in self.tasks]

    def estimate(self, measured: tuple[float, int, int] | None = None) -> Estimate:
        """Memory and time of the batch, measured on the first readable image (or from
        ``measured``: seconds, peak bytes and saved bytes of one task); writes nothing.

        Raises
        ------
        PipelineError
            If none of the first images can be read.
        """
        return estimate(
            self.pipeline,
            [task.source for task in self.tasks],  # the tasks run (a parameter table may drop some)
            1,
            workers=self.options.worker_count,
            executor=self.options.executor,
            budget=self.options.memory_budget,
            measured=measured,
            tiling=self.options.tiling() if self.options.strategy == "vertical" else None,
        )

    def check_budget(self, measure: Callable[[], Estimate] | None = None) -> None:
        """Refuse a batch that would not fit its memory budget (measured on the first image,
        by ``measure``: :meth:`estimate` by default).

        Raises
        ------
        PipelineError
            With the advice of :meth:`Estimate.advice`.
        """
        try:
            planned = (measure or self.estimate)()
        except (PipelineError, StageError):
            return  # no image the chain runs on to measure: the tasks fail on their own
        if not planned.fits:
            raise PipelineError(planned.advice(), options=planned.advice_options)

    def params_provenance(self) -> dict[str, Any] | None:
        """The parameter table as run.json records it: its description and matches."""
        if self.params_table is None:
            return None
        return {
            **self.params_table.describe(),
            "rows": len(self.params_table.rows),
            "matched_tasks": len(self.tasks) - self.unmatched,
            "unmatched_tasks": self.unmatched,
        }


def plan_batch(
    pipeline: Pipeline | str | Path,
    input_dir: str | Path,
    output_dir: str | Path | None = None,
    options: BatchOptions | None = None,
    **more: Any,
) -> BatchPlan:
    """Plan a batch of ``pipeline`` over ``input_dir``: find, check and list its tasks.

    Parameters
    ----------
    pipeline : Pipeline or path
        The pipeline, or its YAML file.
    input_dir : path
        The folder of images.
    output_dir : path, optional
        The run folder the batch will write: left out of the image search, and refused
        if it is the input folder. Nothing is written there.
    options : BatchOptions, optional
        How the batch runs; else built from ``**more`` (the keyword arguments of
        :func:`~napari_batch_pipeline.run_batch`).

    Returns
    -------
    BatchPlan

    Raises
    ------
    PipelineError
        For a bad option, an invalid pipeline, an unusable folder or parameter table, or
        tasks whose outputs or columns would collide.
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = Pipeline.from_yaml(pipeline)
    if options is None:
        options = BatchOptions(**more)
    elif more:
        raise TypeError(f"plan_batch takes options or keyword options, not both: {sorted(more)}")
    options = options.resolved(pipeline)  # auto: the executor it chooses for this pipeline
    check_readout(options.readout, pipeline.stages, "readout", options=("readout",))
    input_path = Path(input_dir).expanduser().resolve()
    output_path = RunLayout.at(output_dir).root if output_dir is not None else None
    if output_path == input_path:
        raise PipelineError("the output folder must differ from the input folder")
    files = find_images(
        input_path,
        options.pattern,
        recursive=options.recursive,
        metadata=options.metadata,
        exclude=[output_path] if output_path is not None else [],
        skip_folder=lambda folder: RunLayout(folder).is_run_folder(),  # another run's outputs
    )[: options.limit]
    check_reserved_names(pipeline.stage_names, {k for f in files for k in f.metadata})
    param_sets = parameter_sets(pipeline, dict(options.sweep))
    sources = plan_fields(files, pipeline.channels, INPUT)
    tasks = make_tasks(sources, param_sets, folders=options.recursive)
    table, unmatched = None, 0
    if options.params is not None:
        keys = key_columns(tasks, options.metadata, options.recursive)
        table = read_params_table(options.params, pipeline, keys=keys, swept=dict(options.sweep))
        tasks, unmatched = apply_params_table(tasks, table, pipeline)
    check_output_names(tasks)
    check_training(pipeline, tasks)
    options = options.for_tasks(len(tasks))
    annotations = _check_screen(options, tasks)
    _check_group_by(options, tasks, annotations.columns if annotations is not None else ())
    return BatchPlan(
        pipeline=pipeline,
        options=options,
        input_dir=input_path,
        output_dir=output_path,
        files=list(files),
        param_sets=param_sets,
        sources=list(sources),
        tasks=tasks,
        params_table=table,
        unmatched=unmatched,
        groups=tuple(plan_groups(pipeline, tasks)),
    )


def _check_screen(options: BatchOptions, tasks: Sequence[Task]) -> Annotations | None:
    """Refuse, before anything runs, a plate map, a control, wells or a table format that
    do not fit the tasks (see :func:`..results.screen.check_screen`)."""
    settings = options.screen()
    frame = images_frame((t.image, t.values, t.metadata, None) for t in tasks)
    keys = key_columns(tasks, options.metadata, options.recursive)
    return check_screen(frame, settings, keys, limited=options.limit is not None)


def _check_group_by(options: BatchOptions, tasks: Sequence[Task], annotated: Sequence[str] = ()) -> None:
    """Refuse, before anything runs, a grouping by a column the tables will not have (the
    plate map's columns, ``annotated``, are among them)."""
    columns = {IMAGE, *annotated, *(c for task in tasks for c in (*task.values, *task.metadata))}
    check_group_by(options.group_by, columns)
