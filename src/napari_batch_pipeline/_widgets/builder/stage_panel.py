"""The stages in the Pipeline builder: one panel per stage (name, inputs, parameters, buttons).

A :class:`StagePanel` shows one :class:`~napari_batch_pipeline.core.tuning.draft.StageDraft`:
:meth:`StagePanel.set_draft` puts a draft's values in the fields, and a person's edits
come out as signals; the panel knows neither the session nor the viewer. Its parameter
fields are built as in the stage widgets (:func:`param_annotation`), so a stage looks
the same in both places, except that a parameter the builder writes itself (a
classifier's ``training_sha256``) is shown, not edited. A :class:`StageList` is the view
of a session's stages: it keeps one panel per stage (across renames and moves), updates
their fields when the session changes, and writes the edits into the session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, PushButton, Widget, create_widget
from psygnal import Signal
from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from ...core.pipeline.model import INPUT
from ...core.tuning.draft import NONE, StageDraft
from ...core.tuning.session import TuningSession
from ..stages.param_fields import param_annotation
from ..viewer.session import follow

__all__ = ["NONE", "StageList", "StagePanel"]


class StagePanel(Container):
    """The fields of one stage of the builder's pipeline.

    Parameters
    ----------
    draft : StageDraft
        The stage to show first.

    Attributes
    ----------
    stage_name : LineEdit
    params : dict of str to ValueWidget
        One field per parameter.
    inputs : dict of str to ComboBox
        One chooser per data argument (``'input'``, a named channel, an earlier stage, or
        ``'(none)'`` when optional). The main argument's is shown only when the pipeline
        names channels; without, it is fed by the stage before.
    save : CheckBox
    group_by : LineEdit
        A group stage's key columns, comma-separated (shown for group stages only; their
        result is saved once per group, so they have no save box).
    up_button, down_button, remove_button : PushButton

    Emits ``renamed(name)``, ``param_edited(param, value)``, ``input_edited(arg, source)``,
    ``save_edited(save)`` and ``group_by_edited(columns)`` when a person edits a field (not
    when :meth:`set_draft` does).
    """

    renamed = Signal(str)
    param_edited = Signal(str, object)
    input_edited = Signal(str, str)
    save_edited = Signal(bool)
    group_by_edited = Signal(tuple)

    def __init__(self, draft: StageDraft):
        spec = self.spec = draft.spec
        self.stage_name = LineEdit(value=draft.name, label="name")
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
        args = [spec.main_arg, *draft.extra_args]
        # choices from a callable: magicgui's reset_choices then keeps them, not the first ones
        self._offered: dict[str, list[str]] = {arg: [INPUT] for arg in args}
        self.inputs: dict[str, ComboBox] = {
            arg: ComboBox(
                label=f"{arg} from",
                choices=partial(self._choices, arg),
                tooltip=f"{spec.data_args[arg]} for {arg!r}",
            )
            for arg in args
        }
        self.inputs[spec.main_arg].visible = False
        self.params: dict[str, Any] = {
            param.name: create_widget(
                value=draft.params.get(param.name, param.default),
                annotation=param_annotation(param, spec, read_only=True),
                name=param.name,
                label=param.name,
            )
            for param in spec.params.values()
        }
        self.save = CheckBox(value=draft.save, text="save output in batches")
        if spec.returns == "table" or spec.group:
            self.save.visible = False  # tables are always written, group results too
        self.group_by = LineEdit(
            value=", ".join(draft.group_by or ()),
            label="group by",
            tooltip="columns whose values make a group (folder, metadata fields); empty: one group",
        )
        self.group_by.visible = spec.group
        fields = [*self.inputs.values(), *self.params.values(), self.group_by, self.save]
        super().__init__(widgets=[header, self.stage_name, *fields], labels=True)
        self.native.setObjectName("stage_panel")
        self.stage_name.changed.connect(self._on_name)
        for name, widget in self.params.items():
            widget.changed.connect(partial(self._on_param, name))
        for arg, box in self.inputs.items():
            box.changed.connect(partial(self._on_input, arg))
        self.save.changed.connect(self._on_save)
        self.group_by.changed.connect(self._on_group_by)

    @property
    def stage(self) -> str:
        """The stage's name, as typed."""
        return str(self.stage_name.value).strip()

    def set_draft(
        self,
        draft: StageDraft,
        sources: Mapping[str, Sequence[str]],
        current: Mapping[str, str] | None = None,
    ) -> None:
        """Put the values of ``draft`` in the fields (only those that differ).

        Parameters
        ----------
        draft : StageDraft
        sources : dict of str to list of str
            The sources each data argument may choose from; the main argument's chooser
            shows only when it is among them.
        current : dict of str to str, optional
            The source of each data argument now (default: the draft's inputs, else
            ``'(none)'``).
        """
        if self.stage != draft.name:
            _quietly(self.stage_name, draft.name)
        for name, widget in self.params.items():
            if name in draft.params and _plain(widget.value) != draft.params[name]:
                _quietly(widget, draft.params[name])
        self.inputs[self.spec.main_arg].visible = self.spec.main_arg in sources
        for arg, box in self.inputs.items():
            value = (current or {}).get(arg, draft.inputs.get(arg, NONE))
            choices = list(sources.get(arg, ()))
            if value not in choices:
                choices.append(value)
            self._offered[arg] = choices
            with box.changed.blocked():
                if list(box.choices) != choices:
                    box.reset_choices()
                box.value = value
        if bool(self.save.value) != draft.save:
            _quietly(self.save, draft.save)
        if _columns(self.group_by.value) != tuple(draft.group_by or ()):
            _quietly(self.group_by, ", ".join(draft.group_by or ()))

    def _choices(self, arg: str, _widget: Any = None) -> list[str]:
        return self._offered[arg]

    def _on_name(self, _value: Any = None) -> None:
        self.renamed.emit(self.stage)

    def _on_param(self, name: str, value: Any) -> None:
        self.param_edited.emit(name, value)

    def _on_input(self, arg: str, source: Any) -> None:
        if source is not None:
            self.input_edited.emit(arg, str(source))

    def _on_save(self, value: Any) -> None:
        self.save_edited.emit(bool(value))

    def _on_group_by(self, value: Any) -> None:
        self.group_by_edited.emit(_columns(value))


