"""What each command of the command line does; parsing lives in :mod:`cli`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .core.batch import BatchRun
from .core.engine.events import RunFinished, RunStarted, StageProgress, TaskFinished
from .core.engine.measure import estimate_plan
from .core.engine.report import Report
from .core.errors import PipelineError
from .core.plan.batch_plan import plan_batch
from .core.plan.estimate import format_seconds, parse_size
from .core.plan.parameters import parse_sweep
from .core.run_folder.layout import RunLayout

__all__ = [
    "command_demo",
    "command_estimate",
    "command_export_script",
    "command_rerun",
    "command_run",
    "command_stages",
    "command_summarize",
]

log = logging.getLogger("napari_batch_pipeline")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130

#: how the command line sets each batch option that core messages speak of
FLAGS = {
    "pattern": "--pattern",
    "recursive": "--recursive",
    "metadata": "--metadata",
    "executor": "--executor",
    "workers": "--workers",
    "scheduler": "--scheduler",
    "strategy": "--strategy",
    "sweep": "--sweep",
    "memory_budget": "--memory-budget",
    "limit": "--limit",
    "fresh": "--fresh",
    "params": "--params",
    "group_by": "--group-by",
    "task_timeout": "--task-timeout",
    "annotations": "--annotations",
    "negative_control": "--negative-control",
    "positive_control": "--positive-control",
    "table_format": "--table-format",
    "well_aggregate": "--well-aggregate",
    "quality": "--quality",
    "tile": "--tile",
    "halo": "--halo",
    "max_object": "--max-object",
    "levels": "--levels",
}


def flag_hint(options: Sequence[str]) -> str:
    """`` (command line: --fresh)`` for the options a core message speaks of; ``''`` for none."""
    flags = [FLAGS[name] for name in options if name in FLAGS]
    return f" (command line: {', '.join(flags)})" if flags else ""


def install_cancel_handler(cancel: Any) -> dict[int, Any]:
    """Ctrl-C or SIGTERM cancels the batch cleanly; a second Ctrl-C interrupts at once.

    Returns the previous handlers, for :func:`restore_handlers`.
    """
    previous: dict[int, Any] = {number: signal.getsignal(number) for number in _CANCEL_SIGNALS}

    def handle(signum: int, frame: Any) -> None:
        again = "Ctrl-C again to abort" if signum == signal.SIGINT else "a second signal aborts"
        print(f"\ncancelling: finishing writes, stopping workers ({again})", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # not here: the handler may have interrupted this thread inside a pool's lock
        threading.Thread(target=cancel, name="cancel-batch", daemon=True).start()

    for number in _CANCEL_SIGNALS:
        signal.signal(number, handle)
    return previous


def restore_handlers(previous: dict[int, Any]) -> None:
    """Put back the signal handlers :func:`install_cancel_handler` replaced."""
    for number, handler in previous.items():
        signal.signal(number, handler)


_CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _batch(args: argparse.Namespace, output: str | Path, **extra: Any) -> BatchRun:
    return BatchRun(args.pipeline, args.input, output, **_options(args), **extra)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The batch options the command line gives (see ``BatchOptions``)."""
    return dict(
        pattern=args.pattern,
        recursive=bool(args.recursive),
        metadata=args.metadata,
        executor=args.executor or "auto",
        workers=args.workers,
        scheduler=args.scheduler,
        strategy=args.strategy or "vertical",
        sweep=parse_sweep(args.sweep),
        memory_budget=parse_size(args.memory_budget) if args.memory_budget else None,
        limit=args.limit,
        params=args.params,
        group_by=args.group_by,
        task_timeout=args.task_timeout,
        annotations=args.annotations,
        negative_control=args.negative_control,
        positive_control=args.positive_control,
        table_format=args.table_format or "csv",
        **_tiling(args),
    )


