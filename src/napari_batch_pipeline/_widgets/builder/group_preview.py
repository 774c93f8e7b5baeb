"""Which open images a group stage's preview learns from, and the line that says so.

A group stage (an illumination function) learns from a group of images: in a batch, the
images sharing its ``group_by`` columns (by default their folder). The builder previews
it on the open image layers of the chosen image's group, where the layers tell their
group (:func:`..viewer.session.group_values`), else on every open image, and says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...core.pipeline.stage_config import DEFAULT_GROUP_BY
from ...core.tuning.image import LayerImage, group_known
from ...core.tuning.session import ChainRun
from ...core.tuning.stage_draft import StageDraft

__all__ = ["group_by_of", "group_line", "group_of"]

#: the most image names the builder's status lists for a group
MAX_NAMED = 8


def group_by_of(stages: Sequence[StageDraft]) -> tuple[str, ...]:
    """The columns the group stages among ``stages`` group by, together (a group stage
    that names none groups by the folder; one with an empty list, everything)."""
    columns: list[str] = []
    for stage in stages:
        if stage.spec.group:
            given = stage.group_by if stage.group_by is not None else (DEFAULT_GROUP_BY,)
            columns += [column for column in given if column not in columns]
    return tuple(columns)


def group_of(image: LayerImage | None, group_by: Sequence[str]) -> str:
    """``'of folder plate2'``: the chosen image's group; ``'(all open images)'`` when its
    group cannot be known (or the stages group everything together)."""
    if image is None or not group_known(image, group_by):
        return "(all open images)"
    values = {c: Path(image.group[c]).name if c == DEFAULT_GROUP_BY else image.group[c] for c in group_by}
    return "of " + ", ".join(f"{column} {value}" for column, value in values.items())


def group_line(chain: ChainRun, group: str) -> str:
    """What the status says of a run's group stages: ``'illum learnt from 3 image(s) of
    folder plate2: a, b, c'``; empty without group stages."""
    stages = chain.pipeline.group_stages
    if not stages:
        return ""
    names = [image.name for image in chain.group_images]
    listed = ", ".join(names[:MAX_NAMED]) + (
        f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    )
    return f"{', '.join(stages)} learnt from {len(names)} image(s) {group}: {listed}"
