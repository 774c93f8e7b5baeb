"""A batch run's results as napari layers: built off the main thread, added without a stall.

The batch widget's worker yields the engine's events, then :class:`LoadedLayers`: the
saved outputs of the run as lazy layers, built in the worker thread (a layer is a model;
building one reads a TIFF header or two). :class:`LayerQueue` then puts them in the
place of the previous run's layers one layer per turn of the event loop, since removing
a layer and adding one (its visuals and controls) are the slowest things the main
thread does here. :func:`task_layers` shows one task: its input and its saved outputs.
Every layer is shown at the scale of its pixel size: the run's
(``SavedOutputs.scale_of``) or the task's field's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from napari.layers import Layer
from napari.utils.notifications import show_info
from napari.viewer import Viewer
from qtpy.QtCore import QTimer

from ..._layer_steps import StepTables, as_features, step_tables
from ..._reader import run_layer_data
from ...core.batch import BatchRun
from ...core.engine.events import Event
from ...core.errors import PipelineError
from ...core.images.fields import SCENE, TIME, read_field
from ...core.images.lazy import open_input_pyramid
from ...core.pipeline.model import INPUT, Pipeline
from ...core.plan.tasks import Task
from ...core.run_folder.lazy import image_scale, read_saved
from ...core.run_folder.objects import measured_by, task_objects
from ...core.run_folder.reader import RunResults, task_outputs
from ...core.run_folder.tables import IMAGE
from ..viewer.sliders import keep_slider_labels_whole

__all__ = [
    "IMAGE_AXIS",
    "MAX_SEPARATE_LAYERS",
    "LayerQueue",
    "LoadedLayers",
    "events_then_layers",
    "task_layers",
]

#: most layers added per stage when a run's outputs differ in shape (no single stack)
MAX_SEPARATE_LAYERS = 20
#: the label of a stack's first axis (its slider): one image of the run per step
IMAGE_AXIS = "image"


@dataclass
class LoadedLayers:
    """Yielded by the worker after the run: layers of its saved outputs, not yet in the
    viewer, and what each step of them shows (by layer name)."""

    layers: list[Layer]
    problem: str = ""
    tables: dict[str, StepTables] = field(default_factory=dict)


def events_then_layers(batch: BatchRun) -> Iterator[Event | LoadedLayers]:
    """The worker's generator: the engine's events, then the results' layers."""
    yield from batch.events()
    try:
        results = RunResults(batch.folder.path)
        data = run_layer_data(results, max_separate=MAX_SEPARATE_LAYERS)  # each at its pixel size
        layers = [Layer.create(*layer_data) for layer_data in data]
        tables = step_tables(results, layers)  # the objects of each task, for its labels' features
    except (PipelineError, OSError, ValueError) as error:
        yield LoadedLayers([], f"results not loaded: {error}")
        return
    yield LoadedLayers(layers, tables=tables)


class LayerQueue:
    """Replaces the layers it added before by new ones, one layer per turn of the event loop.

    Removing a layer and adding one are each among the slowest things the main thread
    does here (napari rebuilds the sliders, the layer list and the canvas); one per turn,
    the viewer stays responsive in between.

    Attributes
    ----------
    layers : list of Layer
        The layers added by the latest :meth:`show` so far.
    loading : bool
        True until every layer of the latest :meth:`show` is in the viewer.
    """

    def __init__(self, viewer: Viewer, on_done: Callable[[], None]):
        self.viewer = viewer
        keep_slider_labels_whole(viewer)  # the stacks' image slider says 'image' whole
        self.on_done = on_done
        self.layers: list[Layer] = []
        self.loading = False
        self._leaving: list[Layer] = []  # the previous layers, still to remove
        self._pending: list[Layer] = []
        self._tables: dict[str, StepTables] = {}
        self._turn = QTimer()  # one chain of turns, even when show() comes mid-way
        self._turn.setSingleShot(True)
        self._turn.setInterval(0)
        self._turn.timeout.connect(self._next)

    def show(self, layers: list[Layer], tables: dict[str, StepTables] | None = None) -> None:
        """Remove the previous layers (and any of the same names); add ``layers``, then call
        ``on_done``. ``tables`` keep a layer's features and metadata on the step shown."""
        for previous in self._tables.values():
            previous.detach()
        self._tables = dict(tables or {})
        self._leaving += self.layers
        self.layers = []
        self._pending = list(layers)
        self.loading = True
        self._next()

    def _next(self) -> None:
        """One step: remove a previous layer, or add a new one, or end."""
        if self._leaving:
            layer = self._leaving.pop(0)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
            self._turn.start()
            return
        if not self._pending:
            self.loading = False
            self._point_at_results()
            self.on_done()
            return
        layer = self._pending.pop(0)
        if layer.name in self.viewer.layers:
            self.viewer.layers.remove(layer.name)
        if len(layer.metadata.get("names") or ()) > 1:  # a stack: its first axis, the image
            layer.axis_labels = (IMAGE_AXIS, *layer.axis_labels[1:])
        tables = self._tables.get(layer.name)  # by the name it was made with, before napari's
        self.viewer.add_layer(layer)
        if tables is not None:  # the layer object itself, whatever its name becomes
            tables.attach(self.viewer, layer)
        self.layers.append(layer)
        self._turn.start()

    def _point_at_results(self) -> None:
        """The last result layer is selected."""
        if self.layers:
            self.viewer.layers.selection.active = self.layers[-1]


