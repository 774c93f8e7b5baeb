"""One stage in the Pipeline builder: its name, inputs, parameter fields and buttons.

The parameter fields are built as in the stage widgets (:func:`param_annotation`), so a
stage looks the same in both places. The panel knows nothing of the viewer; the builder
reads :meth:`StagePanel.config` and listens to ``changed``.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, PushButton, Widget, create_widget

from ..core.pipeline import INPUT
from ..core.stages import StageSpec
from .stage_widgets import param_annotation

__all__ = ["NONE", "StagePanel"]

#: the choice that leaves an optional data argument unconnected
NONE = "(none)"


class StagePanel(Container):
    """The fields of one stage of the builder's pipeline.

    Parameters
    ----------
    spec : StageSpec
        The stage function.
    name : str
        The stage's name in the pipeline (names its output).
    params, inputs : dict, optional
        Values to start from (default: the stage's defaults; inputs chosen later).
    save : bool
        Whether batches save this stage's output.

    Attributes
    ----------
    stage_name : LineEdit
    params : dict of str to ValueWidget
        One field per parameter.
    inputs : dict of str to ComboBox
        One chooser per data argument after the main one (``'input'``, an earlier stage,
        or ``'(none)'`` when optional).
    save : CheckBox
    up_button, down_button, remove_button : PushButton
    """

    def __init__(
        self,
        spec: StageSpec,
        name: str,
        params: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        save: bool = False,
    ):
        params = params or {}
        self.spec = spec
        self.stage_name = LineEdit(value=name, label="name")
        self.up_button = PushButton(text="▲", tooltip="move up")
        self.down_button = PushButton(text="▼", tooltip="move down")
        self.remove_button = PushButton(text="✕", tooltip="remove this stage")
        for button in (self.up_button, self.down_button, self.remove_button):
            button.native.setMaximumWidth(32)
        title = Label(value=f"<b>{spec.name}</b> → {spec.returns}", tooltip=spec.summary)
        header: Container[Widget] = Container(
            widgets=[title, self.up_button, self.down_button, self.remove_button],
            layout="horizontal",
            labels=False,
        )
        header.margins = (0, 0, 0, 0)
        self._wanted_inputs = dict(inputs or {})
        self.inputs: dict[str, ComboBox] = {
            arg: ComboBox(label=f"{arg} from", choices=[INPUT], tooltip=f"{kind} for {arg!r}")
            for arg, kind in list(spec.data_args.items())[1:]
        }
        self.params: dict[str, Any] = {
            param.name: create_widget(
                value=params.get(param.name, param.default),
                annotation=param_annotation(param),
                name=param.name,
                label=param.name,
            )
            for param in spec.params.values()
        }
        self.save = CheckBox(value=save, text="save output in batches")
        if spec.returns == "table":
            self.save.visible = False  # tables are always written
        super().__init__(
            widgets=[header, self.stage_name, *self.inputs.values(), *self.params.values(), self.save],
            labels=True,
        )
        self.native.setObjectName("stage_panel")

    @property
    def stage(self) -> str:
        """The stage's name, as typed."""
        return str(self.stage_name.value).strip()

    def config(self) -> dict[str, Any]:
        """The stage as a mapping of a pipeline file."""
        return {
            "name": self.stage,
            "function": self.spec.name,
            "params": {key: _plain(widget.value) for key, widget in self.params.items()},
            "inputs": {arg: box.value for arg, box in self.inputs.items() if box.value != NONE},
            "save": bool(self.save.value) and self.spec.returns != "table",
        }

    def set_sources(self, earlier: list[tuple[str, str]]) -> None:
        """Offer ``input`` and the earlier stages as sources of the extra data arguments.

        Parameters
        ----------
        earlier : list of (stage name, output kind)
            The stages before this one; tables are never offered.
        """
        for arg, box in self.inputs.items():
            kind = self.spec.data_args[arg]
            names = [name for name, returns in earlier if returns != "table"]
            choices = ([NONE] if arg in self.spec.optional_data else []) + [INPUT, *names]
            wanted = self._wanted_inputs.get(arg, box.value if box.value in choices else None)
            if wanted not in choices:
                wanted = _default_source(arg, kind, earlier, arg in self.spec.optional_data)
            with box.changed.blocked():
                box.choices = choices
                box.value = wanted
        self._wanted_inputs = {}


def _default_source(arg: str, kind: str, earlier: list[tuple[str, str]], optional: bool) -> str:
    """Where an extra data argument is fed from until the user says otherwise.

    An image comes from ``input`` (measure intensities on the raw image); required
    labels from the latest stage giving labels or a mask; optional labels from nothing.
    """
    if kind == "image":
        return INPUT
    if optional:
        return NONE
    for name, returns in reversed(earlier):
        if returns in ("mask", "labels"):
            return name
    return INPUT


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
