"""Sample data for napari's File > Open Sample menu."""

from __future__ import annotations

from typing import Any

from .core.synthetic import nuclei_image

__all__ = ["make_nuclei_sample"]


def make_nuclei_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """A synthetic 256 x 256 uint16 image of nuclei, as one napari layer data tuple."""
    return [(nuclei_image(), {"name": "nuclei"}, "image")]
