"""npe2 reader: open a batch run folder in napari.

A run folder (``pipeline.yaml`` and ``images.csv``, see DESIGN) opens as lazy layers:
the input images of the done tasks, then one layer per saved stage output (labels for
masks and labels, images otherwise), then one image per group result of a group stage
(``<stage>/<group>.tif``, an illumination function, with its pixel size). Each is one
dask-backed stack when the images share shape and dtype (a slider steps through the
tasks, in images.csv order), else one layer per image up to a cap. A tiled image's
output, an OME-Zarr store, is one multiscale layer of its own, whose data is the store's
levels as lazy zarr arrays (napari reads the chunks of the level it shows). Nothing but
the group results (one image per group) and the smallest level of a tiled image's
(for its contrast limits) is read until napari shows it.

The tables travel in each layer's ``metadata``: ``images`` (images.csv), ``tables``
(``{stage: <stage>.csv}``), ``names`` (the task shown at each step of the stack) and
``run_folder``. Opened in a viewer, a stack keeps the objects (a labels layer's
``features``) and the metadata of the task the slider shows, as the batch widget's
stacks do. No Qt here: the reader works wherever napari's layer model does.

The manifest offers this reader for folders only (no file name pattern), and
:func:`napari_get_reader` looks at two file names before it says yes, so an ordinary
image, table or folder opened in napari never waits on it or asks which reader to use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .core.run_folder.layout import RunLayout

if TYPE_CHECKING:
    from .core.run_folder.lazy import SavedOutputs
    from .core.run_folder.reader import RunResults

__all__ = ["MAX_SEPARATE", "napari_get_reader", "read_run_folder", "run_layer_data", "saved_layer_data"]

#: at most this many layers per stage when the outputs cannot be stacked
MAX_SEPARATE = 20

LayerData = tuple[Any, dict[str, Any], str]


def napari_get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The run-folder reader if ``path`` is a run folder, else None (napari asks another plugin).

    Quick and quiet: two ``stat`` calls, no file read, nothing raised.
    """
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | Path):
        return None
    try:
        claimed = RunLayout(Path(path)).is_run_folder()
    except (OSError, ValueError):  # an unreadable or malformed path is not a run folder
        return None
    return read_run_folder if claimed else None


def read_run_folder(path: str | list[str]) -> list[LayerData]:
    """Layer data of a run folder: inputs and saved stage outputs, lazily, with the tables.

    Raises
    ------
    PipelineError
        If the folder is not a readable run folder.
    ValueError
        If it has neither saved outputs nor reachable input images to show.
    """
    from .core.run_folder.reader import RunResults

    folder = path[0] if isinstance(path, list) else path
    results = RunResults(folder)
    layers = run_layer_data(results)
    if not layers:
        raise ValueError(
            f"run folder {str(folder)!r} has no saved stage outputs (no stage has save: true) "
            "and its input images are not reachable; open images.csv or the <stage>.csv tables instead"
        )
    metadata = [meta["metadata"] for _, meta, _ in layers]
    stacks = [_stack_key(meta) for meta in metadata if len(meta.get("names") or ()) > 1]
    _follow_steps(results, stacks)
    return layers


