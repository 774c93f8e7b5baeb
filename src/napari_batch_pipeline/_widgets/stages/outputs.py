"""What a stage widget's output layer is, and masks told apart from labels.

napari has no mask type: a threshold's 0/1 output is a Labels layer like a label stage's
numbered objects, and a stage that takes labels (measure) runs on a mask without an
error, measuring one object. A stage widget writes the kind of its output into the
layer's metadata (:data:`OUTPUT_KIND`); :func:`is_mask` reads it (or boolean data), so
that a labels chooser can prefer labels and a mask chosen by hand gets a warning
(:func:`mask_warning`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels

__all__ = ["OUTPUT_KIND", "is_mask", "mask_warning"]

#: the metadata key of a stage widget's output layer: the stage's kind of output
OUTPUT_KIND = "stage_output"


def is_mask(layer: Any) -> bool:
    """Whether ``layer`` is a mask: a stage widget's mask output, or boolean data."""
    if not isinstance(layer, Labels):
        return False
    return layer.metadata.get(OUTPUT_KIND) == "mask" or getattr(layer.data, "dtype", None) is np.dtype(bool)


def mask_warning(stage: str, argument: str, layer: str) -> str:
    """The warning for stage ``stage`` whose labels ``argument`` is fed the mask ``layer``."""
    return (
        f"{stage}: its {argument} {layer!r} is a mask (0 and 1), not labels, so every object "
        "is one: label it first (the Label stage), then choose that layer"
    )
