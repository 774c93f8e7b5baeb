"""The command line: ``napari-batch-pipeline run | rerun | summarize | demo | estimate | export-script
| stages``.

Exit status: 0 every task done; 1 the run finished with failed tasks (or was cancelled);
2 nothing ran (bad arguments, invalid pipeline, unusable folders).

Options are never abbreviated (``--worker`` is an error, not ``--workers``). Progress goes
to this package's logger; other libraries' log messages show only from WARNING up, unless
``--verbose``.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from .cli_tiles import add_tiling
from .core.errors import ConclusionsError, PipelineError

__all__ = ["build_parser", "configure_logging", "main"]


#: this package's logger: progress and run messages; every module logs under it
PACKAGE_LOGGER = "napari_batch_pipeline"

RUN_EXAMPLES = """\
examples:
  napari-batch-pipeline run nuclei.yaml images/ -o results/
  napari-batch-pipeline run nuclei.yaml images/ -o results/ --executor dask --workers 4 --quiet
  napari-batch-pipeline run nuclei.yaml plate/ -o results/ --recursive \\
      --metadata "(?P<well>[A-H][0-9]+)_" --sweep blurred.sigma=1,2,3
  napari-batch-pipeline run nuclei.yaml images/ -o results/ --executor dask --scheduler tcp://host:8786

Running again into the same OUTPUT_DIR resumes: finished tasks are skipped.
Exit status: 0 every task done, 1 some tasks failed, 2 nothing ran.
"""

RERUN_EXAMPLES = """\
examples:
  napari-batch-pipeline rerun results/ -o results-again/
  napari-batch-pipeline rerun results/ -o results-dask/ --executor dask --workers 4
"""


class _Parser(argparse.ArgumentParser):
    """No abbreviated options (``--worker`` is not ``--workers``), exit status 2 on errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # argparse's own exit status is 2 too
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="napari-batch-pipeline",
        description="Run a scikit-image pipeline file over a folder of images.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="run a pipeline over a folder",
        description="Run a pipeline file over a folder of images; write tables and outputs to OUTPUT_DIR.",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_inputs(run)
    run.add_argument("-o", "--output", required=True, metavar="OUTPUT_DIR", help="the run folder to write")
    _add_batch_options(run)
    _add_run_options(run)

    rerun = commands.add_parser(
        "rerun",
        help="run a finished run's exact configuration again, into a new folder",
        description=(
            "Run the pipeline, inputs and options recorded in RUN_DIR again, into OUTPUT_DIR. "
            "Options given here replace the recorded ones."
        ),
        epilog=RERUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rerun.add_argument("from_run", metavar="RUN_DIR", help="a run folder (pipeline.yaml, run.json)")
    rerun.add_argument("-o", "--output", required=True, metavar="OUTPUT_DIR", help="the run folder to write")
    rerun.add_argument(
        "--trust-code",
        action="store_true",
        help="import the Python modules RUN_DIR's pipeline names for its stages (their code "
        "runs); without it, a re-run that would import one stops and names them",
    )
    _add_batch_options(rerun)
    _add_run_options(rerun)

    summarize = commands.add_parser(
        "summarize",
        help="write a run folder's summary.csv and summary.png again, grouped as asked",
        description="Summarize a run by group: per-image means, their mean, sd, sem and median.",
    )
    summarize.add_argument("run_dir", metavar="RUN_DIR", help="a run folder")
    _add_group_by(summarize)
    _add_screen_options(summarize)
    summarize.add_argument(
        "--quality",
        default=None,
        metavar="RULES.yaml",
        help="judge images by the quality: rules of this file instead (a pipeline file, or a file "
        "with quality: only)",
    )

    estimate = commands.add_parser("estimate", help="estimate memory and time; writes nothing")
    _add_inputs(estimate)
    _add_batch_options(estimate)
    _add_verbose(estimate)

    demo = commands.add_parser("demo", help="run the default pipeline on synthetic sample images")
    demo.add_argument("output", nargs="?", default="napari-batch-pipeline-demo", metavar="OUTPUT_DIR")
    demo.add_argument("--images", type=int, default=4, help="sample images per dataset (default 4)")
    demo.add_argument(
        "--illumination",
        action="store_true",
        help="the illumination demo: plates of unevenly lit images, corrected (writes illumination.png)",
    )
    demo.add_argument(
        "--large",
        action="store_true",
        help="the large-image demo: an 8192 x 8192 slide run tile by tile (prints time and peak memory)",
    )
    demo.add_argument("--side", type=int, default=8192, help=argparse.SUPPRESS)  # the slide's side, for tests
    demo.add_argument("--executor", default="auto", choices=_executors())
    demo.add_argument("--workers", type=int, default=None)
    demo.add_argument("--quiet", action="store_true", help="no progress bar: log lines only")
    _add_verbose(demo)

    export = commands.add_parser("export-script", help="write a standalone Python script of a pipeline")
    export.add_argument("pipeline", metavar="PIPELINE", help="pipeline file (YAML)")
    export.add_argument("-o", "--output", required=True, metavar="SCRIPT.py")

    commands.add_parser("stages", help="list the built-in stages and their parameters")
    return parser


def _add_inputs(command: argparse.ArgumentParser) -> None:
    command.add_argument("pipeline", metavar="PIPELINE", help="pipeline file (YAML)")
    command.add_argument("input", metavar="INPUT_DIR", help="folder of input images")


def _add_run_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--fresh", action="store_true", help="replace a previous run in OUTPUT_DIR")
    command.add_argument("--quiet", action="store_true", help="no progress bar: log lines only")
    _add_verbose(command)


def _add_verbose(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show the log messages of the libraries underneath (dask, distributed, ...)",
    )


def _add_batch_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--pattern",
        default=None,
        metavar="GLOB",
        help="file name pattern (default: every image file)",
    )
    command.add_argument("--recursive", action="store_true", default=None, help="also look in subfolders")
    command.add_argument(
        "--metadata",
        default=None,
        metavar="REGEX",
        help="named groups on the relative path become columns",
    )
    command.add_argument(
        "--executor",
        default=None,
        choices=_executors(),
        help="default: auto (threads for built-in stages, processes for code of your own or a task timeout)",
    )
    command.add_argument("--workers", type=int, default=None, metavar="N", help="default: one per CPU core")
    command.add_argument("--scheduler", default=None, metavar="ADDRESS", help="dask scheduler to connect to")
    command.add_argument(
        "--strategy", default=None, choices=("vertical", "horizontal"), help="default: vertical"
    )
    command.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="STAGE.PARAM=V1,V2,...",
        help="sweep a parameter; several form a grid",
    )
    command.add_argument(
        "--memory-budget",
        default=None,
        metavar="SIZE",
        help="e.g. 4G (default: half the free memory)",
    )
    command.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images")
    command.add_argument(
        "--params",
        default=None,
        metavar="TABLE.csv",
        help="per-dataset parameters: key columns (folder, image, metadata) and stage.param columns",
    )
    command.add_argument(
        "--task-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fail a task that runs longer (its worker process is stopped; processes or dask executor)",
    )
    add_tiling(command)
    _add_group_by(command)
    _add_screen_options(command)


