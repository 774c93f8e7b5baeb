"""Per-object tables on label layers (napari ``features``), and layer metadata that says
which run, image, field and parameter set a layer shows.

A run's saved outputs come back as one stack per stage, a task per step of the slider:
:class:`StepTables` keeps such a layer's ``features`` (the objects of the task shown, one
row per label) and its ``metadata`` (``image``, ``scene``, ``t``, ``parameters``,
``row``) on the step the viewer shows. Which rows belong to which task is
:mod:`napari_batch_pipeline.core.run_folder.objects`' business; this module only wires.

The batch widget's run layers and the reader's both use it; no Qt here (napari's layer
and viewer models only), as in the reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from napari.layers import Labels, Layer

from .core.run_folder.objects import measured_by, objects_by_row, row_description, task_columns
from .core.run_folder.reader import RunResults
from .core.run_folder.tables import LABEL

if TYPE_CHECKING:
    from napari.components import ViewerModel as Viewer

__all__ = ["StepTables", "as_features", "shown_text", "step_tables"]


def as_features(table: pd.DataFrame) -> pd.DataFrame:
    """A per-object table as a Labels layer's ``features``: one row per label, with the
    ``index`` column napari matches label values by (a copy of ``label``) first."""
    features = table.reset_index(drop=True)
    if LABEL in features and "index" not in features:
        features = features.copy()
        features.insert(0, "index", features[LABEL].to_numpy())
    return features


@dataclass(eq=False)  # each is its layer's own: napari finds its handlers by ==, tables and all
class StepTables:
    """What each step of a run's layer shows: where it comes from, and its objects.

    Attributes
    ----------
    descriptions : list of dict
        Per step (task), the layer metadata that says where it comes from
        (:func:`~napari_batch_pipeline.core.run_folder.objects.row_description`).
    table : str or None
        The per-object table the layer's features come from; None: its stage is not
        measured.
    objects : DataFrame or None
        That table.
    positions : list of int ndarray
        Per step, where its objects are in ``objects``; the features of a step are made
        when it is shown.
    """

    descriptions: list[dict[str, Any]]
    table: str | None = None
    objects: pd.DataFrame | None = None
    positions: list[np.ndarray] = field(default_factory=list)
    _layer: Layer | None = None
    _viewer: Viewer | None = None

    def features(self, step: int) -> pd.DataFrame | None:
        """The features of step ``step``: its objects, one row per label; None without a table."""
        if self.objects is None or not self.positions:
            return None
        return as_features(self.objects.iloc[self.positions[step]])

    def attach(self, viewer: Viewer, layer: Layer) -> None:
        """Keep ``layer`` on the step ``viewer`` shows, from now until :meth:`detach`."""
        self._viewer, self._layer = viewer, layer
        if self.table is not None:
            layer.metadata["table"] = self.table
        if len(self.descriptions) > 1:
            viewer.dims.events.current_step.connect(self.update)
        self.update()

    def follow(self, viewer: Viewer, layer: Layer) -> None:
        """:meth:`attach`, until ``layer`` leaves ``viewer``, with no owner to keep this
        object: napari holds its handlers of methods weakly, of functions strongly."""
        self.attach(viewer, layer)

        def on_removed(event: Any) -> None:
            if event.value is layer:
                self.detach()
                viewer.layers.events.removed.disconnect(on_removed)

        viewer.layers.events.removed.connect(on_removed)

    def detach(self) -> None:
        if self._viewer is not None:
            self._viewer.dims.events.current_step.disconnect(self.update)
        self._viewer = self._layer = None

    def step(self) -> int:
        """The step (task) the viewer shows of the layer; 0 for a layer of one task."""
        layer, viewer = self._layer, self._viewer
        if layer is None or viewer is None or len(self.descriptions) <= 1:
            return 0
        position = layer.world_to_data(viewer.dims.point)[0]
        return int(np.clip(np.round(position), 0, len(self.descriptions) - 1))

    def update(self, _event: Any = None) -> None:
        layer = self._layer
        if layer is None or not self.descriptions:
            return
        index = self.step()
        if layer.metadata.get("row") == self.descriptions[index]["row"] and _event is not None:
            return
        layer.metadata.update(self.descriptions[index])
        if self._viewer is not None and len(self.descriptions) > 1:  # a stack: say which image
            overlay = self._viewer.canvas.overlays["text"]
            overlay.text = shown_text(self.descriptions[index])
            overlay.visible = True
        features = self.features(index)
        if features is not None and isinstance(layer, Labels):
            layer.features = features


def shown_text(description: dict[str, Any]) -> str:
    """What the viewer's text overlay says of the task a stack shows:
    ``'nuclei_03.tif [blurred.sigma=2.0] (row 3)'``, with scene and time point (``s0 t2``)
    where the run has them; the row is the task's row of images.csv, from 1."""
    field = " ".join(f"{key[0]}{description[key]}" for key in ("scene", "t") if key in description)
    label = f" [{description['parameters']}]" if description.get("parameters") else ""
    return f"{description['image']}{' ' + field if field else ''}{label} (row {description['row'] + 1})"


def step_tables(results: RunResults, layers: list[Layer]) -> dict[str, StepTables]:
    """The :class:`StepTables` of a run's layers (as :func:`.._reader.run_layer_data`
    makes them: metadata ``stage`` and ``names``, a task's name per step), by layer name."""
    rows = {results.row_name(index): index for index in results.done_rows()}
    columns = task_columns(results.images, results.all_param_columns)
    by_table: dict[str, tuple[pd.DataFrame, list[np.ndarray]]] = {}
    described: dict[int, dict[str, Any]] = {}  # the layers of a run share their rows
    found = {}
    for layer in layers:
        names = layer.metadata.get("names") or []
        if not names or any(name not in rows for name in names):
            continue
        indices = [rows[name] for name in names]
        for index in indices:
            if index not in described:
                described[index] = row_description(results, index)
        tables = StepTables([dict(described[index]) for index in indices])
        table = measured_by(results.pipeline, layer.metadata.get("stage", ""))
        if isinstance(layer, Labels) and table is not None and table in results.table_stages:
            if table not in by_table:
                objects = results.table(table)
                by_table[table] = objects, objects_by_row(results.images, objects, columns)
            objects, positions = by_table[table]
            tables.table, tables.objects = table, objects
            tables.positions = [positions[index] for index in indices]
        found[layer.name] = tables
    return found
