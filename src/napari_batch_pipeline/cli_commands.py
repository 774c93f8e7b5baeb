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

from .cli_tiles import tiling_options
from .core.batch import BatchRun
from .core.engine.events import ExecutorChosen, RunFinished, RunStarted, StageProgress, TaskFinished
from .core.engine.measure import estimate_plan
from .core.engine.report import Report
from .core.errors import PipelineError
from .core.plan.batch_plan import plan_batch
from .core.plan.estimate import format_seconds, parse_size
from .core.plan.parameters import parse_sweep
from .core.run_folder.layout import RunLayout

__all__ = [
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
    "readout": "--readout",
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
        well_aggregate=args.well_aggregate or "median",
        readout=args.readout,
        **tiling_options(args),
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
    if screen.get("quality") is not None:  # the rules the run was last judged by (summarize --quality)
        pipeline = pipeline.with_quality(screen["quality"])
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
        **tiling_options(args, info.get("tiling") if isinstance(info.get("tiling"), dict) else None),
        well_aggregate=args.well_aggregate or screen.get("well_aggregate") or "median",
        readout=args.readout or screen.get("readout"),
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
            elif isinstance(event, ExecutorChosen):
                message = f"auto: the rest on {event.executor}: {event.reason}"
                if bar is not None:
                    bar.write(message, file=sys.stderr)
                else:
                    log.info("%s", message)
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
        "readout",
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


def command_export_script(args: argparse.Namespace) -> int:
    from .core.export.script import export_script
    from .core.pipeline.model import Pipeline

    path = export_script(Pipeline.from_yaml(args.pipeline), args.output)
    print(f"wrote {path}\nrun it: python {path} INPUT_DIR OUTPUT_DIR")
    return 0