def _add_screen_options(command: argparse.ArgumentParser) -> None:
    for flag, metavar, text in (
        (
            "--annotations",
            "MAP.csv",
            "plate map: key columns (folder, image, metadata such as plate, well) and annotation columns",
        ),
        (
            "--negative-control",
            "COL=VALUE",
            "the negative control images, by any column: normalized.csv (robust z-scores per plate)",
        ),
        (
            "--positive-control",
            "COL=VALUE",
            "the positive control images: assay.csv (Z' per plate and measurement)",
        ),
        (
            "--readout",
            "STAGE.MEASUREMENT",
            "the measurement the screen is about (nuclei.mean_intensity_mean): the plate figures show "
            "it (default: the pipeline's screen: readout, else the first measurement)",
        ),
    ):
        command.add_argument(flag, default=None, metavar=metavar, help=text)
    command.add_argument(
        "--table-format",
        default=None,
        choices=("csv", "parquet"),
        help="parquet: every table also as a Parquet file (default: csv)",
    )
    command.add_argument(
        "--well-aggregate",
        default=None,
        choices=("median", "mean"),
        help="how the fields of a well become its row of wells.csv, the replicates a screen "
        "normalises and scores (default: median)",
    )


def _add_group_by(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--group-by",
        default=None,
        metavar="COL,...",
        help="columns that group summary.csv (default: folder, else metadata, else parameters)",
    )


def _executors() -> tuple[str, ...]:
    from .core.executor_choice import EXECUTORS

    return EXECUTORS


def _version() -> str:
    from . import __version__

    return f"napari-batch-pipeline {__version__}"