def _stack_key(metadata: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """What tells a run's stack apart from its others: its stage and its tasks' names (not
    its layer name, which napari changes to ``"... [1]"`` when the run is open already)."""
    return str(metadata.get("stage", "")), tuple(metadata.get("names") or ())


def _follow_steps(results: RunResults, stacks: list[tuple[str, tuple[str, ...]]]) -> None:
    """The ``stacks`` (by :func:`_stack_key`), once the viewer opening them has added them,
    keep the objects (labels' ``features``) and metadata of the task the slider shows, as
    the batch widget's do (:class:`._layer_steps.StepTables`), whatever napari names the
    layers. Nothing without a current viewer (the reader called from Python)."""
    import napari

    viewer = napari.current_viewer()
    if viewer is None or not stacks:
        return
    pending = set(stacks)

    def on_inserted(event: Any) -> None:
        from ._layer_steps import step_tables

        layer = event.value
        key = _stack_key(layer.metadata)
        if key in pending and layer.metadata.get("run_folder") == str(results.path):
            pending.discard(key)
            tables = step_tables(results, [layer]).get(layer.name)
            if tables is not None:
                tables.follow(viewer, layer)
        if not pending:
            viewer.layers.events.inserted.disconnect(on_inserted)

    viewer.layers.events.inserted.connect(on_inserted)


def run_layer_data(results: RunResults, *, max_separate: int = MAX_SEPARATE) -> list[LayerData]:
    """Layer data tuples for a run's inputs and saved outputs (see the module docstring)."""
    metadata = {
        "run_folder": str(results.path),
        "images": results.images,
        "tables": {stage: results.table(stage) for stage in results.table_stages},
    }
    prefix = results.path.name
    layers = saved_layer_data(results.saved_inputs(max_separate=max_separate), prefix, metadata)
    for stage in results.pipeline.saved_stages:
        saved = results.saved_outputs(stage, max_separate=max_separate)
        stage_layers = saved_layer_data(saved, prefix, metadata)
        if saved.is_labels:  # a stack's features follow its slider (see _follow_steps)
            single = [layer for layer in stage_layers if len(layer[1]["metadata"]["names"]) == 1]
            _add_features(results, stage, single)
        layers += stage_layers
    for stage, group, path in results.group_results():  # e.g. an illumination function
        data, scale = results.group_result(path)
        meta: dict[str, Any] = {"name": f"{prefix}: {stage} {group}", "scale": scale}
        meta |= {
            "metadata": {**metadata, "stage": stage, "group": group},
            "contrast_limits": _contrast_limits(data),
        }
        layers.append((data, meta, "image"))
    return layers


def _add_features(results: RunResults, stage: str, layers: list[LayerData]) -> None:
    """Give each labels layer of one image its objects (the rows of the table stage that
    measures ``stage``) as napari ``features``, and the layer metadata of where it comes
    from. A stack's steps are the batch widget's business (its features follow the slider)."""
    from .core.run_folder.objects import measured_by, objects_by_row, row_description, task_columns

    table_stage = measured_by(results.pipeline, stage)
    rows = {results.row_name(index): index for index in results.done_rows()}
    positions: list[np.ndarray] = []
    objects = None
    if table_stage is not None:
        objects = results.table(table_stage)
        columns = task_columns(results.images, results.all_param_columns)
        positions = objects_by_row(results.images, objects, columns)
    for _, meta, _ in layers:
        index = rows.get(meta["metadata"]["names"][0])
        if index is None:
            continue
        meta["metadata"].update(row_description(results, index))
        if objects is not None:
            features = objects.iloc[positions[index]].reset_index(drop=True)
            if "label" in features and "index" not in features:
                features.insert(0, "index", features["label"].to_numpy())
            meta["features"] = features


def saved_layer_data(saved: SavedOutputs, prefix: str, metadata: dict[str, Any]) -> list[LayerData]:
    """Layer data tuples of one stage's saved outputs: one stack, or one per image.

    Layers are named ``"<prefix>: <stage>"`` (a stack) or ``"<prefix>: <stage> <image>"``;
    a tiled image's (:attr:`SavedOutputs.pyramids`) is multiscale: its data is the list
    of levels, largest first.
    """
    layer_type = "labels" if saved.is_labels else "image"
    if saved.stack is not None:
        arrays = [(saved.stack, f"{prefix}: {saved.stage}", saved.names, saved.scale_of(saved.stack))]
    else:
        arrays = [
            (array, f"{prefix}: {saved.stage} {name}", [name], saved.scale_of(array))
            for array, name in zip(saved.separate, saved.names, strict=True)
        ]
    arrays += [(p.levels, f"{prefix}: {saved.stage} {p.name}", [p.name], p.scale) for p in saved.pyramids]
    known = {id(p.levels): p.contrast_limits for p in saved.pyramids}  # a large input's, from a few chunks
    layers: list[LayerData] = []
    for data, name, names, scale in arrays:
        meta: dict[str, Any] = {"name": name, "metadata": {**metadata, "stage": saved.stage, "names": names}}
        meta["scale"] = scale  # the pixel size (None: unknown)
        multiscale = isinstance(data, list)
        if multiscale:
            meta["multiscale"] = True
        if layer_type == "image":
            limits = known.get(id(data)) if multiscale else None
            meta["contrast_limits"] = limits or _contrast_limits(data[-1] if multiscale else data)
        else:
            meta["opacity"] = 0.6
        layers.append((data, meta, layer_type))
    return layers


def _contrast_limits(data: Any) -> tuple[float, float]:
    """From the first image only, so that opening a stack reads one file, not all."""
    first = np.asarray(data[0] if data.ndim > 2 else data)
    low, high = float(np.nanmin(first)), float(np.nanmax(first))
    return (low, high) if high > low else (low, low + 1.0)
