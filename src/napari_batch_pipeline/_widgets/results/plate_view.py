"""The plate map of the *Batch results* view: one plate's wells as a heat map, and a well's
images and saved outputs as layers when it is clicked.

The data and the drawing come from :mod:`napari_batch_pipeline.core.results.plate_map`
(the controls are those the run's conclusions recorded); this module only picks the
plate's rows and adds layers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from napari.layers import Layer
from napari.utils.notifications import show_info

from ..._layer_steps import as_features
from ...core.images.sources import read_image
from ...core.results.conclusions import readout_shown, recorded_settings
from ...core.results.plate_map import draw_plate, plate_grid, well_rows
from ...core.results.screen import per_image_measurements, plates
from ...core.run_folder.lazy import image_scale, read_saved
from ...core.run_folder.objects import measured_by, select_objects, task_columns
from ...core.run_folder.reader import RunResults
from ...core.run_folder.tables import COLUMN, ROW
from .columns import tells_nothing

__all__ = ["draw_plate_map", "plate_choices", "plate_measurements", "well_images", "well_layers"]


def plate_choices(results: RunResults) -> list[str]:
    """The run's plates, in order; none when its images have no well."""
    images = results.images
    if ROW not in images.columns or COLUMN not in images.columns:
        return []
    return [str(plate) for plate in dict.fromkeys(plates(images))]


def plate_measurements(results: RunResults) -> list[str]:
    """The per-image measurements a plate map can show (images.csv columns), the screen's
    readout first (the one chosen when the view opens); not one that tells nothing
    (:func:`.columns.tells_nothing`: a count of 1, a constant)."""
    images = results.images
    columns = [
        column
        for column in per_image_measurements(images, results.table_stages)
        if not tells_nothing(column, images[column])
    ]
    readout = readout_shown(results)
    return sorted(columns, key=lambda column: column != readout)


def draw_plate_map(figure: Any, results: RunResults, plate: str, measurement: str) -> None:
    """Draw ``plate``'s heat map of ``measurement`` into ``figure``, the recorded controls
    outlined."""
    images = results.images
    settings = recorded_settings(results)
    grid = plate_grid(
        images[plates(images) == plate],
        measurement,
        settings.negative,
        settings.positive,
        settings.well_aggregate,
    )
    if measurement == readout_shown(results):
        grid = replace(grid, note="the screen's readout")
    draw_plate(figure, grid, plate)
    title = figure.axes[0].title  # a dock is narrower than the command line's PNG: wrap, never cut
    title.set_fontsize("small")
    title.set_wrap(True)


def well_images(results: RunResults, plate: str, x: float, y: float) -> list[int]:
    """The rows of images.csv in the well drawn at ``(x, y)`` (data coordinates)."""
    images = results.images
    on_plate = (plates(images) == plate).to_numpy()
    positions = np.flatnonzero(on_plate)
    return [int(positions[i]) for i in well_rows(images[on_plate], round(y), round(x))]


def well_layers(viewer: Any, results: RunResults, rows: list[int]) -> list[Layer]:
    """Add the input image and saved outputs of each row of images.csv to ``viewer``
    (labels as labels layers, at the pixel size's scale; a tiled image's outputs
    multiscale, lazily); return the layers."""
    layers: list[Layer] = []
    for index in rows:
        name = f"{results.path.name}: {results.row_name(index)}"
        spacing = results.row_spacing(index)
        path = results.input_path(index)
        sources = {"": path} if path is not None and path.is_file() else {}
        sources |= {f" {stage}": output for stage, output in results.task_outputs(index).items()}
        if not sources:
            show_info(f"{name}: neither its input nor a saved output can be found")
        for suffix, source in sources.items():
            stage = suffix.strip()
            data = read_saved(source) if stage else read_image(source)
            multiscale = isinstance(data, list)  # a tiled image's output: its levels
            scale = image_scale(spacing, (data[0] if isinstance(data, list) else data).ndim)
            kind = results.pipeline[stage].returns if stage else "image"
            add = viewer.add_labels if kind in ("labels", "mask") else viewer.add_image
            meta = {"row": index, "stage": stage}
            layer = add(data, name=name + suffix, scale=scale, metadata=meta, multiscale=multiscale)
            table = measured_by(results.pipeline, stage) if kind in ("labels", "mask") else None
            if table is not None:  # the objects of the well's image, as a row click gives them
                layer.metadata["table"] = table
                layer.features = as_features(_row_objects(results, table, index))
            layers.append(layer)
    return layers


def _row_objects(results: RunResults, table: str, index: int) -> pd.DataFrame:
    """The rows of ``<table>.csv`` of the task in row ``index`` of images.csv."""
    images = results.images
    key = {column: images[column].iloc[index] for column in task_columns(images, results.all_param_columns)}
    return select_objects(results.table(table), key)
