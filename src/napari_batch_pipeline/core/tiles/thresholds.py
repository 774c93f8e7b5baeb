"""Global thresholds of an image seen tile by tile, equal to scikit-image's on the whole.

scikit-image's histogram thresholds (``threshold_otsu``, ``_yen``, ``_isodata``,
``_minimum``) read the image only through its histogram: 256 equal bins between the
image's minimum and maximum for floating-point pixels, one bin per value between them
for integers. Both are sums over pixels, so the histograms of the tiles' cores, taken
over the whole image's range, add up to the whole image's histogram bin for bin; the
threshold computed from it is the whole image's, bit for bit.

Two passes: :class:`ValueRange` (minimum and maximum), then :class:`Histogram`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from skimage import filters

__all__ = ["NBINS", "Histogram", "ValueRange"]

#: the bins scikit-image's thresholds use for floating-point images
NBINS = 256


@dataclass
class ValueRange:
    """The least and greatest value of the arrays given to :meth:`add`."""

    low: Any = None
    high: Any = None

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        low, high = values.min(), values.max()
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def to_json(self) -> list[Any]:
        return [_plain(self.low), _plain(self.high)]


@dataclass
class Histogram:
    """The histogram of every array given to :meth:`add`, as scikit-image bins it over
    ``[low, high]`` (the whole image's range, from a :class:`ValueRange`).

    Parameters
    ----------
    low, high : scalar
        The whole image's least and greatest value, of the image's dtype.
    dtype : numpy dtype
        The image's dtype.
    """

    low: Any
    high: Any
    dtype: np.dtype
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.dtype = np.dtype(self.dtype)
        self.low, self.high = self.dtype.type(self.low), self.dtype.type(self.high)
        size = int(self.high) - int(self.low) + 1 if self.integer else NBINS
        self.counts = np.zeros(size, dtype=np.int64)

    @property
    def integer(self) -> bool:
        return bool(np.issubdtype(self.dtype, np.integer))

    def add(self, values: np.ndarray) -> None:
        if values.dtype != self.dtype:
            raise ValueError(f"a tile of dtype {values.dtype} in a histogram of {self.dtype}")
        if self.integer:
            shifted = values.astype(np.int64).ravel() - int(self.low)
            self.counts += np.bincount(shifted, minlength=self.counts.size)
        else:
            self.counts += np.histogram(values, bins=NBINS, range=self._edges_range())[0]

    def _edges_range(self) -> tuple[Any, Any]:
        # numpy widens a range of one value by 0.5 each way, as it does for (min, max)
        if self.low == self.high:
            return self.low - 0.5, self.high + 0.5
        return self.low, self.high

    def bin_centers(self) -> np.ndarray:
        if self.integer:
            return np.arange(int(self.low), int(self.high) + 1)
        probe = np.array([self.low, self.high], dtype=self.dtype)
        edges = np.histogram_bin_edges(probe, bins=NBINS, range=self._edges_range())
        return (edges[:-1] + edges[1:]) / 2.0

    def threshold(self, method: str) -> Any:
        """``skimage.filters.threshold_<method>`` of the whole image, from its histogram."""
        function = getattr(filters, f"threshold_{method}")
        if self.low == self.high:  # one value: as scikit-image answers for such an image
            return function(np.full((2, 2), self.low, dtype=self.dtype))
        return function(hist=(self.counts, self.bin_centers()))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
