"""One image, tile by tile: the same chain, exactly the whole image's answer.

:func:`run_tiled` walks the tiles of one image in passes (see :mod:`.kinds` for the
stage kinds): one pair of passes per global threshold (the value range, then the
histogram); one pass that runs the image stages on each tile with its halo, writes the
saved ones and labels the core; the join of the labels across seams (:mod:`.seams`);
the saved labels written with their final ids; the measurements (:mod:`.objects`).
Each tile's labelling is kept in a work folder, so a run killed mid-image resumes at
its next tile; the folder is removed when the image is done.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from skimage import measure as sk_measure

from ..files import atomic_path
from ..images.lazy import RegionReader
from ..images.ome_zarr import OmeZarrWriter
from .grid import Box, Tile, TileGrid, expand, shift
from .kinds import TiledChain
from .objects import measure_objects
from .seams import Joined, TileObjects, join, tile_objects
from .settings import TileSettings, chunk_for
from .stop import check_stop
from .thresholds import Histogram, ValueRange

__all__ = ["TiledImage", "run_tiled"]

Progress = Callable[[str, int, int], None]


class TiledImage:
    """The pixel stages of a chain over regions of one image.

    Parameters
    ----------
    pipeline : Pipeline
        The pipeline (with its parameter set applied).
    chain : TiledChain
        Its stages by kind.
    reader : RegionReader
        The image.
    halo : int
        Pixels read around each region.
    thresholds : dict
        The global thresholds known so far, by stage name.
    """

    def __init__(
        self, pipeline: Any, chain: TiledChain, reader: RegionReader, halo: int, thresholds: dict[str, Any]
    ):
        self.pipeline, self.chain, self.reader = pipeline, chain, reader
        self.halo, self.thresholds = halo, thresholds

    def pixels(self, box: Box, until: str | None = None) -> dict[str, np.ndarray]:
        """The input and every image stage's output on ``box`` (up to ``until``), exact."""
        shape = self.reader.shape
        region = expand(box, (self.halo,) * len(shape), shape)
        inner = shift(box, tuple(s.start for s in region))
        available: dict[str, Any] = {"input": self.reader.read(region)}
        for stage in self.chain.pixel:
            if stage.name == until:
                break
            if stage.name in self.thresholds:
                (source,) = stage.inputs.values()
                available[stage.name] = available[source] > self.thresholds[stage.name]
            else:
                available[stage.name] = self.pipeline.run_stage(stage.name, available)
        return {name: np.ascontiguousarray(value[inner]) for name, value in available.items()}