def _tiling(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
    """The tiling options given on the line, else as ``recorded`` (a run's), else defaults."""
    recorded = recorded or {}
    halo = args.halo if args.halo is not None else recorded.get("halo")
    if isinstance(halo, str):
        if halo.strip().lower() == "auto":
            halo = None
        else:
            try:
                halo = int(halo)
            except ValueError:
                raise PipelineError(
                    f"halo: expected auto or a number of pixels, got {halo!r}", options=("halo",)
                ) from None
    return dict(
        tile=args.tile if args.tile is not None else recorded.get("tile", "auto"),
        halo=halo,
        max_object=args.max_object if args.max_object is not None else recorded.get("max_object", 128),
        levels=args.levels if args.levels is not None else recorded.get("levels", 4),
        well_aggregate=args.well_aggregate or "median",
    )


def _from_run(args: argparse.Namespace) -> BatchRun:
    """A batch with a finished run's configuration; options given on the line win."""
    from .core.pipeline.model import Pipeline
    from .core.pipeline.recorded import untrusted_modules
    from .core.run_folder.provenance import read_run_settings

    old = RunLayout.at(args.from_run)
    try:
        info = read_run_settings(old)  # checked: a damaged run.json gives a message
        foreign = untrusted_modules(old.pipeline_file)
    except (OSError, ValueError) as error:
        raise PipelineError(f"{args.from_run!r} is not a readable run folder: {error}") from None
    if foreign and not args.trust_code:
        raise PipelineError(
            f"{args.from_run!r}: its pipeline imports {', '.join(map(repr, foreign))} to run (their "
            "code runs with your rights); nothing was imported. If you trust them, add --trust-code"
        )
    try:
        pipeline = Pipeline.from_yaml(old.pipeline_file)
    except (OSError, ValueError) as error:
        raise PipelineError(f"{args.from_run!r} is not a readable run folder: {error}") from None
    if Path(args.output).expanduser().resolve() == old.root:
        raise PipelineError("a re-run needs a new output folder (-o), not the run itself")
    sweep = parse_sweep(args.sweep) or info.get("sweep") or {}

    def pick(name: str, default: Any = None) -> Any:
        value = getattr(args, name)
        return value if value is not None else info.get(name, default)

    budget = parse_size(args.memory_budget) if args.memory_budget else info.get("memory_budget")
    screen: dict[str, Any] = info["screen"] if isinstance(info.get("screen"), dict) else {}
    return BatchRun(
        pipeline,
        info["input_dir"],
        args.output,
        pattern=pick("pattern"),
        recursive=bool(pick("recursive", False)),
        metadata=pick("metadata"),
        # a run whose executor auto chose chooses again (the pipeline or machine may differ)
        executor=args.executor or ("auto" if info.get("executor_reason") else info.get("executor", "auto")),
        workers=pick("workers"),
        scheduler=args.scheduler,
        strategy=pick("strategy", "vertical"),
        sweep=sweep,
        memory_budget=budget,
        limit=pick("limit"),
        fresh=args.fresh,
        params=args.params or (info.get("params") or {}).get("table"),
        group_by=args.group_by or info.get("group_by"),
        task_timeout=pick("task_timeout"),
        annotations=args.annotations or screen.get("annotations"),
        negative_control=args.negative_control or screen.get("negative_control"),
        positive_control=args.positive_control or screen.get("positive_control"),
        table_format=args.table_format or screen.get("table_format") or "csv",
        **_tiling(args, info.get("tiling") if isinstance(info.get("tiling"), dict) else None),
        well_aggregate=args.well_aggregate or screen.get("well_aggregate") or "median",
    )


def command_run(args: argparse.Namespace) -> int:
    return _run_and_report(_batch(args, args.output, fresh=args.fresh), quiet=args.quiet)


def command_rerun(args: argparse.Namespace) -> int:
    return _run_and_report(_from_run(args), quiet=args.quiet)


def _run_and_report(batch: BatchRun, quiet: bool) -> int:
    report = execute(batch, quiet=quiet)
    print_summary(report)
    if batch.sweep and report.done + report.skipped and report.table_stages:
        from .core.results.sweep_plot import save_sweep_plot

        print(f"  {save_sweep_plot(report.output_dir, list(batch.sweep))}")
    return EXIT_CANCELLED if report.cancelled else report.exit_code


def command_estimate(args: argparse.Namespace) -> int:
    # the plan alone: nothing is written; the first image is measured where a task would run
    plan = plan_batch(args.pipeline, args.input, **_options(args))
    estimate = estimate_plan(plan)
    print(f"{len(plan.sources)} image(s) x {len(plan.param_sets)} parameter set(s)")
    print(estimate.summary())
    if not estimate.fits:
        print(f"warning: {estimate.advice()}{flag_hint(estimate.advice_options)}")
    return 0


def execute(batch: BatchRun, quiet: bool = False) -> Report:
    """Run ``batch`` with a progress bar (on a terminal) or log lines, Ctrl-C to cancel."""
    previous = install_cancel_handler(batch.cancel)
    bar = None
    try:
        for event in batch.events():
            if isinstance(event, RunStarted):
                resumed = f", {event.skipped} already done (resuming)" if event.skipped else ""
                chosen = f" (auto: {event.executor_reason})" if event.executor_reason else ""
                log.info(
                    "%d task(s) with %s x%d%s, %s strategy%s",
                    event.total,
                    event.executor,
                    event.workers,
                    chosen,
                    event.strategy,
                    resumed,
                )
                if event.estimate is not None:
                    log.info("estimate: %s", event.estimate.summary())
                if batch.params_table is not None:
                    log.info(
                        "parameter table %s: %d task(s) take a row's values, %d task(s) keep the "
                        "pipeline's values",
                        batch.params_table.path.name,
                        len(batch.tasks) - batch.unmatched,
                        batch.unmatched,
                    )
                bar = _progress_bar(event, quiet)
            elif isinstance(event, TaskFinished):
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(failed=event.failed, refresh=False)
                elif not quiet:
                    log.info(
                        "[%d/%d] %s %s",
                        event.done + event.failed,
                        event.total,
                        event.status,
                        event.image,
                    )
                if event.status == "failed":
                    message = f"failed: {event.image}: {event.error}"
                    if bar is not None:
                        bar.write(message, file=sys.stderr)
                    else:
                        log.warning(message)
            elif isinstance(event, StageProgress) and bar is not None:
                bar.set_description(f"{event.stage} {event.done}/{event.total}", refresh=True)
            elif isinstance(event, RunFinished):
                report = event.report
    finally:
        if bar is not None:
            bar.close()
        restore_handlers(previous)
    return report


def _progress_bar(event: RunStarted, quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=event.total, initial=event.skipped, unit="img", file=sys.stderr, dynamic_ncols=True)


def print_summary(report: Report) -> None:
    images = report.images
    state = "cancelled" if report.cancelled else "finished"
    print(
        f"{state}: {report.done} done, {report.failed} failed, {report.skipped} resumed, "
        f"of {report.total} task(s) in {format_seconds(report.seconds)}"
    )
    failed = images[images["status"] == "failed"]
    for row in failed.itertuples():
        print(f"  failed {row.image}: {row.error}")
    print(f"results: {report.output_dir}")
    layout = RunLayout.at(report.output_dir)
    for path in (layout.images_table, *(layout.table(stage) for stage in report.table_stages)):
        print(f"  {path}")
    if layout.summary_table.is_file():
        print_groups(layout)


def print_groups(layout: RunLayout) -> None:
    """The run's summary by group (its counts and first measurement), and where it is."""
    import pandas as pd

    from .core.results.summary import OBJECTS, STATISTICS, read_summary

    summary = read_summary(layout.summary_table)
    end = list(summary.columns).index(OBJECTS) + 1 + len(STATISTICS)  # the first measurement's
    print(f"summary by group: {layout.summary_table}\n  {layout.summary_plot}")
    with pd.option_context("display.width", 120, "display.max_columns", 12, "display.precision", 1):
        print(summary.iloc[:, :end].to_string(index=False))


def command_summarize(args: argparse.Namespace) -> int:
    from .core.results.conclusions import summarize

    group_by = [c.strip() for c in args.group_by.split(",") if c.strip()] if args.group_by else None
    names = (
        "annotations",
        "negative_control",
        "positive_control",
        "table_format",
        "quality",
        "well_aggregate",
    )
    # under the folder's lock; refuses what does not fit before writing anything
    summarize(args.run_dir, group_by, **{name: getattr(args, name) for name in names})
    print_groups(RunLayout.at(args.run_dir))
    return EXIT_OK


def command_stages(args: argparse.Namespace) -> int:
    from .core.stages import STAGES

    for name, spec in STAGES.items():
        data = ", ".join(
            f"{arg}: {kind}" + (" (optional)" if arg in spec.optional_data else "")
            for arg, kind in spec.data_args.items()
        )
        print(f"{name}  [{spec.menu}]  ({data}) -> {spec.returns}")
        if spec.summary:
            print(f"    {spec.summary}")
        for param in spec.params.values():
            print(f"    {param.name} = {param.default!r}  ({param.expected})")
        for column, meaning in spec.columns.items():
            print(f"    -> {column}: {meaning}")
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from .core.demo import prepare_demo

    if args.illumination:
        return _illumination_demo(args)
    if getattr(args, "large", False):
        return _large_demo(args)
    folder = Path(args.output).expanduser()
    files = prepare_demo(folder, count=args.images)
    print(f"sample images: {files.images}\npipeline: {files.pipeline}\nparameter table: {files.params}")
    command = f"napari-batch-pipeline demo {args.output}"
    batch, report = _demo_run(args, files.pipeline, files.images, folder, command, params=files.params)
    import pandas as pd

    table = report.images
    params = list(batch.params_table.columns) if batch.params_table else []
    columns = ["image", "status", *params, *(c for c in table.columns if c.startswith("nuclei."))]
    with pd.option_context("display.width", 120, "display.max_columns", 12, "display.precision", 1):
        print(table[columns].to_string(index=False))
    print_summary(report)
    print(
        f"\nre-run it: napari-batch-pipeline run {files.pipeline} {files.images} -o {folder / 'results'} "
        f"--recursive --params {files.params}"
    )
    if report.cancelled:
        return EXIT_CANCELLED
    screen = _demo_screen(args, folder)
    return EXIT_CANCELLED if screen.cancelled else max(report.exit_code, screen.exit_code)


def _demo_screen(args: argparse.Namespace, folder: Path) -> Report:
    """The demo's plate: quality flags, controls, Z'."""
    import pandas as pd

    from .core.demo import SCREEN_READOUT, prepare_screen

    files = prepare_screen(folder)
    print(f"\na screen: plate {files.images}, plate map {files.annotations}, pipeline {files.pipeline}")
    batch = BatchRun(
        files.pipeline,
        files.images,
        folder / "screen_results",
        metadata=files.metadata,
        annotations=files.annotations,
        negative_control="control=negative",
        positive_control="control=positive",
        executor=args.executor or "auto",
        workers=args.workers,
        command=f"napari-batch-pipeline demo {args.output}",
    )
    report = execute(batch, quiet=args.quiet)
    images, layout = report.images, RunLayout.at(folder / "screen_results")
    for row in images[images["flagged"].fillna("") != ""].itertuples():
        print(f"flagged: {row.image}: {row.flagged}")
    assay = pd.read_csv(layout.assay_table)  # the readout's, not the best of all measurements
    for row in assay[assay["measurement"] == SCREEN_READOUT].itertuples():
        scores = f"{row.z_prime:.2f} (robust Z' {row.robust_z_prime:.2f}, SSMD {row.ssmd:.1f}, {row.level}s)"
        print(f"Z' of plate {row.plate}: {scores} on the readout {row.measurement}")
    print(
        f"re-run it: napari-batch-pipeline run {files.pipeline} {files.images} -o {layout.root} "
        f'--metadata "{files.metadata}" --annotations {files.annotations} '
        "--negative-control control=negative --positive-control control=positive"
    )
    return report


def _demo_run(
    args: argparse.Namespace, pipeline: Path, images: Path, folder: Path, command: str, **options: Any
) -> tuple[BatchRun, Report]:
    """A demo's batch over its subfolders into ``<folder>/results``, run with progress."""
    batch = BatchRun(
        pipeline,
        images,
        folder / "results",
        recursive=True,
        executor=args.executor or "auto",
        workers=args.workers,
        command=command,
        **options,
    )
    return batch, execute(batch, quiet=args.quiet)


def _large_demo(args: argparse.Namespace) -> int:
    """A slide larger than one would load whole, run tile by tile: time and peak memory."""
    import resource
    import time

    from .core.large_demo import prepare_large_demo

    folder = Path(args.output).expanduser()
    print(f"writing a {args.side} x {args.side} slide, block by block ...", flush=True)
    files = prepare_large_demo(folder, side=args.side)
    print(f"slide: {files.images / 'slide.tif'}\npipeline: {files.pipeline}")
    command = f"napari-batch-pipeline demo --large {args.output}"
    started = time.perf_counter()
    _, report = _demo_run(args, files.pipeline, files.images, folder, command, tile=1024)
    seconds = time.perf_counter() - started
    print_summary(report)
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    whole = args.side * args.side * 2
    print(
        f"\ntiled at 1024 px: {seconds:.1f} s, peak memory of the largest process {peak / 1024:.0f} MiB "
        f"(the slide alone is {whole / 2**20:.0f} MiB as uint16, {whole * 4 / 2**20:.0f} MiB as float64); "
        f"labels: {folder / 'results' / 'labels' / 'slide.ome.zarr'} (open it in napari)"
    )
    return EXIT_CANCELLED if report.cancelled else report.exit_code


def _illumination_demo(args: argparse.Namespace) -> int:
    """Plates of unevenly lit images: each plate's illumination learnt and divided out,
    then the before and after plot of intensity against distance from the centre."""
    from .core.demo import prepare_illumination_demo
    from .core.results.illumination_plot import save_illumination_plot

    folder = Path(args.output).expanduser()
    files = prepare_illumination_demo(folder, count=args.images)
    print(f"sample plates: {files.images}\npipeline: {files.pipeline}")
    command = f"napari-batch-pipeline demo --illumination {args.output}"
    _, report = _demo_run(args, files.pipeline, files.images, folder, command)
    print_summary(report)
    if report.done:
        plot = save_illumination_plot(folder / "results", "flat", folder / "illumination.png")
        print(f"the illumination functions: {folder / 'results' / 'illum'}\nbefore and after: {plot}")
    return EXIT_CANCELLED if report.cancelled else report.exit_code


def command_export_script(args: argparse.Namespace) -> int:
    from .core.export.script import export_script
    from .core.pipeline.model import Pipeline

    path = export_script(Pipeline.from_yaml(args.pipeline), args.output)
    print(f"wrote {path}\nrun it: python {path} INPUT_DIR OUTPUT_DIR")
    return 0
