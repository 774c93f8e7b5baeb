"""The command line: ``napari-batch-pipeline run | demo | estimate | export-script | stages``.

Exit status: 0 every task done; 1 the run finished with failed tasks (or was cancelled);
2 nothing ran (bad arguments, invalid pipeline, unusable folders).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .core.errors import PipelineError

__all__ = ["main"]

log = logging.getLogger("napari_batch_pipeline")


class _Parser(argparse.ArgumentParser):
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

    run = commands.add_parser("run", help="run a pipeline over a folder")
    _add_batch_options(run, optional=True)
    run.add_argument(
        "--from-run",
        default=None,
        metavar="RUN_DIR",
        help="re-run a finished run's exact configuration (pipeline, inputs, options) into OUTPUT_DIR",
    )
    run.add_argument("-o", "--output", required=True, metavar="OUTPUT_DIR", help="the run folder to write")
    run.add_argument("--fresh", action="store_true", help="replace a previous run in OUTPUT_DIR")
    run.add_argument("--quiet", action="store_true", help="no progress bar: log lines only")

    estimate = commands.add_parser("estimate", help="estimate memory and time; writes nothing")
    _add_batch_options(estimate)

    demo = commands.add_parser("demo", help="run the default pipeline on synthetic sample images")
    demo.add_argument("output", nargs="?", default="napari-batch-pipeline-demo", metavar="OUTPUT_DIR")
    demo.add_argument("--images", type=int, default=12, help="how many sample images (default 12)")
    demo.add_argument("--executor", default="processes", choices=_executors())
    demo.add_argument("--workers", type=int, default=None)
    demo.add_argument("--quiet", action="store_true")

    export = commands.add_parser("export-script", help="write a standalone Python script of a pipeline")
    export.add_argument("pipeline", metavar="PIPELINE", help="pipeline file (YAML)")
    export.add_argument("-o", "--output", required=True, metavar="SCRIPT.py")

    commands.add_parser("stages", help="list the built-in stages and their parameters")
    return parser


def _add_batch_options(command: argparse.ArgumentParser, optional: bool = False) -> None:
    nargs = "?" if optional else None
    command.add_argument("pipeline", nargs=nargs, metavar="PIPELINE", help="pipeline file (YAML)")
    command.add_argument("input", nargs=nargs, metavar="INPUT_DIR", help="folder of input images")
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
    command.add_argument("--executor", default=None, choices=_executors(), help="default: processes")
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


def _executors() -> tuple[str, ...]:
    from .core.options import EXECUTORS

    return EXECUTORS


def _version() -> str:
    from . import __version__

    return f"napari-batch-pipeline {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-batch-pipeline`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from . import cli_commands

    handler = getattr(cli_commands, f"command_{args.command.replace('-', '_')}")
    try:
        return int(handler(args))
    except PipelineError as error:
        print(f"error: {error}{cli_commands.flag_hint(error.options)}", file=sys.stderr)
        return cli_commands.EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return cli_commands.EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
