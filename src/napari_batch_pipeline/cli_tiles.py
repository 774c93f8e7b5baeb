"""The command line's options for images larger than memory: ``--tile``, ``--halo``,
``--max-object`` and ``--levels``, added to a command and read back as batch options."""

from __future__ import annotations

import argparse
from typing import Any

from .core.errors import PipelineError

__all__ = ["add_tiling", "tiling_options"]


def add_tiling(command: argparse.ArgumentParser) -> None:
    tiles = command.add_argument_group(
        "images larger than memory",
        "run an image tile by tile, with exactly the whole image's labels and tables; "
        "saved outputs become OME-Zarr stores (<stage>/<image>.ome.zarr)",
    )
    tiles.add_argument(
        "--tile",
        default=None,
        metavar="N|auto|none",
        help="tile core size in pixels (every image larger than N is tiled); auto (default): "
        "only images that would not fit the memory budget; none: never",
    )
    tiles.add_argument(
        "--halo",
        default=None,
        metavar="auto|N",
        help="pixels around each tile (default auto: the stages' reach, the least that is exact)",
    )
    tiles.add_argument(
        "--max-object",
        type=int,
        default=None,
        metavar="N",
        help="largest object extent, pixels, that tiled measurements plan crops for (default 128)",
    )
    tiles.add_argument(
        "--levels",
        type=int,
        default=None,
        metavar="N",
        help="pyramid levels of a tiled image's saved outputs (default 4)",
    )


def tiling_options(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
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
