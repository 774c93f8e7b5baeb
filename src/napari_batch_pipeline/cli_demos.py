"""The ``demo`` command: the sample datasets, the illumination plates, the screen, a
threshold against a classifier, and the large slide, each written to a folder and run as
a user would run them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .cli_commands import EXIT_CANCELLED, execute, print_summary
from .core.batch import BatchRun
from .core.engine.report import Report
from .core.run_folder.layout import RunLayout

__all__ = ["command_demo"]


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
    if screen.cancelled:
        return EXIT_CANCELLED
    classifier = _demo_classifier(args, folder)
    if classifier.cancelled:
        return EXIT_CANCELLED
    return max(report.exit_code, screen.exit_code, classifier.exit_code)


def _demo_classifier(args: argparse.Namespace, folder: Path) -> Report:
    """Nuclei on a background gradient: Otsu's threshold against a pixel classifier trained
    on strokes painted on another such image, each scored against the true nuclei."""
    import numpy as np
    import tifffile
    from scipy import ndimage as ndi

    from .core.demo import prepare_classifier_demo

    files = prepare_classifier_demo(folder)
    print(
        f"\na threshold against a classifier: images {files.images} (a strong background gradient), "
        f"pipeline {files.pipeline}, training {files.pipeline.with_name('classifier_training.npz')}"
    )
    batch = BatchRun(
        files.pipeline,
        files.images,
        folder / "classifier_results",
        executor=args.executor or "auto",
        workers=args.workers,
        command=f"napari-batch-pipeline demo {args.output}",
    )
    report = execute(batch, quiet=args.quiet)
    layout = RunLayout.at(folder / "classifier_results")
    counts = report.images.set_index("image")
    print(f"{'image':<14}{'true nuclei':>12}{'otsu IoU':>10}{'nuclei':>8}{'classifier IoU':>16}{'nuclei':>8}")
    for truth_file in sorted(files.truth.glob("*.tif")):
        truth = tifffile.imread(truth_file) > 0
        row = f"{truth_file.name:<14}{ndi.label(truth)[1]:>12}"
        for stage, width in (("otsu", 10), ("painted", 16)):
            saved = layout.stage_dir(stage) / truth_file.name
            count = counts.get(f"{stage}_nuclei.count", {}).get(truth_file.name, float("nan"))
            if saved.is_file():
                mask = tifffile.imread(saved) > 0
                iou = int(np.count_nonzero(mask & truth)) / max(int(np.count_nonzero(mask | truth)), 1)
                row += f"{iou:>{width}.2f}{count:>8.0f}"
            else:
                row += f"{'-':>{width}}{'-':>8}"
        print(row)
    print(f"re-run it: napari-batch-pipeline run {files.pipeline} {files.images} -o {layout.root}")
    return report


def _demo_screen(args: argparse.Namespace, folder: Path) -> Report:
    """The demo's plate: quality flags, controls, Z'."""
    import pandas as pd

    from .core.demo import prepare_screen
    from .core.results.conclusions import readout_shown
    from .core.run_folder.reader import RunResults

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
    # the Z' of the readout (the pipeline's screen: readout), not the best of all measurements
    readout = readout_shown(RunResults(layout.root))
    assay = pd.read_csv(layout.assay_table)
    for row in assay[assay["measurement"] == readout].itertuples():
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

    from .core.demo import prepare_large_demo

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
