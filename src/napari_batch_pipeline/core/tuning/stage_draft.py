"""One stage of the pipeline being edited, and where its data arguments are fed from.

A :class:`StageDraft` is a snapshot of one stage as a person typed it (maybe not a valid
stage yet); :class:`~napari_batch_pipeline.core.tuning.draft.PipelineDraft` holds them in
order and makes every change. :func:`default_source` says where an extra data argument
is fed from until a person says otherwise. Qt- and napari-free.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..pipeline.model import INPUT
from ..stages import StageSpec, get_stage

__all__ = ["NONE", "StageDraft", "default_source", "plain_value", "same_value"]

#: the source that leaves an optional data argument unconnected
NONE = "(none)"

_uids = itertools.count(1)


@dataclass(frozen=True)
class StageDraft:
    """One stage as edited: a snapshot; change it through its ``PipelineDraft``.

    Attributes
    ----------
    function : str
        The stage function (``'gaussian'`` or ``'package.module:function'``).
    name : str
        Its name in the pipeline, as typed (maybe not a valid one yet).
    params : dict
        Every parameter, defaults filled in.
    inputs : dict of str to str
        The source of each connected data argument: ``'input'``, a named channel or an
        earlier stage. The main argument appears only when it is not fed by the stage
        before.
    save : bool
        Whether batches save this stage's output.
    uid : int
        Identifies the stage across renames and moves (for views that keep one widget each).
    group_by : tuple of str, optional
        A group stage's key columns (default: one group, which a preview makes of the
        images open); None for other stages.
    """

    function: str
    name: str
    params: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)
    save: bool = False
    uid: int = field(default_factory=lambda: next(_uids))
    group_by: tuple[str, ...] | None = None

    @property
    def spec(self) -> StageSpec:
        return get_stage(self.function)

    @property
    def extra_args(self) -> list[str]:
        """The data arguments after the main one, whose sources a person chooses."""
        return list(self.spec.data_args)[1:]

    def config(self) -> dict[str, Any]:
        """The stage as a mapping of a pipeline file."""
        config = {
            "name": self.name,
            "function": self.function,
            "params": dict(self.params),
            "inputs": dict(self.inputs),
            "save": self.save and self.spec.returns != "table",
        }
        if self.spec.group:
            config["group_by"] = list(self.group_by or ())
        return config


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


def plain_value(value: Any) -> Any:
    """YAML-friendly: tuples (from tuple fields) become lists."""
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    return value


def same_value(a: Any, b: Any) -> bool:
    """Whether a parameter keeps its value (same type and equal; False if they cannot compare)."""
    try:
        return bool(type(a) is type(b) and a == b)
    except (TypeError, ValueError):
        return False
