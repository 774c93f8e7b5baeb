"""The field of each stage parameter, in a stage's own widget and in the builder's panels.

:func:`param_annotation` turns a :class:`~napari_batch_pipeline.core.stages.ParamSpec`
into the annotation magicgui builds the field from: numbers get a spin box with a wide
range, a mapping of named options (a classifier's ``features``) an :class:`OptionsEdit`
with a field per option, and, where the caller writes it itself (the builder), a
parameter a tool writes (a training's hash) a :class:`ReadOnlyText`. The values are the
ones a pipeline file holds, so a stage reads the same whichever field set them.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from magicgui.types import Undefined
from magicgui.widgets import CheckBox, Container, FloatSpinBox, Label, SpinBox, Widget, create_widget
from magicgui.widgets.bases import ValuedContainerWidget

from ...core.stages import ParamSpec, StageSpec
from ..viewer.dock_layout import wrapping

__all__ = ["AUTO", "OptionsEdit", "ReadOnlyText", "param_annotation"]

#: what a number option that may be None shows at its lowest value, which stands for None
AUTO = "auto"
#: decimals of a number option's field (values closer than half the last one are the same)
DECIMALS = 3
#: characters of a read-only value shown (its tooltip holds the whole)
SHOWN = 12


def param_annotation(param: ParamSpec, stage: StageSpec | None = None, *, read_only: bool = False) -> Any:
    """The annotation magicgui builds a parameter's field from.

    Numbers get a range wide enough for any sensible value (magicgui's default is 0 to
    999); the stage itself checks what it accepts. A mapping of named options gets an
    :class:`OptionsEdit`, which shows what ``stage``'s check finds wrong with it. Another
    mapping, and a number that may be None, is a line of text read as a Python literal
    (``{'a': 1}``, ``None``), for which magicgui has no field.

    Parameters
    ----------
    param : ParamSpec
    stage : StageSpec, optional
        The stage of ``param``, whose check an :class:`OptionsEdit` runs on its value.
    read_only : bool
        Show a parameter a tool writes (``param.read_only``) as a :class:`ReadOnlyText`,
        as the builder does, which writes it itself; False leaves it a field to type in
        (a stage's own widget, where a person has no other way to give it).
    """
    if read_only and param.read_only:
        return Annotated[str, {"widget_type": ReadOnlyText, "why": param.read_only}]
    if param.options:
        problem = None if stage is None else _option_problem(stage, param.name)
        return Annotated[dict, {"widget_type": OptionsEdit, "options": param.options, "problem": problem}]
    if param.annotation is float:
        return Annotated[float, {"min": -1e6, "max": 1e6, "step": 0.1}]
    if param.annotation is int:
        return Annotated[int, {"min": -(10**6), "max": 10**6}]
    if typing.get_origin(param.annotation) is dict or _optional_number(param.annotation):
        return Annotated[Any, {"widget_type": "LiteralEvalLineEdit"}]
    return param.annotation


class OptionsEdit(ValuedContainerWidget[dict]):
    """A mapping of named options, a field per option: a spin box for each number (one
    that may be None reads "auto" at its lowest, which stands for None) and magicgui's
    field for other kinds, one under another, then a row of check boxes, one for each
    true-or-false option.

    The value is the mapping as a pipeline file holds it: the options it was given, each
    as given until its field changes, and an option it did not name only once its field
    leaves the option's default. A value the stage refuses gets the stage's message
    under the fields, in plain words.

    Parameters
    ----------
    options : sequence of ParamSpec
        The options, with their annotations and defaults.
    problem : callable, optional
        ``problem(mapping)``: what is wrong with a value, or None.
    value : mapping, optional

    Attributes
    ----------
    fields : dict of str to ValueWidget
        The field of each option.
    message : Label
        What is wrong with the value (hidden when nothing is).
    """

    def __init__(
        self,
        options: Sequence[ParamSpec] = (),
        problem: Callable[[dict[str, Any]], str | None] | None = None,
        value: Any = Undefined,
        **kwargs: Any,
    ) -> None:
        self._options = {option.name: option for option in options}
        self._problem = problem
        self._given: dict[str, Any] = {}
        self.fields: dict[str, Any] = {option.name: _option_field(option) for option in options}
        flags = [field for field in self.fields.values() if isinstance(field, CheckBox)]
        others = [field for field in self.fields.values() if not isinstance(field, CheckBox)]
        rows: list[Widget] = []
        for widgets, layout, labels in ((others, "vertical", True), (flags, "horizontal", False)):
            if widgets:  # labelled fields one under another; the check boxes side by side
                row: Container[Widget] = Container(widgets=widgets, layout=layout, labels=labels)
                row.margins = (0, 0, 0, 0)
                rows.append(row)
        self.message = Label(value="")
        self.message.native.setStyleSheet("color: #f0a030")
        wrapping(self.message)
        self.message.visible = False
        super().__init__(value=value, widgets=[*rows, self.message], labels=False, **kwargs)
        self.margins = (0, 0, 0, 0)
        for field in self.fields.values():
            field.changed.connect(self._on_field)

    def get_value(self) -> dict[str, Any]:
        """The mapping: the options given, with those whose field changed (see the class)."""
        value = dict(self._given)
        for name, option in self._options.items():
            shown = _read(option, self.fields[name])
            if not _same(value.get(name, option.default), shown):
                value[name] = shown
        return value

    def set_value(self, value: Any) -> None:
        """Show ``value`` (a mapping; options it does not name at their defaults)."""
        self._given = dict(value) if isinstance(value, Mapping) else {}
        for name, option in self._options.items():
            field = self.fields[name]
            with field.changed.blocked():
                _show(option, field, self._given.get(name, option.default))
        self._on_field()

    def _on_field(self, *_args: Any) -> None:
        value = self.get_value()
        problem = self._problem(value) if self._problem is not None else None
        self.message.value = f"⚠ {problem}" if problem else ""
        self.message.visible = bool(problem)
        self.changed.emit(value)


class ReadOnlyText(ValuedContainerWidget[str]):
    """Text a person reads but does not type (a hash a tool writes): its first characters,
    the whole in the tooltip with what writes it.

    Parameters
    ----------
    why : str
        What writes the value (said in the tooltip).
    value : str, optional

    Attributes
    ----------
    shown : Label
        The start of the value, or "none yet".
    """

    def __init__(self, why: str = "", value: Any = Undefined, **kwargs: Any) -> None:
        self._text = ""
        self._why = why
        self.shown = Label(value="")
        super().__init__(value=value, widgets=[self.shown], labels=False, **kwargs)
        self.margins = (0, 0, 0, 0)
        if value is Undefined:
            self.set_value("")

    def get_value(self) -> str:
        """The whole value."""
        return self._text

    def set_value(self, value: Any) -> None:
        """Show ``value`` (None: empty)."""
        text = "" if value is None else str(value)
        changed = text != self._text
        self._text = text
        self.shown.value = (text[:SHOWN] + "…" if len(text) > SHOWN else text) or "none yet"
        tip = f"{text or 'none yet'}\n{self._why}; not typed" if self._why else text
        self.tooltip = self.shown.tooltip = tip
        if changed:
            self.changed.emit(text)


def _option_problem(stage: StageSpec, name: str) -> Callable[[dict[str, Any]], str | None]:
    """``problem(value)``: the stage check's message about parameter ``name`` at ``value``,
    every other parameter at its default, or None."""

    def problem(value: dict[str, Any]) -> str | None:
        if stage.check is None:
            return None
        try:
            message = stage.check({**stage.defaults(), name: value}, set(stage.data_args))
        except Exception as error:  # a user's check that cannot take the value: say why
            return f"{name}: {error}"
        return message if message and message.startswith(name) else None

    return problem


def _option_field(option: ParamSpec) -> Any:
    """The field of one option, named as it, labelled in words."""
    label = option.name.replace("_", " ")
    kind = _number_of(option.annotation)
    if option.annotation is bool:
        return CheckBox(name=option.name, text=label)
    if kind is None:
        return create_widget(annotation=param_annotation(option), name=option.name, label=label)
    if kind is option.annotation:
        if kind is int:
            field: Any = SpinBox(name=option.name, label=label, min=-(10**6), max=10**6)
        else:
            field = FloatSpinBox(name=option.name, label=label, min=-1e6, max=1e6, step=0.1)
            field.native.setDecimals(DECIMALS)
    else:  # Qt's double spin box (not magicgui's int one) reads "auto" at its lowest: None
        step = 1 if kind is int else 0.1
        field = FloatSpinBox(name=option.name, label=label, min=0, max=1e6, step=step)
        field.native.setDecimals(0 if kind is int else DECIMALS)
        field.native.setSpecialValueText(AUTO)
    return field


def _number_of(annotation: Any) -> type | None:
    """``int`` or ``float`` for such an annotation, or one that may also be None; else None."""
    if annotation in (int, float):
        return typing.cast(type, annotation)
    if _optional_number(annotation):
        return next(kind for kind in typing.get_args(annotation) if kind is not type(None))
    return None


def _read(option: ParamSpec, field: Any) -> Any:
    """The value of an option's field (None at the lowest of an optional number)."""
    kind = _number_of(option.annotation)
    if kind is None:
        return field.value
    if kind is not option.annotation and field.value == field.min:
        return None
    return kind(field.value)


def _show(option: ParamSpec, field: Any, value: Any) -> None:
    """Put ``value`` in an option's field; one it cannot show leaves the option's default."""
    kind = _number_of(option.annotation)
    if kind is not None:
        if value is None and kind is not option.annotation:
            field.value = field.min
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            field.value = min(max(value, field.min), field.max)
            return
        value = option.default
        field.value = field.min if value is None else value
        return
    try:
        field.value = value
    except (TypeError, ValueError):
        field.value = option.default


def _same(given: Any, shown: Any) -> bool:
    """Whether a field shows a given option value (numbers to the field's decimals)."""
    if isinstance(given, bool) or isinstance(shown, bool) or given is None or shown is None:
        return given is shown
    if isinstance(given, (int, float)) and isinstance(shown, (int, float)):
        return abs(given - shown) <= 0.5 * 10**-DECIMALS
    return bool(given == shown)


def _optional_number(annotation: Any) -> bool:
    """Whether ``annotation`` is ``int | None`` or ``float | None``."""
    options = set(typing.get_args(annotation))
    return type(None) in options and bool(options & {int, float}) and len(options) == 2
