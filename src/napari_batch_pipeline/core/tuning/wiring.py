"""Stages fed data of the wrong kind: what a tuned chain says before a batch trusts it.

A stage that takes labels or a mask runs on any integer or boolean array: fed a blurred
image, ``measure`` finds hundreds of "objects", and ``label`` turns a raw image into one
giant object, both without an error. :func:`wiring_warnings` names such stages, from the
pipeline alone (a stage's output of the wrong kind) and, where the arrays are at hand,
from the data (an input image where a mask or labels are expected).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..pipeline.model import Pipeline

__all__ = ["wiring_warnings"]

_NOUN = {"mask": "a mask", "labels": "labels"}
#: what to do when a stage gets an image where it expects this kind of data
_ADVICE = {
    "mask": "threshold it first (a mask is 0 and 1)",
    "labels": "label a mask first (threshold, then label)",
}


def wiring_warnings(pipeline: Pipeline, data: Mapping[str, Any] | None = None) -> list[str]:
    """Stages whose mask or labels argument is fed something else.

    Parameters
    ----------
    pipeline : Pipeline
    data : dict of str to ndarray, optional
        The arrays of one run by source name (``input``, the named channels and each
        stage's output): inputs and image outputs fed to a mask or labels argument are
        then looked at too: a mask has at most two values, labels are whole numbers.

    Returns
    -------
    list of str
        One sentence per problem, naming the stage, the argument and its source.
    """
    problems = []
    for stage in pipeline:
        for arg, source in stage.inputs.items():
            # napari has no mask type: masks are labels data whose argument says so
            kind = "mask" if arg == "mask" else stage.spec.data_args.get(arg)
            if kind not in _ADVICE:
                continue
            what = f"{stage.name}: its {arg} {source!r}"
            if source in pipeline.stage_names:
                if pipeline[source].returns == "image":
                    problems.append(f"{what} is an image, not {_NOUN[kind]}: {_ADVICE[kind]}")
                continue
            array = None if data is None else data.get(source)
            problem = "" if array is None else _not_of_kind(np.asarray(array), kind)
            if problem:
                problems.append(f"{what} {problem}, not {_NOUN[kind]}: {_ADVICE[kind]}")
    return problems


def _not_of_kind(array: np.ndarray, kind: str) -> str:
    """Why ``array`` is no ``kind`` (``'mask'`` or ``'labels'``); empty if it may be one.

    A mask is looked at in a sample of about 65,536 pixels, evenly spread: an image has
    more than two values there, a mask never does.
    """
    if array.dtype == bool:
        return ""
    if kind == "labels":
        fractional = np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array))
        return "has fractional values" if fractional else ""
    sample = array.ravel()[:: max(1, array.size // 65536)]
    return "has more than two values" if len(np.unique(sample)) > 2 else ""
