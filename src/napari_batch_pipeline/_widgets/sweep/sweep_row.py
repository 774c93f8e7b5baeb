"""One parameter of the sweep panel: which stage and parameter, and which values.

A number is swept by start, stop and step (offered around its value in the pipeline);
anything else by a list typed as ``otsu, li``. Only parameters that take single values
(numbers, strings, choices, flags) are offered.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, Container, FloatSpinBox, LineEdit

from ...core.errors import PipelineError
from ...core.pipeline.model import Pipeline
from ...core.tuning.sweep import (
    default_range,
    default_values_text,
    is_numeric,
    is_sweepable,
    parse_values,
    sweep_values,
)

__all__ = ["ParameterRow"]


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
        # one under another: side by side in a dock, each box cut its value short ("1.00(")
        self.range = Container(widgets=[self.start, self.stop, self.step])
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
