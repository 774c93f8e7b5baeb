"""Which measurement columns of a run tell something. An object count that is 1 for every
image (one object per image, as an image quality stage's) and a measurement with one
value over several images (a saturated fraction of 0 everywhere) are left out of the
task table and the plate map's choices, as assay.csv leaves them out
(:func:`~napari_batch_pipeline.core.results.scores.varying`). An object count that is
the same for a few images by chance stays."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["COUNT_SUFFIX", "single_count", "tells_nothing"]

#: how the name of a table stage's object count column ends (``<stage>.count``)
COUNT_SUFFIX = ".count"


def single_count(values: Iterable[Any]) -> bool:
    """Whether an object count column's ``values`` (None or NaN where a task has none)
    are 1 for every task that has one, and there is one: a count that tells nothing."""
    counts = [value for value in values if value is not None and value == value]
    return bool(counts) and all(value == 1 for value in counts)


def tells_nothing(column: str, values: Iterable[Any]) -> bool:
    """Whether measurement ``column`` with ``values`` (one per image; None or NaN where an
    image has none) only clutters a view: a :func:`single_count`, or another column with
    one value over two images or more."""
    if column.endswith(COUNT_SUFFIX):
        return single_count(values)
    known = [value for value in values if value is not None and value == value]
    return len(known) >= 2 and len(set(known)) == 1