def task_layers(viewer: Viewer, run_folder: Path, pipeline: Pipeline, task: Task) -> list[Layer]:
    """Add one task's input image (each named channel) and saved outputs to ``viewer``;
    return the layers.

    They are named ``"<run>: <image> [<parameter set>]"`` (``"<run>: <image> s<scene>
    t<time> ..."`` for runs with scenes or time points), ``"... <channel>"`` and ``"...
    <stage>"``, at the scale of the field's pixel size. Their metadata says the same
    (``run_folder``, ``image``, ``scene``, ``t``, ``parameters``, ``stage``); a labels
    layer whose stage a table stage measures has that task's objects as its ``features``.
    A tiled image's output (an OME-Zarr store) is a multiscale layer of its lazy levels;
    so is a large input (see :func:`..core.images.lazy.open_input_pyramid`).
    """
    source = task.source
    field = {column: value for column, value in task.metadata.items() if column in (SCENE, TIME)}
    image = " ".join([task.image, *(f"{column[0]}{value}" for column, value in field.items())])
    name = f"{run_folder.name}: " + (f"{image} [{task.label}]" if task.label else image)
    metadata = {"image": task.image, **field, "parameters": task.label, "run_folder": str(run_folder)}
    layers: list[Layer] = []
    large = None
    if not source.channel_files and source.channel_index in ((), ((INPUT, 0),)) and source.problem is None:
        large = open_input_pyramid(source.path, source.scene or 0, source.t or 0)
    if large is not None:  # one multiscale layer, read chunk by chunk as it is shown
        scale = image_scale(source.pixel_size, large.levels[0].ndim)
        meta = {**metadata, "stage": INPUT}
        layers.append(
            viewer.add_image(
                large.levels,
                name=name,
                metadata=meta,
                scale=scale,
                multiscale=True,
                contrast_limits=large.contrast_limits,
            )
        )
    try:
        channels = read_field(source).images if large is None else {}
    except Exception as error:  # an input that failed its task may be unreadable
        show_info(f"cannot show {image}: {error}")
        channels = {}
    for channel, data in channels.items():
        layer_name = name if channel == INPUT else f"{name} {channel}"
        scale = image_scale(source.pixel_size, data.ndim)
        meta = {**metadata, "stage": channel}
        layers.append(viewer.add_image(data, name=layer_name, metadata=meta, scale=scale))
    key = {IMAGE: task.image, **field, **task.values}
    for stage, path in task_outputs(
        run_folder, pipeline, task.image, task.label, source.scene, source.t
    ).items():
        output = read_saved(path)  # a tiled image's: its levels, lazily
        multiscale = isinstance(output, list)
        scale = image_scale(source.pixel_size, (output[0] if isinstance(output, list) else output).ndim)
        meta = {**metadata, "stage": stage}
        if pipeline[stage].returns not in ("mask", "labels"):
            layers.append(
                viewer.add_image(
                    output, name=f"{name} {stage}", metadata=meta, scale=scale, multiscale=multiscale
                )
            )
            continue
        table = measured_by(pipeline, stage)
        if table is not None:
            meta["table"] = table
        labels = viewer.add_labels(
            output, name=f"{name} {stage}", metadata=meta, scale=scale, multiscale=multiscale
        )
        objects = None if table is None else task_objects(run_folder, table, key, task.key)
        if objects is not None:
            labels.features = as_features(objects)
        layers.append(labels)
    return layers
