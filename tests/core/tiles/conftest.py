"""Fixtures for tiled runs: the chain run on the whole image and tile by tile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from napari_batch_pipeline.core.images.lazy import RegionReader
from napari_batch_pipeline.core.images.ome_zarr import open_levels
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.tiles import TileSettings, run_tiled, tiled_chain


@pytest.fixture
def run_both(tmp_path: Path) -> Callable[..., tuple[dict[str, Any], dict[str, Any]]]:
    """``run_both(pipeline, image, tile)``: (the whole image's outputs, the tiled ones:
    every saved stage's level 0 and every table)."""

    def run(
        pipeline: Pipeline, image: np.ndarray, tile: int, threads: int = 1, **settings: Any
    ) -> tuple[dict, dict]:
        whole = pipeline.run(image)
        folder = tmp_path / f"tiled-{tile}-{len(list(tmp_path.iterdir()))}"
        options = TileSettings(tile=tile, **settings)
        core = options.core_for(image.shape, image.dtype)
        assert core is not None, "the image must be larger than the tile"
        outputs = {name: folder / f"{name}.ome.zarr" for name in pipeline.saved_stages}
        tables = run_tiled(
            pipeline,
            tiled_chain(pipeline),
            RegionReader(image, None),
            options,
            core,
            work=folder / "work",
            outputs=outputs,
            threads=threads,
        )
        tiled: dict[str, Any] = {name: np.asarray(open_levels(path)[0]) for name, path in outputs.items()}
        tiled.update(tables)
        return whole, tiled

    return run
