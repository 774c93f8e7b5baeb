"""The *Parameter sweep* panel of the Pipeline builder: which value of a parameter works best?

A view of a viewer's :class:`~napari_batch_pipeline.core.tuning.session.TuningSession`, as the
builder is: it sweeps one parameter of the session's pipeline (a second one makes a
grid, :class:`.sweep_row.ParameterRow`) on the session's image, in a thread worker,
cancellable, with a progress bar, and makes the result the session's sweep. The
session's sweep is shown as ONE stacked layer of one stage's outputs whose slider is
the swept parameter (its axis labelled with the parameter's name), before the axes of
every other layer, so that a batch's stack of images keeps a slider of its own; the value
under the slider is shown beside a plot of a summary measurement (object count, mean area ...)
against the value. Apply writes the chosen value into the session, so the builder's
field shows it and the chain re-runs as after any change.

From Python::

    panel = builder.open_sweep()
    panel.first.stage.value = "blurred"
    panel.first.param.value = "sigma"
    worker = panel.run()
    ...
    panel.apply()
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from functools import partial
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, ProgressBar, PushButton
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Labels, Layer
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QWidget

from ...core.errors import PipelineError
from ...core.run_folder.layout import param_label
from ...core.tuning.session import TuningImage, TuningSession
from ...core.tuning.sweep import ImageSweep, output_stage, plot_sweep
from ..viewer.dock_layout import scrolling_layout, wrapping
from ..viewer.home import join_home_later, mark_page
from ..viewer.session import follow
from ..viewer.sliders import keep_slider_labels_whole
from ..viewer.workers import generator_worker, unwrapped
from .sweep_row import ParameterRow

__all__ = ["SWEEP_METADATA", "ParameterRow", "SweepPanel"]

#: the metadata key of a sweep's stacked layer: its parameters, values and stage
SWEEP_METADATA = "sweep"


class SweepPanel(QWidget):
    """Sweep parameters of a session's pipeline on its image; show, plot and apply a value.

    Parameters
    ----------
    session : TuningSession
        The pipeline and image come from it at each Run; Apply writes into it.
    napari_viewer : napari.Viewer
        Where the stacked layer goes, and whose sliders choose a value.

    Attributes
    ----------
    first, second : ParameterRow
        The swept parameter, and the second one of a grid (used when ``use_second``).
    use_second : CheckBox
    output : ComboBox
        The stage whose output is stacked (default: the last image, mask or labels stage).
    measurement : ComboBox
        The summary value plotted.
    result : ImageSweep or None
        The session's sweep: the latest complete one.
    layer : Layer or None
        Its stacked layer.
    figure, axes, canvas
        The plot.
    worker : GeneratorWorker or None

    Emits ``sweep_finished(result)`` when a sweep has ended: the ImageSweep (incomplete
    when cancelled), or None after an error.
    """

    sweep_finished = Signal(object)

    def __init__(self, session: TuningSession, napari_viewer: Any):
        super().__init__()
        self.session = session
        self.viewer = napari_viewer
        keep_slider_labels_whole(napari_viewer)  # the sweep's slider says its parameter whole
        self.first = ParameterRow("sweep")
        self.use_second = CheckBox(value=False, text="and a second parameter (a grid)")
        self.second = ParameterRow("by")
        self.second.visible = False
        self.output = ComboBox(label="show output of", choices=[])
        self.run_button = PushButton(text="Run sweep")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self.status = Label(value="")
        wrapping(self.status)
        self.value_label = Label(value="")
        self.measurement = ComboBox(label="plot", choices=[])
        self.apply_button = PushButton(text="Apply this value to the builder", enabled=False)
        form = Container(
            widgets=[
                self.first,
                self.use_second,
                self.second,
                self.output,
                Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False),
                self.progress,
                self.status,
            ]
        )
        below = Container(widgets=[self.value_label, self.measurement, self.apply_button])
        self.figure = Figure(figsize=(4, 3), layout="constrained")
        self.axes = self.figure.add_subplot()
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        layout = scrolling_layout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.canvas, stretch=1)
        layout.addWidget(below.native)

        self.layer: Layer | None = None
        self._stack: np.ndarray = np.zeros((0, 0))
        self._source: TuningImage | None = None
        self.worker: GeneratorWorker | None = None
        self._cancel = threading.Event()

        self.use_second.changed.connect(lambda on: setattr(self.second, "visible", on))
        self.run_button.changed.connect(self._run_quietly)
        self.cancel_button.changed.connect(self.cancel)
        self.measurement.changed.connect(self._on_dims_changed)
        self.apply_button.changed.connect(self._apply_quietly)
        self.viewer.dims.events.current_step.connect(self._on_dims_changed)
        self.viewer.layers.events.inserted.connect(self._fit_axes)
        self.viewer.layers.events.removed.connect(self._fit_axes)
        follow(
            self,
            session,
            {"stages_changed": "refresh", "stage_changed": "refresh", "sweep_changed": "_on_sweep_changed"},
        )
        mark_page(self, "sweep")
        self.refresh()

    def showEvent(self, event: Any) -> None:
        join_home_later(self)
        super().showEvent(event)

    @property
    def result(self) -> ImageSweep | None:
        return self.session.sweep

    # -- the sweep ----------------------------------------------------------------------

    def refresh(self, _index: Any = None) -> None:
        """Offer the stages of the session's current pipeline (keeping choices that remain)."""
        try:
            pipeline = self.session.pipeline()
        except PipelineError as error:
            self.status.value = str(error)
            return
        self.first.set_pipeline(pipeline)
        self.second.set_pipeline(pipeline)
        names = [s.name for s in pipeline.stages if s.returns != "table"]
        before = self.output.value
        self.output.choices = names
        if names:
            self.output.value = before if before in names else output_stage(pipeline)

    def sweep(self) -> dict[str, list[Any]]:
        """``{'stage.param': [values]}`` as set in the panel.

        Raises
        ------
        PipelineError
            If values cannot be read, or both rows name the same parameter.
        """
        sweep = {self.first.key: self.first.values()}
        if self.use_second.value:
            if self.second.key in sweep:
                raise PipelineError(f"{self.second.key} is swept twice; choose another second parameter")
            sweep[self.second.key] = self.second.values()
        return sweep

    def run(self) -> GeneratorWorker:
        """Run the sweep on the session's image in a thread worker; return the worker.

        A sweep still running is cancelled first.

        Raises
        ------
        PipelineError
            If the pipeline, the sweep or the image is unusable (nothing has started then).
        """
        result = self.session.new_sweep(self.sweep(), self.output.value or None)
        image = self.session.image
        assert image is not None  # new_sweep checks
        self.cancel()
        cancel = self._cancel = threading.Event()
        worker = generator_worker(_sweep, result, image, cancel)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(partial(self._on_done, worker, image))
        worker.errored.connect(unwrapped(partial(self._on_error, worker)))
        self.worker = worker
        self.progress.max = len(result)
        self.progress.value = 0
        self.status.value = f"sweeping {len(result)} parameter set(s) on {image.name}..."
        self._set_running(True)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running sweep before its next stage (nothing is shown for it)."""
        self._cancel.set()

    def _run_quietly(self) -> None:
        try:
            self.run()
        except PipelineError as error:
            self.status.value = str(error)

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running

    def _on_progress(self, done: int) -> None:
        self.progress.value = done

    def _on_error(self, worker: GeneratorWorker, error: Exception) -> None:
        if worker is not self.worker:
            return  # a superseded sweep
        self._set_running(False)
        self.status.value = f"error: {error}"
        show_error(str(error))
        self.sweep_finished.emit(None)

    def _on_done(self, worker: GeneratorWorker, image: TuningImage, result: ImageSweep) -> None:
        if worker is not self.worker:
            return  # a superseded sweep
        self._set_running(False)
        if not result.complete:
            self.status.value = f"cancelled after {len(result.points)} of {len(result)} parameter set(s)"
        else:
            self.session.set_sweep(result, image)  # shown by _on_sweep_changed
        self.sweep_finished.emit(result)

    def _on_sweep_changed(self, result: ImageSweep | None) -> None:
        """Show the session's sweep: its stacked layer, its measurements, Apply."""
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)
        self.layer = None
        self.apply_button.enabled = result is not None
        image = self.session.sweep_image
        if result is None or image is None:
            return
        self._show_layer(result, image)
        with self.measurement.changed.blocked():
            before = self.measurement.value
            self.measurement.choices = result.measurements
            if before in result.measurements:
                self.measurement.value = before
        self.status.value = f"{len(result)} parameter set(s): move the slider of {self.layer_name(result)}"
        self._on_dims_changed()

    # -- the stacked layer --------------------------------------------------------------

    @staticmethod
    def layer_name(result: ImageSweep) -> str:
        return f"sweep {' x '.join(result.parameters)}: {result.stage}"

    def _show_layer(self, result: ImageSweep, source: TuningImage) -> None:
        data = result.stack()
        if data.dtype == bool:
            data = data.astype(np.uint8)
        self._stack, self._source = data, source
        layer_type: type[Layer] = Image if result.kind == "image" else Labels
        name = self.layer_name(result)
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        sweep_meta = {"parameters": result.parameters, "values": result.values, "stage": result.stage}
        self.layer = layer_type(data, name=name, metadata={SWEEP_METADATA: sweep_meta})
        self._fit_axes(force=True)
        self.layer = self.viewer.add_layer(self.layer)
        # start at the pipeline's value where it was swept
        axes = self._axes()
        for axis, key in zip(axes, result.parameters, strict=True):
            stage, _, param = key.partition(".")
            current = result.pipeline[stage].params.get(param)
            values = result.values[key]
            self.viewer.dims.set_current_step(axis, values.index(current) if current in values else 0)

    def _fit_axes(self, event: Any = None, *, force: bool = False) -> None:
        """Give the stack's parameter axes sliders of their own, before every other layer's axes.

        napari lines up the axes of its layers from the right: a stack of 3 sigmas and a
        batch's stack of 12 images would share one slider. The sweep's layer therefore
        spans the other layers' leading axes too (their image axis, say), as a broadcast
        view of its stack (no copy): its parameter sliders come first, labelled with the
        parameters, and the others keep their sliders and labels.
        """
        layer, result = self.layer, self.result
        if layer is None or result is None or (event is not None and event.value is layer):
            return
        params, stack = len(result.parameters), self._stack
        spatial = stack.ndim - params
        others = [other for other in self.viewer.layers if other is not layer and other.ndim > spatial]
        extra = max((other.ndim for other in others), default=spatial) - spatial
        sizes, scale, translate = [1] * extra, [1.0] * extra, [0.0] * extra
        default = [str(-axis) for axis in range(params + extra + spatial, 0, -1)]
        labels = [*result.parameters, *default[params:]]
        for other in others:  # each of the others' leading axes: its extent and label
            shape = getattr(other.data, "shape", None)
            for axis in range(other.ndim - spatial):
                position = extra - (other.ndim - spatial) + axis
                if shape is not None and int(shape[axis]) > sizes[position]:
                    sizes[position] = int(shape[axis])
                    scale[position] = float(other.scale[axis])
                    translate[position] = float(other.translate[axis])
                if not other.axis_labels[axis].lstrip("-").isdigit():
                    labels[params + position] = other.axis_labels[axis]
        leading = stack.shape[:params]
        view = stack.reshape(*leading, *([1] * extra), *stack.shape[params:])
        data = np.broadcast_to(view, (*leading, *sizes, *stack.shape[params:]))
        if not force and layer.data.shape == data.shape and tuple(layer.axis_labels) == tuple(labels):
            return
        source = self._source
        assert source is not None  # set with the stack
        steps = self.viewer.dims.current_step[:params] if layer in self.viewer.layers else None
        layer.data = data
        layer.scale = (*([1.0] * params), *scale, *source.scale[-spatial:])
        layer.translate = (*([0.0] * params), *translate, *source.translate[-spatial:])
        layer.axis_labels = tuple(labels)
        if steps is not None:  # the sweep's sliders stay where they were
            for axis, step in enumerate(steps):
                self.viewer.dims.set_current_step(axis, step)

    def _axes(self) -> list[int]:
        """The viewer's dims axes of the swept parameters."""
        assert self.result is not None and self.layer is not None
        offset = self.viewer.dims.ndim - self.layer.ndim
        return [offset + i for i in range(len(self.result.parameters))]

    def selected_index(self) -> tuple[int, ...]:
        """The grid position under the viewer's sliders."""
        if self.result is None or self.layer is None or self.layer not in self.viewer.layers:
            raise PipelineError("run a sweep first")
        steps = self.viewer.dims.current_step
        return tuple(
            min(max(int(steps[axis]), 0), n - 1)
            for axis, n in zip(self._axes(), self.result.shape, strict=True)
        )

    def selected_params(self) -> dict[str, Any]:
        """The parameter set under the viewer's sliders, ``{'stage.param': value}``."""
        assert self.result is not None
        return dict(self.result.point_at(self.selected_index()).params)

    def _on_dims_changed(self, _event: Any = None) -> None:
        if self.result is None or self.layer is None or self.layer not in self.viewer.layers:
            return
        point = self.result.point_at(self.selected_index())
        text = ", ".join(f"{key} = {value}" for key, value in point.params.items())
        measurement = self.measurement.value
        if measurement in point.summary:
            text += f"  ({measurement}: {point.summary[measurement]:.4g})"
        self.value_label.value = text
        self.layer.metadata = {**self.layer.metadata, "sweep_value": dict(point.params)}
        self.draw()

    # -- plot and apply -----------------------------------------------------------------

    def draw(self, _value: Any = None) -> None:
        """Plot the chosen measurement against the swept value, the selected one ringed."""
        self.axes.clear()
        if self.result is not None and self.measurement.value:
            selected = None
            if self.layer is not None and self.layer in self.viewer.layers:
                selected = self.selected_index()
            plot_sweep(self.axes, self.result, self.measurement.value, selected)
        self.canvas.draw_idle()

    def apply(self) -> dict[str, Any]:
        """Write the selected parameter set into the session (the builder shows it and re-runs).

        Returns
        -------
        dict
            The set applied, ``{'stage.param': value}``.

        Raises
        ------
        PipelineError
            If there is no sweep, or the pipeline no longer has the parameter.
        """
        params = self.selected_params()
        self.session.apply(params)
        self.status.value = f"applied {param_label(params)}"
        return params

    def _apply_quietly(self) -> None:
        try:
            self.apply()
        except PipelineError as error:
            self.status.value = str(error)


def _sweep(
    result: ImageSweep, image: TuningImage, cancel: threading.Event
) -> Generator[int, None, ImageSweep]:
    """The worker's generator: the number of parameter sets done, after each; returns ``result``."""
    for done, _point in enumerate(result.run(image.read(), cancel.is_set), start=1):
        yield done
    return result