class StageList(QScrollArea):
    """The stages of a session, one :class:`StagePanel` each, in order, in a scroll area.

    Parameters
    ----------
    session : TuningSession

    Attributes
    ----------
    panels : list of StagePanel
        In the order of the session's stages.
    """

    def __init__(self, session: TuningSession):
        super().__init__()
        self.session = session
        self.panels: list[StagePanel] = []
        self._panel_of: dict[int, StagePanel] = {}  # by StageDraft.uid
        content = QWidget()
        self._layout = QVBoxLayout(content)
        self._layout.addStretch(1)
        self.setWidgetResizable(True)
        self.setWidget(content)
        follow(self, session, {"stages_changed": "_on_stages_changed", "stage_changed": "_show_stage"})
        self._on_stages_changed()

    def panel_of(self, draft: StageDraft) -> StagePanel:
        """The panel of a stage of the session."""
        return self._panel_of[draft.uid]

    def _on_stages_changed(self) -> None:
        """One panel per draft, in order: kept across renames and moves, made for new ones."""
        drafts = self.session.stages
        old = self._panel_of
        self._panel_of = {d.uid: old.pop(d.uid) if d.uid in old else self._new_panel(d) for d in drafts}
        for panel in old.values():  # removed stages
            self._layout.removeWidget(panel.native)
            panel.native.setParent(None)
        panels = list(self._panel_of.values())
        if panels != self.panels:
            for panel in panels:
                self._layout.removeWidget(panel.native)
            for index, panel in enumerate(panels):
                self._layout.insertWidget(index, panel.native)
            self.panels = panels
        for index in range(len(drafts)):
            self._show_stage(index)

    def _show_stage(self, index: int) -> None:
        draft = self.session.stages[index]
        spec = draft.spec
        # the main argument gets a chooser too with named channels, and where it takes a mask
        # or labels (the stage before may give neither); else the stage before feeds it
        chooser = bool(self.session.channels) or spec.data_args[spec.main_arg] == "labels"
        args = [spec.main_arg] * chooser + draft.extra_args
        sources = {arg: self.session.sources(index, arg) for arg in args}
        current = {arg: self.session.source_of(index, arg) for arg in args}
        self.panels[index].set_draft(draft, sources, current)

    def _new_panel(self, draft: StageDraft) -> StagePanel:
        panel = StagePanel(draft)
        panel.up_button.changed.connect(partial(self._edit, panel, "move_stage", -1))
        panel.down_button.changed.connect(partial(self._edit, panel, "move_stage", 1))
        panel.remove_button.changed.connect(partial(self._edit, panel, "remove_stage"))
        panel.renamed.connect(partial(self._edit, panel, "rename_stage"))
        panel.param_edited.connect(partial(self._edit, panel, "set_param"))
        panel.input_edited.connect(partial(self._edit, panel, "set_input"))
        panel.save_edited.connect(partial(self._edit, panel, "set_save"))
        panel.group_by_edited.connect(partial(self._edit, panel, "set_group_by"))
        return panel

    def _edit(self, panel: StagePanel, method: str, *args: Any) -> None:
        """A person's edit of ``panel``: ``session.<method>(index of the panel, *args)``."""
        if method == "move_stage":
            args = args[:1]  # the offset, not the button's value
        elif method == "remove_stage":
            args = ()
        getattr(self.session, method)(self.panels.index(panel), *args)


def _quietly(widget: Any, value: Any) -> None:
    with widget.changed.blocked():
        widget.value = value


def _columns(text: Any) -> tuple[str, ...]:
    """``'plate, well'`` -> ``('plate', 'well')``."""
    return tuple(part.strip() for part in str(text or "").split(",") if part.strip())


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