def run_tiled(
    pipeline: Any,
    chain: TiledChain,
    reader: RegionReader,
    settings: TileSettings,
    core: tuple[int, ...],
    *,
    work: Path,
    outputs: Mapping[str, Path],
    progress: Progress | None = None,
    threads: int = 1,
) -> dict[str, pd.DataFrame]:
    """Run ``pipeline`` on ``reader``'s image tile by tile.

    Parameters
    ----------
    pipeline, chain, reader, settings
        The chain, its stages by kind, the image and the tiling options.
    core : tuple of int
        The tile core size per axis (:meth:`TileSettings.core_for`).
    work : Path
        A folder of this image's own for the per-tile records (kept for a resume,
        removed at the end).
    outputs : mapping
        Saved stage -> its OME-Zarr store's path.
    progress : callable, optional
        ``progress(step, done, total)`` after each tile of each pass.
    threads : int
        Tiles computed at once in the image passes (the threshold passes, the labelling):
        more than one where the run has cores to spare (one large image).

    Returns
    -------
    dict of str to DataFrame
        Each table stage's rows, as the stage gives them on the whole image.
    """
    halo = chain.radius if settings.halo is None else settings.halo
    grid = TileGrid(reader.shape, core)
    chunks = tuple(chunk_for(c) if c >= 64 else c for c in core)
    work.mkdir(parents=True, exist_ok=True)
    thresholds = _thresholds(pipeline, chain, reader, grid, halo, work, progress, threads)
    image = TiledImage(pipeline, chain, reader, halo, thresholds)
    components = {s.name for s in chain.components}

    creating = threading.Lock()

    def store(name: str, dtype: Any) -> OmeZarrWriter:
        with creating:
            return _store(name, dtype)

    def _store(name: str, dtype: Any) -> OmeZarrWriter:
        if name not in stores:
            stores[name] = OmeZarrWriter(
                outputs[name],
                reader.shape,
                np.uint32 if name in components else dtype,
                chunks,
                spacing=reader.spacing,
                labels=name in components,
                levels=settings.levels,
                name=name,
            )
        return stores[name]

    stores: dict[str, OmeZarrWriter] = {}
    joined = _label_tiles(pipeline, chain, image, grid, work, outputs, store, progress, threads)
    keeps = _kept(chain, joined)
    provisional = _provisional(work, reader.shape, core, create=False) if joined is not None else None
    for name in outputs:
        writer = store(name, reader.dtype)  # an image stage's store exists once a tile is written
        if name in keeps and joined is not None:

            def write(tile: Tile, writer: OmeZarrWriter = writer, keep: np.ndarray = keeps[name]) -> None:
                writer.write(tile.core, _final_labels(provisional, joined, keep, grid, tile.core))

            for _ in _ordered(write, grid, threads):
                pass
        writer.finish()
    tables: dict[str, pd.DataFrame] = {}
    for stage in chain.tables:
        assert joined is not None
        labels = stage.inputs["labels"]

        def labels_of(box: Box, labels: str = labels) -> np.ndarray:
            return _final_labels(provisional, joined, keeps[labels], grid, box)

        tables[stage.name] = measure_objects(
            pipeline,
            stage,
            image,
            grid,
            joined,
            keeps[labels],
            labels_of,
            settings.max_object,
            settings.budget_bytes(),
        )
    shutil.rmtree(work, ignore_errors=True)
    return tables


def _thresholds(
    pipeline: Any,
    chain: TiledChain,
    reader: RegionReader,
    grid: TileGrid,
    halo: int,
    work: Path,
    progress: Progress | None,
    threads: int = 1,
) -> dict[str, Any]:
    """Every global threshold, learnt from the whole image in two passes each."""
    record = work / "thresholds.json"
    known: dict[str, Any] = {}
    if record.exists():
        saved = json.loads(record.read_text())
        known = {name: np.dtype(kind).type(value) for name, (value, kind) in saved.items()}
    for name in chain.thresholds:
        if name in known:
            continue
        stage = pipeline[name]
        (source,) = stage.inputs.values()
        image = TiledImage(pipeline, chain, reader, halo, known)
        span = ValueRange()

        def values_of(tile: Tile, name: str = name, source: str = source, image: TiledImage = image) -> Any:
            return image.pixels(tile.core, until=name)[source]

        for tile, values in _ordered(values_of, grid, threads):
            span.add(values)
            _tell(progress, f"range for {name}", tile, grid)
        histogram: Histogram | None = None
        for tile, values in _ordered(values_of, grid, threads):
            if histogram is None:
                histogram = Histogram(span.low, span.high, values.dtype)
            histogram.add(values)
            _tell(progress, f"histogram for {name}", tile, grid)
        assert histogram is not None
        known[name] = histogram.threshold(stage.params["method"])
        with atomic_path(record) as temporary:
            temporary.write_text(
                json.dumps({k: [np.asarray(v).item(), np.asarray(v).dtype.str] for k, v in known.items()})
            )
    return known


