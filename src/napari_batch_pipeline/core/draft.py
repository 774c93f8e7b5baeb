"""The pipeline being edited: an ordered list of stage drafts, evented, valid or not yet.

While a person builds a pipeline it is often invalid for a moment (a name half typed),
so drafts are kept as typed and checked only when :meth:`PipelineDraft.pipeline` makes
a :class:`~napari_batch_pipeline.core.pipeline.Pipeline` of them. What edits cannot
leave dangling they keep consistent: default names are unique, a renamed stage stays
the source of the stages it feeds, and a data argument whose source was removed or
moved below it gets its default source again.

Every change emits a psygnal signal, so that any number of views can follow one draft:
``stages_changed()`` for the structure (add, remove, move, rename, replace),
``stage_changed(index)`` for the values of one stage (a parameter, an input, save), and
``name_changed(name)``. Qt- and napari-free; edit from one thread.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from psygnal import Signal

from .errors import PipelineError
from .pipeline import INPUT, Pipeline
from .stages import StageSpec, get_stage

__all__ = ["INPUT", "NONE", "PipelineDraft", "StageDraft", "default_source"]

#: the source that leaves an optional data argument unconnected
NONE = "(none)"

_uids = itertools.count(1)


@dataclass(frozen=True)
class StageDraft:
    """One stage as edited: a snapshot; change it through its :class:`PipelineDraft`.

    Attributes
    ----------
    function : str
        The stage function (``'gaussian'`` or ``'package.module:function'``).
    name : str
        Its name in the pipeline, as typed (maybe not a valid one yet).
    params : dict
        Every parameter, defaults filled in.
    inputs : dict of str to str
        The source of each connected data argument: ``'input'`` or an earlier stage. The
        main argument appears only when it is not fed by the stage before.
    save : bool
        Whether batches save this stage's output.
    uid : int
        Identifies the stage across renames and moves (for views that keep one widget each).
    """

    function: str
    name: str
    params: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)
    save: bool = False
    uid: int = field(default_factory=lambda: next(_uids))

    @property
    def spec(self) -> StageSpec:
        return get_stage(self.function)

    @property
    def extra_args(self) -> list[str]:
        """The data arguments after the main one, whose sources a person chooses."""
        return list(self.spec.data_args)[1:]

    def config(self) -> dict[str, Any]:
        """The stage as a mapping of a pipeline file."""
        return {
            "name": self.name,
            "function": self.function,
            "params": dict(self.params),
            "inputs": dict(self.inputs),
            "save": self.save and self.spec.returns != "table",
        }


def default_source(spec: StageSpec, arg: str, earlier: Sequence[StageDraft]) -> str:
    """Where an extra data argument is fed from until a person says otherwise.

    An image comes from ``input`` (measure intensities on the raw image); required
    labels from the latest earlier stage giving labels or a mask (else ``input``);
    optional labels from nothing (:data:`NONE`).
    """
    if spec.data_args[arg] == "image":
        return INPUT
    if arg in spec.optional_data:
        return NONE
    for stage in reversed(earlier):
        if stage.spec.returns in ("mask", "labels"):
            return stage.name
    return INPUT


class PipelineDraft:
    """An editable pipeline: stage drafts in order, and a name.

    Stages are addressed by their index. Every method that changes something emits
    ``stages_changed``, ``stage_changed(index)`` or ``name_changed(name)``, and nothing
    when nothing changed.
    """

    stages_changed = Signal()
    stage_changed = Signal(int)
    name_changed = Signal(str)

    def __init__(self, name: str = "pipeline") -> None:
        self._stages: list[StageDraft] = []
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

    def sources(self, index: int, arg: str) -> list[str]:
        """What the data argument ``arg`` of stage ``index`` may be fed from.

        :data:`NONE` first when the argument is optional, then ``input`` and the earlier
        stages that do not give a table.
        """
        stage = self._stages[index]
        optional = arg in stage.spec.optional_data and arg != stage.spec.main_arg
        earlier = [s.name for s in self._stages[:index] if s.spec.returns != "table"]
        return list(dict.fromkeys([*([NONE] if optional else []), INPUT, *earlier]))

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
        return Pipeline([stage.config() for stage in self._stages], name=self._name or "pipeline")

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
            values[key] = _plain(value)
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
        """Replace the stages and the name with those of ``pipeline``."""
        self._stages = []
        for stage in pipeline.stages:
            draft = StageDraft(stage.function, stage.name, dict(stage.params), save=stage.save)
            self._stages.append(draft)
            unconnected = dict.fromkeys(draft.spec.optional_data, NONE)
            self._wire(len(self._stages) - 1, {**unconnected, **stage.inputs}, missing=None)
        self.stages_changed.emit()
        self.set_name(pipeline.name)

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
        value = _plain(value)
        if _same(stage.params.get(param), value):
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


def _plain(value: Any) -> Any:
    """YAML-friendly: tuples (from tuple fields) become lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(type(a) is type(b) and a == b)
    except (TypeError, ValueError):
        return False
