"""When and how an image is tiled: ``tile`` (N, ``auto`` or ``none``), ``halo``,
``max_object`` and the pyramid ``levels`` of saved outputs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PipelineError

__all__ = ["AUTO", "NONE", "TileSettings", "chunk_for", "parse_tile"]

AUTO, NONE = "auto", "none"
#: the smallest and largest core side ``auto`` chooses
SMALLEST_AUTO_TILE, _LARGEST_AUTO_TILE = 256, 4096
#: the chain holds about this many float64 copies of a tile (input, outputs, temporaries)
_COPIES = 10
_MIN_CHUNK, _MAX_CHUNK = 64, 512


def parse_tile(value: Any) -> int | str:
    """``'auto'``, ``'none'`` or a core size of 16 pixels or more, from an option's text."""
    if isinstance(value, str) and value.strip().lower() in (AUTO, NONE):
        return value.strip().lower()
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise PipelineError(
            f"tile: expected a size in pixels, auto or none; got {value!r}", options=("tile",)
        ) from None
    if isinstance(value, bool) or size < 16:
        raise PipelineError(f"tile: expected 16 pixels or more, got {value!r}", options=("tile",))
    return size


@dataclass(frozen=True)
class TileSettings:
    """How images are tiled (see the module docstring).

    Attributes
    ----------
    tile : int or {'auto', 'none'}
        The core size per axis; ``auto`` tiles only an image whose chain would not fit
        ``budget``; ``none`` never tiles.
    halo : int or None
        Pixels added around each core; None: the chain's summed radii (the least that
        keeps every core exact). A smaller value is refused when the run starts.
    max_object : int
        The largest object extent (pixels) measurements plan for: an object's crop is
        its tile's core grown by this much; a larger object is measured on a crop of
        its own, and one larger than ``max_crop`` fails its image with a message.
    levels : int
        Pyramid levels of saved outputs, level 0 included.
    budget : int or None
        Bytes one image's chain may hold; None: a quarter of the machine's memory.
    """

    tile: int | str = AUTO
    halo: int | None = None
    max_object: int = 128
    levels: int = 4
    budget: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tile", parse_tile(self.tile))
        for name in ("halo", "max_object", "levels"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise PipelineError(f"{name}: expected 0 or more pixels, got {value!r}", options=(name,))
        if self.levels < 1:
            raise PipelineError(f"levels: expected 1 or more, got {self.levels}", options=("levels",))

    def core_for(self, shape: tuple[int, ...], dtype: Any) -> tuple[int, ...] | None:
        """The core size per axis for an image of ``shape``, or None to run it whole."""
        if self.tile == NONE:
            return None
        if self.tile == AUTO:
            if math.prod(shape) * 8 * _COPIES <= self._budget():
                return None
            size = self.auto_side(len(shape))
            if all(n <= size for n in shape):
                return None  # no smaller tile would fit either: run it whole
        else:
            size = int(self.tile)
            if all(n <= size for n in shape):
                return None
        del dtype  # every chain computes in float64 at worst: the size rule is the same
        return tuple(_rounded(min(size, n)) if n > size else n for n in shape)

    def auto_side(self, ndim: int) -> int:
        """The core side ``auto`` takes: the largest whose chain fits the budget, a
        multiple of 256, from 256 to 4096 pixels."""
        side = int((self._budget() / (8 * _COPIES)) ** (1 / ndim))
        return int(np.clip(side - side % SMALLEST_AUTO_TILE, SMALLEST_AUTO_TILE, _LARGEST_AUTO_TILE))

    def fits_budget(self, ndim: int = 2) -> bool:
        """Whether the smallest tile ``auto`` takes fits the budget."""
        return SMALLEST_AUTO_TILE**ndim * 8 * _COPIES <= self._budget()

    def budget_bytes(self) -> int:
        """Bytes one image may hold: the budget, or a quarter of the machine's memory."""
        return self._budget()

    def _budget(self) -> int:
        if self.budget is not None:
            return self.budget
        return total_memory() // 4

    def to_json(self) -> dict[str, Any]:
        return {"tile": self.tile, "halo": self.halo, "max_object": self.max_object, "levels": self.levels}


def _rounded(size: int) -> int:
    """``size`` rounded up to a multiple of its output chunk (see :func:`chunk_for`)."""
    chunk = chunk_for(size)
    return math.ceil(size / chunk) * chunk


def chunk_for(size: int) -> int:
    """The output chunk along an axis whose tile core is ``size``: the largest power of
    two from 64 to 512 that divides it (64 when none does; the core is then rounded up)."""
    chunk = _MAX_CHUNK
    while chunk > _MIN_CHUNK and size % chunk:
        chunk //= 2
    return int(np.clip(chunk, 1, size)) if size < _MIN_CHUNK else chunk


def total_memory() -> int:
    """The machine's memory in bytes: from ``sysconf`` where the system has it (no
    psutil import in every task's worker: a tenth of a second on a one-image run)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        import psutil

        return int(psutil.virtual_memory().total)
