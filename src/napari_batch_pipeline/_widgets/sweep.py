"""The *Parameter sweep* panel of the Pipeline builder: which value of a parameter works best?

Bound to a :class:`~napari_batch_pipeline._widgets.builder.PipelineBuilder`, it sweeps one
parameter of the builder's pipeline (a second one makes a grid) on the builder's image:
start, stop and step for a number, a list (``otsu, li``) for anything else. Run computes
every value in a thread worker (:func:`~napari_batch_pipeline.core.sweep.sweep_one_image`),
cancellable, with a progress bar. The outputs of one stage become ONE stacked layer whose
slider is the swept parameter (its axis labelled with the parameter's name); the value
under the slider is shown beside a plot of a summary measurement (object count, mean area
...) against the value. Apply writes the chosen value into the builder's parameter field,
which re-runs the builder as any change does.

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
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
)
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Labels, Layer
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..core.errors import PipelineError
from ..core.pipeline import Pipeline
from ..core.plan import param_label
from ..core.sweep import (
    ImageSweep,
    default_range,
    default_values_text,
    is_numeric,
    is_sweepable,
    output_stage,
    parse_values,
    plot_sweep,
    sweep_values,
)

if TYPE_CHECKING:
    from .builder import PipelineBuilder

__all__ = ["ParameterRow", "SweepPanel"]


class ParameterRow(Container):
    """One swept parameter: its stage and name, and its values.

    Attributes
    ----------
    stage, param : ComboBox
        The stages of the pipeline with a parameter that takes single values, and those
        parameters of the chosen stage.
    start, stop, step : FloatSpinBox
        The values of a numeric parameter (stop included).
    values_text : LineEdit
        The values of any other parameter, separated by commas.
    """

    def __init__(self, label: str):
        self._pipeline: Pipeline | None = None
        self.stage = ComboBox(label=label, choices=[])
        self.param = ComboBox(label="parameter", choices=[])
        self.start, self.stop, self.step = (
            FloatSpinBox(label=name, min=-1e6, max=1e6, step=0.1) for name in ("start", "stop", "step")
        )
        self.range = Container(widgets=[self.start, self.stop, self.step], layout="horizontal")
        self.range.margins = (0, 0, 0, 0)
        self.values_text = LineEdit(label="values", tooltip="values separated by commas: 1, 2, 3 or otsu, li")
        super().__init__(widgets=[self.stage, self.param, self.range, self.values_text])
        self.margins = (0, 0, 0, 0)
        self.stage.changed.connect(self._on_stage_changed)
        self.param.changed.connect(self._on_param_changed)

    @property
    def key(self) -> str:
        """``'stage.param'``."""
        return f"{self.stage.value}.{self.param.value}"

    def set_pipeline(self, pipeline: Pipeline) -> None:
        """Offer the stages and parameters of ``pipeline``, keeping the choice where it remains."""
        self._pipeline = pipeline
        names = [s.name for s in pipeline.stages if any(map(is_sweepable, s.spec.params.values()))]
        before = self.stage.value
        with self.stage.changed.blocked():
            self.stage.choices = names
            if before in names:
                self.stage.value = before
        self._on_stage_changed(keep=True)

    def values(self) -> list[Any]:
        """The values to sweep, as typed.

        Raises
        ------
        PipelineError
            If no parameter is chosen, or the values cannot be read.
        """
        spec = self._param_spec()
        if spec is None:
            raise PipelineError("choose a stage and a parameter to sweep")
        if not is_numeric(spec):
            return parse_values(self.values_text.value)
        start, stop, step = (float(w.value) for w in (self.start, self.stop, self.step))
        if spec.annotation is int and all(v.is_integer() for v in (start, stop, step)):
            return sweep_values(int(start), int(stop), int(step))
        return sweep_values(start, stop, step)

    def _param_spec(self) -> Any:
        if self._pipeline is None or self.stage.value is None or self.param.value is None:
            return None
        return self._pipeline[self.stage.value].spec.params.get(self.param.value)

    def _on_stage_changed(self, _value: Any = None, *, keep: bool = False) -> None:
        if self._pipeline is None or self.stage.value is None:
            with self.param.changed.blocked():
                self.param.choices = []
            return
        spec = self._pipeline[self.stage.value].spec
        names = [name for name, param in spec.params.items() if is_sweepable(param)]
        before = self.param.value
        with self.param.changed.blocked():
            self.param.choices = names
            if before in names:
                self.param.value = before
        if not (keep and before == self.param.value):
            self._on_param_changed()
        else:
            self._show_fields()

    def _on_param_changed(self, _value: Any = None) -> None:
        """Offer values around the parameter's current value in the pipeline."""
        spec = self._param_spec()
        if spec is None or self._pipeline is None:
            return
        current = self._pipeline[self.stage.value].params.get(spec.name, spec.default)
        if is_numeric(spec):
            start, stop, step = default_range(spec, current)
            whole = spec.annotation is int
            for widget, value in ((self.start, start), (self.stop, stop), (self.step, step)):
                widget.native.setDecimals(0 if whole else 4)
                widget.step = 1 if whole else 0.1
                widget.value = value
        else:
            self.values_text.value = default_values_text(spec, current)
        self._show_fields()

    def _show_fields(self) -> None:
        spec = self._param_spec()
        numeric = spec is not None and is_numeric(spec)
        self.range.visible = numeric
        self.values_text.visible = spec is not None and not numeric


