"""The pipeline being edited: an ordered list of stage drafts and the named channels,
evented, valid or not yet.

While a person builds a pipeline it is often invalid for a moment (a name half typed),
so drafts are kept as typed and checked only when :meth:`PipelineDraft.pipeline` makes
a :class:`~napari_batch_pipeline.core.pipeline.model.Pipeline` of them. What edits cannot
leave dangling they keep consistent: default names are unique, a renamed stage stays
the source of the stages it feeds, and a data argument whose source was removed or
moved below it gets its default source again.

The ``channels:`` section of a pipeline file is held as it will be written
(``{'dna': 0, 'cyto': 'Alexa 568'}``, see :mod:`.images.channels`); its names are offered
as stage inputs like ``input``.

Every change emits a psygnal signal, so that any number of views can follow one draft:
``stages_changed()`` for the structure (add, remove, move, rename, replace, and the
inputs offered when the channels change), ``stage_changed(index)`` for the values of
one stage (a parameter, an input, save), ``channels_changed()`` and
``name_changed(name)``. Qt- and napari-free; edit from one thread.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import yaml
from psygnal import Signal

from ..errors import PipelineError
from ..images.channels import parse_channels
from ..pipeline.model import INPUT, Pipeline
from ..pipeline.yaml_file import load_yaml
from ..stages import StageSpec, get_stage
from .stage_draft import NONE, StageDraft, default_source, plain_value, same_value

__all__ = [
    "INPUT",
    "NONE",
    "PipelineDraft",
    "StageDraft",
    "channels_from_text",
    "channels_text",
    "default_source",
]


class PipelineDraft:
    """An editable pipeline: stage drafts in order, the named channels, and a name.

    Stages are addressed by their index. Every method that changes something emits
    ``stages_changed``, ``stage_changed(index)``, ``channels_changed`` or
    ``name_changed(name)``, and nothing when nothing changed.
    """

    stages_changed = Signal()
    stage_changed = Signal(int)
    channels_changed = Signal()
    name_changed = Signal(str)

    def __init__(self, name: str = "pipeline") -> None:
        self._stages: list[StageDraft] = []
        self._channels: dict[str, Any] = {}
        self._name = name

    # -- reading ------------------------------------------------------------------------

    @property
    def stages(self) -> tuple[StageDraft, ...]:
        return tuple(self._stages)

    @property
    def name(self) -> str:
        return self._name

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self._stages]

    @property
    def channels(self) -> dict[str, Any]:
        """The ``channels:`` section, name to index, stored name or ``{'file': pattern}``;
        empty when the pipeline names no channels."""
        return dict(self._channels)

    def sources(self, index: int, arg: str) -> list[str]:
        """What the data argument ``arg`` of stage ``index`` may be fed from.

        :data:`NONE` first when the argument is optional, then ``input``, the named
        channels and the earlier stages that do not give a table.
        """
        stage = self._stages[index]
        optional = arg in stage.spec.optional_data and arg != stage.spec.main_arg
        earlier = [s.name for s in self._stages[:index] if s.spec.returns != "table"]
        return list(dict.fromkeys([*([NONE] if optional else []), INPUT, *self._channels, *earlier]))

    def source_of(self, index: int, arg: str) -> str:
        """Where the data argument ``arg`` of stage ``index`` is fed from now: for the main
        argument the stage before unless set otherwise, for the others :data:`NONE` when
        unconnected."""
        stage = self._stages[index]
        default = self._previous(index) if arg == stage.spec.main_arg else NONE
        return stage.inputs.get(arg, default)

    def pipeline(self) -> Pipeline:
        """The drafts as a validated Pipeline.

        Raises
        ------
        PipelineError
            If there is no stage, or the drafts do not make a valid pipeline (naming the
            stage and the key).
        """
        if not self._stages:
            raise PipelineError("the pipeline has no stage yet; add one")
        return Pipeline(
            [stage.config() for stage in self._stages],
            name=self._name or "pipeline",
            channels=self._channels or None,
        )

    # -- structure ----------------------------------------------------------------------

    def add_stage(
        self,
        function: str,
        name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, str] | None = None,
        save: bool = False,
    ) -> StageDraft:
        """Append a stage; return its draft.

        Parameters
        ----------
        function : str
            A catalogue stage (``'gaussian'``) or ``'package.module:function'``.
        name : str, optional
            Its name; default: the function's name, made unique (``gaussian_2`` ...).
        params : dict, optional
            Values for some parameters; the others keep their defaults.
        inputs : dict of str to str, optional
            Sources of some data arguments; the others are wired by :func:`default_source`
            (the main one: the stage before). A source that is not offered is replaced by
            the default too.
        save : bool

        Raises
        ------
        PipelineError
            If the function is unknown, or a parameter or data argument is not one of it.
        """
        spec = get_stage(function)
        name = self._unique_name(spec) if name is None else str(name).strip()
        values = spec.defaults()
        for key, value in (params or {}).items():
            if key not in spec.params:
                known = ", ".join(spec.params) or "none"
                raise PipelineError(
                    f"unknown parameter of {spec.name}; its parameters are: {known}",
                    stage=name,
                    key=f"params.{key}",
                )
            values[key] = plain_value(value)
        wanted = dict(inputs or {})
        for arg in wanted:
            if arg not in spec.data_args:
                raise PipelineError(
                    f"{spec.name} has no data argument {arg!r}; its data arguments are: "
                    f"{', '.join(spec.data_args)}",
                    stage=name,
                    key=f"inputs.{arg}",
                )
        self._stages.append(StageDraft(function, name, values, save=bool(save)))
        self._wire(len(self._stages) - 1, wanted, missing=None)
        self.stages_changed.emit()
        return self._stages[-1]

    def remove_stage(self, index: int) -> None:
        """Remove the stage at ``index``; stages fed by it get their default sources."""
        del self._stages[index]
        self._rewire()
        self.stages_changed.emit()

    def move_stage(self, index: int, offset: int) -> None:
        """Move the stage at ``index`` by ``offset`` places (-1: up, 1: down), within bounds.

        A source that is no longer above the stage it feeds is replaced by the default.
        """
        target = min(max(index + offset, 0), len(self._stages) - 1)
        if target == index:
            return
        self._stages.insert(target, self._stages.pop(index))
        self._rewire()
        self.stages_changed.emit()

    def rename_stage(self, index: int, name: str) -> None:
        """Rename the stage at ``index``; the stages it feeds follow the new name."""
        name = str(name).strip()
        old = self._stages[index].name
        if name == old:
            return
        # a reference to a name means the nearest stage of that name above it
        fed = [later for later in range(index + 1, len(self._stages)) if self._nearest(old, later) == index]
        self._stages[index] = replace(self._stages[index], name=name)
        for later in fed:
            stage = self._stages[later]
            inputs = {arg: name if src == old else src for arg, src in stage.inputs.items()}
            self._stages[later] = replace(stage, inputs=inputs)
        self.stages_changed.emit()

    def clear(self) -> None:
        """Remove every stage."""
        if self._stages:
            self._stages.clear()
            self.stages_changed.emit()

    def set_pipeline(self, pipeline: Pipeline) -> None:
        """Replace the stages, the channels and the name with those of ``pipeline``."""
        channels = {channel.name: channel.to_yaml() for channel in pipeline.channels}
        if channels != self._channels:
            self._channels = channels
            self.channels_changed.emit()
        self._stages = []
        for stage in pipeline.stages:
            draft = StageDraft(
                stage.function, stage.name, dict(stage.params), save=stage.save, group_by=stage.group_by
            )
            self._stages.append(draft)
            unconnected = dict.fromkeys(draft.spec.optional_data, NONE)
            self._wire(len(self._stages) - 1, {**unconnected, **stage.inputs}, missing=None)
        self.stages_changed.emit()
        self.set_name(pipeline.name)

    def set_channels(self, channels: Mapping[str, Any] | None) -> None:
        """Name the channels of the inputs (the ``channels:`` section); None or empty: none.

        Stages fed by a channel that is no longer named get their default sources.
        Emits ``channels_changed`` then ``stages_changed`` when the section changes.

        Raises
        ------
        PipelineError
            If a name or a value is not one a pipeline file takes (nothing changes then).
        """
        checked = parse_channels(dict(channels) if channels else None, reserved=(INPUT,))
        taken = sorted({c.name for c in checked} & set(self.stage_names))
        if taken:
            raise PipelineError(f"channels.{taken[0]}: a stage has this name; name the channel otherwise")
        new = {channel.name: channel.to_yaml() for channel in checked}
        if new == self._channels:
            return
        self._channels = new
        self._rewire()
        self.channels_changed.emit()
        self.stages_changed.emit()

    def set_name(self, name: str) -> None:
        """Name the pipeline (for people; it does not change results)."""
        name = str(name)
        if name != self._name:
            self._name = name
            self.name_changed.emit(name)

    # -- values -------------------------------------------------------------------------

    def set_param(self, index: int, param: str, value: Any) -> None:
        """Set one parameter of the stage at ``index`` (checked when the pipeline is made).

        Raises
        ------
        PipelineError
            If the stage has no such parameter.
        """
        stage = self._stages[index]
        if param not in stage.spec.params:
            raise PipelineError(
                f"unknown parameter of {stage.function}; its parameters are: "
                f"{', '.join(stage.spec.params) or 'none'}",
                stage=stage.name,
                key=f"params.{param}",
            )
        value = plain_value(value)
        if same_value(stage.params.get(param), value):
            return
        self._stages[index] = replace(stage, params={**stage.params, param: value})
        self.stage_changed.emit(index)

    def set_input(self, index: int, arg: str, source: str) -> None:
        """Feed the data argument ``arg`` of the stage at ``index`` from ``source``.

        ``source`` is one of :meth:`sources` (:data:`NONE` disconnects an optional one).

        Raises
        ------
        PipelineError
            If the stage has no such data argument, or ``source`` is not offered for it.
        """
        stage = self._stages[index]
        if arg not in stage.spec.data_args:
            raise PipelineError(
                f"{stage.function} has no data argument {arg!r}; its data arguments are: "
                f"{', '.join(stage.spec.data_args)}",
                stage=stage.name,
                key=f"inputs.{arg}",
            )
        choices = self.sources(index, arg)
        if source not in choices:
            raise PipelineError(
                f"cannot take {arg!r} from {source!r}; expected one of {', '.join(choices)}",
                stage=stage.name,
                key=f"inputs.{arg}",
            )
        inputs = {a: s for a, s in stage.inputs.items() if a != arg}
        if source != NONE and not (arg == stage.spec.main_arg and source == self._previous(index)):
            inputs[arg] = source
        if inputs != stage.inputs:
            self._stages[index] = replace(stage, inputs=inputs)
            self.stage_changed.emit(index)

    def set_save(self, index: int, save: bool) -> None:
        """Whether batches save the output of the stage at ``index``."""
        stage = self._stages[index]
        if bool(save) != stage.save:
            self._stages[index] = replace(stage, save=bool(save))
            self.stage_changed.emit(index)

    def set_group_by(self, index: int, columns: Sequence[str]) -> None:
        """A group stage's key columns (``folder``, metadata fields; none: one group)."""
        stage = self._stages[index]
        group_by = tuple(str(c).strip() for c in columns if str(c).strip())
        if stage.spec.group and group_by != stage.group_by:
            self._stages[index] = replace(stage, group_by=group_by)
            self.stage_changed.emit(index)

    # -- wiring -------------------------------------------------------------------------

    def _unique_name(self, spec: StageSpec) -> str:
        base = spec.name.rpartition(":")[2]
        taken = set(self.stage_names)
        if base not in taken:
            return base
        return next(f"{base}_{n}" for n in itertools.count(2) if f"{base}_{n}" not in taken)

    def _previous(self, index: int) -> str:
        """What feeds the main argument of the stage at ``index`` by default: the stage before."""
        return self._stages[index - 1].name if index else INPUT

    def _nearest(self, name: str, index: int) -> int | None:
        """The index of the nearest stage above ``index`` called ``name``."""
        for earlier in range(index - 1, -1, -1):
            if self._stages[earlier].name == name:
                return earlier
        return None

    def _rewire(self) -> None:
        for index in range(len(self._stages)):
            self._wire(index, self._stages[index].inputs, missing=NONE)

    def _wire(self, index: int, wanted: Mapping[str, str], missing: str | None) -> None:
        """Set the sources of the stage at ``index`` from ``wanted`` where offered.

        An argument not in ``wanted`` is taken as ``missing``; None, or a source not
        offered, means the default one.
        """
        stage = self._stages[index]
        spec = stage.spec
        inputs: dict[str, str] = {}
        main = wanted.get(spec.main_arg)
        if main not in (None, self._previous(index)) and main in self.sources(index, spec.main_arg):
            inputs[spec.main_arg] = main
        for arg in stage.extra_args:
            source = wanted.get(arg, missing)
            if source is None or source not in self.sources(index, arg):
                source = default_source(spec, arg, self._stages[:index])
            if source != NONE:
                inputs[arg] = source
        self._stages[index] = replace(stage, inputs=inputs)


def channels_text(channels: Mapping[str, Any]) -> str:
    """The channels as one line of a pipeline file's flow mapping, without the braces:
    ``'dna: 0, cyto: Alexa 568'`` (empty without channels)."""
    if not channels:
        return ""
    text = yaml.safe_dump(dict(channels), default_flow_style=True, sort_keys=False, width=10**6).strip()
    return text[1:-1].strip()


def channels_from_text(text: str) -> dict[str, Any]:
    """The channels written as :func:`channels_text` writes them (``'dna: 0, cyto: 1'``).

    Raises
    ------
    PipelineError
        If the text is not a mapping of names to channels, saying what was given.
    """
    if not text.strip():
        return {}
    try:
        data = load_yaml("{" + text + "}", "channels")  # guarded: no alias bombs, no deep nesting
    except PipelineError:
        data = None
    if not isinstance(data, dict):
        raise PipelineError(
            f"channels: expected 'name: index' pairs separated by commas (dna: 0, cyto: 1), got {text!r}"
        )
    return {str(name): value for name, value in data.items()}
