"""Which measurement columns of a run tell something: an object count that is 1 for every
image (one object per image, as an image quality stage's) is left out of the task table
and the plate map's choices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["COUNT_SUFFIX", "single_count"]

#: how the name of a table stage's object count column ends (``<stage>.count``)
COUNT_SUFFIX = ".count"


def single_count(values: Iterable[Any]) -> bool:
    """Whether an object count column's ``values`` (None or NaN where a task has none)
    are 1 for every task that has one, and there is one: a count that tells nothing."""
    counts = [value for value in values if value is not None and value == value]
    return bool(counts) and all(value == 1 for value in counts)