class SweepPanel(QWidget):
    """Sweep parameters of a builder's pipeline on its image; show, plot and apply a value.

    Parameters
    ----------
    builder : PipelineBuilder
        The pipeline and image come from it at each Run; Apply writes into its fields.

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
        The latest complete sweep.
    layer : Layer or None
        Its stacked layer.
    figure, axes, canvas
        The plot.
    worker : GeneratorWorker or None

    Emits ``sweep_finished(result)`` when a sweep has ended: the ImageSweep (incomplete
    when cancelled), or None after an error.
    """

    sweep_finished = Signal(object)

    def __init__(self, builder: PipelineBuilder):
        super().__init__()
        self.builder = builder
        self.viewer = builder.viewer
        self.first = ParameterRow("sweep")
        self.use_second = CheckBox(value=False, text="and a second parameter (a grid)")
        self.second = ParameterRow("by")
        self.second.visible = False
        self.output = ComboBox(label="show output of", choices=[])
        self.run_button = PushButton(text="Run sweep")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
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
        layout = QVBoxLayout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.canvas, stretch=1)
        layout.addWidget(below.native)

        self.result: ImageSweep | None = None
        self.layer: Layer | None = None
        self.worker: GeneratorWorker | None = None
        self._cancel = threading.Event()

        self.use_second.changed.connect(lambda on: setattr(self.second, "visible", on))
        self.run_button.changed.connect(self._run_quietly)
        self.cancel_button.changed.connect(self.cancel)
        self.measurement.changed.connect(self._on_dims_changed)
        self.apply_button.changed.connect(self._apply_quietly)
        self.viewer.dims.events.current_step.connect(self._on_dims_changed)
        builder.run_finished.connect(self.refresh)
        self.refresh()

    # -- the sweep ----------------------------------------------------------------------

    def refresh(self, _seconds: Any = None) -> None:
        """Offer the stages of the builder's current pipeline (keeping choices that remain)."""
        try:
            pipeline = self.builder.pipeline()
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
        """Run the sweep on the builder's image in a thread worker; return the worker.

        A sweep still running is cancelled first.

        Raises
        ------
        PipelineError
            If the pipeline, the sweep or the image is unusable (nothing has started then).
        """
        pipeline = self.builder.pipeline()
        layer = self.builder.image.value
        if layer is None:
            raise PipelineError("choose an image layer in the builder")
        result = ImageSweep(pipeline, self.sweep(), self.output.value or None)
        self.cancel()
        cancel = self._cancel = threading.Event()
        worker = create_worker(_sweep, result, np.asarray(layer.data), cancel, _ignore_errors=True)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(partial(self._on_done, worker, layer))
        worker.errored.connect(partial(self._on_error, worker))
        self.worker = worker
        self.progress.max = len(result)
        self.progress.value = 0
        self.status.value = f"sweeping {len(result)} parameter set(s) on {layer.name}..."
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

    def _on_done(self, worker: GeneratorWorker, source: Layer, result: ImageSweep) -> None:
        if worker is not self.worker:
            return  # a superseded sweep
        self._set_running(False)
        if not result.complete:
            self.status.value = f"cancelled after {len(result.points)} of {len(result)} parameter set(s)"
            self.sweep_finished.emit(result)
            return
        self.result = result
        self._show_layer(result, source)
        with self.measurement.changed.blocked():
            before = self.measurement.value
            self.measurement.choices = result.measurements
            if before in result.measurements:
                self.measurement.value = before
        self.apply_button.enabled = True
        self.status.value = f"{len(result)} parameter set(s): move the slider of {self.layer_name(result)}"
        self._on_dims_changed()
        self.sweep_finished.emit(result)

    # -- the stacked layer --------------------------------------------------------------

    @staticmethod
    def layer_name(result: ImageSweep) -> str:
        return f"sweep {' x '.join(result.parameters)}: {result.stage}"

    def _show_layer(self, result: ImageSweep, source: Layer) -> None:
        data = result.stack()
        if data.dtype == bool:
            data = data.astype(np.uint8)
        n = len(result.parameters)
        kwargs: dict[str, Any] = {
            "name": self.layer_name(result),
            "scale": (*([1.0] * n), *source.scale[-2:]),
            "translate": (*([0.0] * n), *source.translate[-2:]),
            "axis_labels": (*result.parameters, "-2", "-1"),
            "metadata": {
                "sweep": {"parameters": result.parameters, "values": result.values, "stage": result.stage}
            },
        }
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)
        layer_type: type[Layer] = Image if result.kind == "image" else Labels
        self.layer = self.viewer.add_layer(layer_type(data, **kwargs))
        # start at the builder's current value where it was swept
        axes = self._axes()
        for axis, key in zip(axes, result.parameters, strict=True):
            stage, _, param = key.partition(".")
            current = result.pipeline[stage].params.get(param)
            values = result.values[key]
            self.viewer.dims.set_current_step(axis, values.index(current) if current in values else 0)

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
        """Write the selected parameter set into the builder's fields (which re-runs it).

        Returns
        -------
        dict
            The set applied, ``{'stage.param': value}``.

        Raises
        ------
        PipelineError
            If there is no sweep, or the builder no longer has the parameter.
        """
        params = self.selected_params()
        for key, value in params.items():
            stage, _, param = key.partition(".")
            panel = next((p for p in self.builder.panels if p.stage == stage), None)
            if panel is None or param not in panel.params:
                raise PipelineError(f"the builder has no parameter {key} any more; run the sweep again")
            panel.params[param].value = value
        self.status.value = f"applied {param_label(params)}"
        return params

    def _apply_quietly(self) -> None:
        try:
            self.apply()
        except PipelineError as error:
            self.status.value = str(error)


def _sweep(
    result: ImageSweep, image: np.ndarray, cancel: threading.Event
) -> Generator[int, None, ImageSweep]:
    """The worker's generator: the number of parameter sets done, after each; returns ``result``."""
    for done, _point in enumerate(result.run(image, cancel.is_set), start=1):
        yield done
    return result