def _label_tiles(
    pipeline: Any,
    chain: TiledChain,
    image: TiledImage,
    grid: TileGrid,
    work: Path,
    outputs: Mapping[str, Path],
    store: Callable[[str, Any], OmeZarrWriter],
    progress: Progress | None,
    threads: int = 1,
) -> Joined | None:
    """Run the image stages on every tile, write the saved ones, label the cores; join."""
    pixel_saved = [name for name in outputs if name in {s.name for s in chain.pixel}]
    labelling = chain.components[0] if chain.components else None
    provisional = _provisional(work, image.reader.shape, grid.tile, create=True) if labelling else None
    connectivity = int(labelling.params.get("connectivity", len(grid.shape))) if labelling else 0

    def label_tile(tile: Tile) -> TileObjects | None:
        done = work / f"tile_{tile.index}.npz"
        if done.exists():  # labelled before the run was interrupted
            with np.load(done) as data:
                return TileObjects.from_npz(data)
        values = image.pixels(tile.core)
        for name in pixel_saved:
            store(name, values[name].dtype).write(tile.core, values[name])
        if labelling is None:
            return None
        assert provisional is not None
        (mask,) = labelling.inputs.values()
        local = sk_measure.label(values[mask].astype(bool), connectivity=connectivity).astype(np.int32)
        provisional[tile.core] = local  # the chunk of this tile's core alone
        objects = tile_objects(local, tile, image.reader.shape)
        with atomic_path(done) as temporary, open(temporary, "wb") as file:
            np.savez(file, **objects.to_npz())  # type: ignore[arg-type]
        return objects

    records: list[TileObjects] = []
    for tile, objects in _ordered(label_tile, grid, threads):
        if objects is not None:
            records.append(objects)
        _tell(progress, "tiles", tile, grid)
    if labelling is None:
        return None
    return join(records, grid, connectivity)


def _kept(chain: TiledChain, joined: Joined | None) -> dict[str, np.ndarray]:
    """For each component stage, which final ids it keeps (index 0, the background: no)."""
    if joined is None:
        return {}
    keep = np.ones(joined.count + 1, dtype=bool)
    keep[0] = False
    kept: dict[str, np.ndarray] = {}
    for stage in chain.components:
        if stage.function == "remove_small_objects":
            smallest = int(stage.params.get("min_size", 0))
            if smallest >= 1:
                keep = keep & np.concatenate([[False], joined.areas >= smallest])
        kept[stage.name] = keep
    return kept


def _final_labels(provisional: Any, joined: Joined, keep: np.ndarray, grid: TileGrid, box: Box) -> np.ndarray:
    """The final labels of a component stage on ``box``, assembled from the tiles."""
    out = np.zeros(tuple(s.stop - s.start for s in box), dtype=np.int64)
    origin = tuple(s.start for s in box)
    for tile in grid.overlapping(box):
        part = tuple(
            slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(tile.core, box, strict=True)
        )
        ids = joined.tile_map(tile.index)[np.asarray(provisional[part])]
        out[shift(part, origin)] = np.where(keep[ids], ids, 0)
    return out


def _provisional(work: Path, shape: tuple[int, ...], core: tuple[int, ...], *, create: bool) -> Any:
    """The tiles' provisional labels, one chunk per tile core."""
    import numcodecs
    import zarr

    path = work / "provisional.zarr"
    if create and not (path / ".zarray").exists():
        return zarr.create_array(
            str(path),
            shape=shape,
            chunks=core,
            dtype=np.int32,
            compressors=numcodecs.Zstd(level=1),
            fill_value=0,
            zarr_format=2,
        )
    return zarr.open_array(str(path), mode="r+" if create else "r")


def _ordered(function: Callable[[Tile], Any], grid: TileGrid, threads: int) -> Iterator[tuple[Tile, Any]]:
    """``(tile, function(tile))`` for every tile in order, computed on ``threads`` threads
    with at most twice that many tiles in flight (their arrays stay bounded)."""
    if threads <= 1:
        for tile in grid:
            yield tile, function(tile)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="tile") as pool:
        window: deque[tuple[Tile, Future[Any]]] = deque()
        for tile in grid:
            window.append((tile, pool.submit(function, tile)))
            if len(window) >= 2 * threads:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


def _tell(progress: Progress | None, step: str, tile: Tile, grid: TileGrid) -> None:
    check_stop(f"{step}, at tile {tile.index + 1} of {len(grid)}")
    if progress is not None:
        progress(step, tile.index + 1, len(grid))
