"""A task whose image is larger than memory: decide, then run it tile by tile.

:func:`run_tiled_task` is the worker's first step for every task that may be tiled: it
answers None (run the image whole, as always) unless the batch's tiling settings say this
image is to be tiled; then it runs the chain tile by tile (:mod:`..tiles`), writes the
saved outputs as OME-Zarr stores and the tables as any task does, and returns the task's
summary values.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from ..images.lazy import open_region_reader
from ..run_folder.outputs import write_task_outputs
from ..tiles import TileSettings, tiled_chain
from ..tiles.settings import AUTO, NONE

__all__ = ["run_tiled_task"]

#: the chain holds about this many float64 copies of an image
_COPIES = 10


def run_tiled_task(job: Any, pipeline: Any) -> tuple[dict[str, Any], int] | None:
    """Run ``job`` (a ``TaskJob``) tiled; return its summary and the bytes it held at
    most (about ten float64 copies of a tile with its halo), or None to run it whole.

    Raises
    ------
    PipelineError
        If the image is to be tiled and a stage cannot run tiled (the task fails with it).
    ImageReadError, StageError, OSError
        As a whole-image task would.
    """
    if not job.tiling:
        return None
    settings = TileSettings(
        job.tiling["tile"],
        job.tiling["halo"],
        job.tiling["max_object"],
        job.tiling["levels"],
        job.tiling.get("budget"),
    )
    if settings.tile == NONE:
        return None
    pixels = getattr(job.input, "pixels", None)
    if settings.tile == AUTO and pixels is not None and pixels * 8 * _COPIES <= settings._budget():
        return None  # the header says it fits: no need to open the file here
    with open_region_reader(job.input) as reader:
        core = settings.core_for(reader.shape, reader.dtype)
        if core is None:
            return None
        chain = tiled_chain(pipeline)
        layout = job.layout
        stem = job.stem
        outputs = {stage: layout.tiled_output(stage, stem) for stage in pipeline.saved_stages}
        work = layout.tile_work(job.key)
        threads = int(job.tiling.get("threads", 1))
        from ..tiles.run import run_tiled  # with scipy's sparse graphs: only for a tiled image

        tables = run_tiled(
            pipeline, chain, reader, settings, core, work=work, outputs=outputs, threads=threads
        )
        for folder in (work.parent, work.parent.parent):  # intermediate/tiles/, intermediate/
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: other tasks' records and intermediates stay
    halo = chain.radius if settings.halo is None else settings.halo
    held = _COPIES * 8 * math.prod(c + 2 * halo for c in core)
    summary = write_task_outputs(
        layout,
        [],
        pipeline.table_stages,
        tables,
        key=job.key,
        image=job.image,
        stem=stem,
        label=job.label,
        params=job.params,
        metadata=job.metadata,
    )
    return summary, held
