"""A screen's scores: robust z-scores against the negative controls, and how well the
controls separate (Z', robust Z', SSMD), over the replicates (wells, else images; see
:mod:`.wells`).

- ``normalized.csv``: each measurement of each replicate as ``(x - median_neg) / (1.4826
  * MAD_neg)``, with the median and MAD (median absolute deviation) of the negative
  control replicates of its plate (the ``plate`` column, else the whole run); NaN where
  the plate has no negative control or a MAD of 0; a measurement constant over the
  replicates (a one-row table stage's count) is left out. With wells, this is pycytominer's
  ``aggregate`` then ``normalize(method="mad_robustize")`` per plate.
- ``assay.csv``: per plate and measurement, over the replicates, the number, mean and sd
  (ddof 1) of the positive and negative controls, ``z_prime = 1 - 3 (sd_p + sd_n) /
  |mean_p - mean_n|``, ``robust_z_prime`` (the same with medians and 1.4826 x MAD) and
  ``ssmd = (mean_p - mean_n) / sqrt(sd_p^2 + sd_n^2)``.

This module owns those names. It computes; :mod:`.conclusions` writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..run_folder.tables import ERROR, FLAGGED, PLATE, SECONDS, STATUS
from .screen import Control, plates
from .wells import LEVEL, replicates

__all__ = [
    "ASSAY_COLUMNS",
    "MAD_SCALE",
    "ROBUST_Z_PRIME",
    "SSMD",
    "Z_PRIME",
    "assay_table",
    "normalized_table",
    "varying",
]

#: the MAD of a normal distribution times this is its sd
MAD_SCALE = 1.4826
MEASUREMENT = "measurement"
Z_PRIME = "z_prime"
ROBUST_Z_PRIME = "robust_z_prime"
SSMD = "ssmd"
ASSAY_COLUMNS = (
    PLATE,
    MEASUREMENT,
    LEVEL,
    "n_positive",
    "n_negative",
    "positive_mean",
    "positive_sd",
    "negative_mean",
    "negative_sd",
    Z_PRIME,
    ROBUST_Z_PRIME,
    SSMD,
)


def _robust_z(values: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    negatives = negatives[np.isfinite(negatives)]
    if not len(negatives):
        return np.full(len(values), np.nan)
    median = np.median(negatives)
    spread = MAD_SCALE * np.median(np.abs(negatives - median))
    if spread == 0:
        return np.full(len(values), np.nan)
    return (values - median) / spread


def varying(replicates: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns that take more than one value over the replicates (missing values
    aside): a constant measurement (``<stage>.count`` of a one-row table stage) has no
    spread to score, and is left out of normalized.csv and assay.csv."""
    found = []
    for column in columns:
        values = pd.to_numeric(replicates[column], errors="coerce").dropna()
        if values.nunique() > 1:
            found.append(column)
    return found


def normalized_table(
    images: pd.DataFrame, columns: Sequence[str], negative: Control, well_aggregate: str = "median"
) -> pd.DataFrame:
    """``normalized.csv``: one row per replicate (a usable well, else a usable image; see
    :mod:`.wells`), its key columns, ``level``, then each column of ``columns`` as a
    robust z-score against the negative-control replicates of its plate; columns
    constant over the replicates are left out (:func:`varying`).

    Parameters
    ----------
    images : DataFrame
        images.csv, with ``flagged`` when the run has quality rules.
    columns : sequence of str
        The per-image measurements (:func:`per_image_measurements`).
    negative : Control
    well_aggregate : {'median', 'mean'}
        How the fields of a well are aggregated, when the run knows wells.
    """
    found = replicates(images, columns, well_aggregate)
    kept = found.frame
    keys = [c for c in kept.columns if c not in (*columns, STATUS, ERROR, SECONDS, FLAGGED)]
    table = kept[keys].copy()
    table[LEVEL] = found.level
    negatives = found.mask(negative)
    plate = plates(kept).to_numpy()
    for column in varying(kept, columns):
        values = pd.to_numeric(kept[column], errors="coerce").to_numpy(dtype=float)
        z = np.full(len(kept), np.nan)
        for name in pd.unique(plate):
            on_plate = plate == name
            z[on_plate] = _robust_z(values[on_plate], values[on_plate & negatives])
        table[column] = z
    return table.reset_index(drop=True)


def _robust_sd(values: pd.Series) -> float:
    """1.4826 x the median absolute deviation: the sd, for a normal distribution."""
    if not len(values):
        return float("nan")
    return float(MAD_SCALE * np.median(np.abs(values - np.median(values))))


def _separation(spread: float, gap: float) -> float:
    """``1 - 3 spread / gap``; NaN without a gap."""
    return 1 - 3 * spread / gap if gap > 0 else float("nan")


def assay_table(
    images: pd.DataFrame,
    columns: Sequence[str],
    negative: Control,
    positive: Control,
    well_aggregate: str = "median",
) -> pd.DataFrame:
    """``assay.csv``: per plate (in order of appearance) and measurement, over its
    replicates (see :func:`normalized_table`): how many controls of each kind, their
    means and sds (ddof 1), Z' = ``1 - 3 (sd_p + sd_n) / |mean_p - mean_n|``, robust Z'
    (the same with medians and 1.4826 x MAD) and SSMD = ``(mean_p - mean_n) /
    sqrt(sd_p^2 + sd_n^2)``; measurements constant over the replicates left out."""
    found = replicates(images, columns, well_aggregate)
    kept = found.frame
    plate = plates(kept).to_numpy()
    negatives, positives = found.mask(negative), found.mask(positive)
    rows = []
    scored = varying(kept, columns)
    for name in pd.unique(plate):
        on_plate = plate == name
        for column in scored:
            values = pd.to_numeric(kept[column], errors="coerce")
            pos = values[on_plate & positives].dropna()
            neg = values[on_plate & negatives].dropna()
            mean_p, sd_p, mean_n, sd_n = pos.mean(), pos.std(ddof=1), neg.mean(), neg.std(ddof=1)
            z_prime = _separation(sd_p + sd_n, abs(mean_p - mean_n))
            robust = _separation(
                _robust_sd(pos) + _robust_sd(neg),
                abs(pos.median() - neg.median()) if len(pos) and len(neg) else float("nan"),
            )
            spread = np.sqrt(sd_p**2 + sd_n**2)
            ssmd = (mean_p - mean_n) / spread if spread > 0 else float("nan")
            rows.append(
                (
                    name,
                    column,
                    found.level,
                    len(pos),
                    len(neg),
                    mean_p,
                    sd_p,
                    mean_n,
                    sd_n,
                    z_prime,
                    robust,
                    ssmd,
                )
            )
    return pd.DataFrame(rows, columns=list(ASSAY_COLUMNS))