class _Stderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each message (tests and tools swap it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _LibraryFilter(logging.Filter):
    """Lets this package's messages through; other libraries' only from ``level`` up."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == PACKAGE_LOGGER or record.name.startswith(PACKAGE_LOGGER + ".")
        return ours or record.levelno >= self.level


def configure_logging(verbose: bool = False) -> None:
    """Progress from this package's logger on stderr; other libraries' only when they warn.

    dask and distributed log at INFO a great deal (scheduler addresses, workers joining and
    leaving); they reach the terminal only with ``verbose``. Libraries may set their own
    loggers' levels, so the filter sits on the handler, not only on the root logger's level.
    Calling it again replaces the previous configuration.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(handler)
    handler = _Stderr()
    handler.addFilter(_LibraryFilter(logging.INFO if verbose else logging.WARNING))
    root.addHandler(handler)
    if verbose:
        root.setLevel(min(root.getEffectiveLevel(), logging.INFO))
    logging.getLogger(PACKAGE_LOGGER).setLevel(logging.DEBUG if verbose else logging.INFO)


def _compatible(argv: Sequence[str]) -> list[str]:
    """``run --from-run RUN_DIR ...`` (before 0.2) -> ``rerun RUN_DIR ...``."""
    argv = list(argv)
    if not argv or argv[0] != "run":
        return argv
    for index, arg in enumerate(argv):
        if arg == "--from-run" and index + 1 < len(argv):
            return ["rerun", argv[index + 1], *argv[1:index], *argv[index + 2 :]]
        if arg.startswith("--from-run="):
            return ["rerun", arg.split("=", 1)[1], *argv[1:index], *argv[index + 1 :]]
    return argv


#: a stage naming a user's function (``package.module:function``) in a pipeline file
_USER_FUNCTION = re.compile(r"^\s*-?\s*function:\s*[\"']?[A-Za-z_][\w.]*:[A-Za-z_]", re.MULTILINE)


def _start_workers_early(args: argparse.Namespace) -> bool:
    """Start the worker processes of a ``run`` that will want them now, before this
    process imports the engine: the workers' start-up (their own imports) then overlaps
    this process's, instead of following it. A guess from the options and the pipeline
    file's text (the run itself decides, and starts them if the guess missed them).
    Whether they were started."""
    if args.command != "run" or args.scheduler or args.executor not in (None, "auto", "processes"):
        return False
    if args.executor != "processes" and args.task_timeout is None:
        try:
            with open(args.pipeline, encoding="utf-8") as file:
                text = file.read(1_000_000)
        except (OSError, UnicodeDecodeError):
            return False
        if not _USER_FUNCTION.search(text):
            return False  # built-in stages: auto runs them on threads
    from .core.engine.process_pool import prestart

    prestart(_worker_guess(args), ())
    return True


def _worker_guess(args: argparse.Namespace) -> int:
    """The workers the run will take: one per core (or ``--workers``), no more than the
    files of a folder run without subfolders or a sweep (one task each, mostly)."""
    workers = args.workers or os.cpu_count() or 1
    if args.recursive or args.sweep or args.params:
        return workers
    try:
        with os.scandir(args.input) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and e.is_file()]
    except OSError:
        return workers
    if args.pattern:
        names = fnmatch.filter(names, args.pattern)
    return max(1, min(workers, len(names)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-batch-pipeline`` command; returns the exit status."""
    args = build_parser().parse_args(_compatible(sys.argv[1:] if argv is None else argv))
    configure_logging(verbose=getattr(args, "verbose", False))
    # summary.png: see figure_process; a run on worker processes imports matplotlib itself
    # while its workers compute, rather than start a third process beside their start-up
    if not _start_workers_early(args) and args.command in ("run", "rerun", "summarize", "demo"):
        from .core.results import figure_process

        figure_process.start()  # imports matplotlib meanwhile, beside this process's imports
    from . import cli_commands, cli_demos

    name = f"command_{args.command.replace('-', '_')}"
    handler = getattr(cli_commands, name, None) or getattr(cli_demos, name)
    try:
        return int(handler(args))
    except ConclusionsError as error:  # the tasks ran: not a usage error
        print(f"error: {error}", file=sys.stderr)
        return cli_commands.EXIT_FAILED
    except PipelineError as error:
        print(f"error: {error}{cli_commands.flag_hint(error.options)}", file=sys.stderr)
        return cli_commands.EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return cli_commands.EXIT_CANCELLED


def run() -> None:
    """The ``napari-batch-pipeline`` command: :func:`main`, then the process ends at once.

    By the time :func:`main` returns, every file is written and closed and the run's
    workers are done; what is left is Python's teardown, module by module (pandas,
    SciPy, matplotlib): a quarter of a second a user waits for nothing. So the worker
    pools are shut down, the logs and streams flushed, and the process exits without it.
    """
    try:
        status = main()
    except BrokenPipeError:  # piped into a command that stopped reading (``| head``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    if "napari_batch_pipeline.core.engine.process_pool" in sys.modules:
        from .core.engine.process_pool import shut_down_pools

        shut_down_pools()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can reach it
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
