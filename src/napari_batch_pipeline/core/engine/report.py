"""The outcome of a batch run: counts, and its tables read back from the run folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..run_folder.reader import RunResults
from ..run_folder.tables import ERROR, IMAGE, STATUS

__all__ = ["Report"]


@dataclass
class Report:
    """The outcome of a batch run; tables are read from the run folder.

    Attributes
    ----------
    output_dir : Path
        The run folder.
    total, done, failed, skipped : int
        Tasks in the batch; done and failed in this run; done in an earlier one.
    cancelled : bool
    seconds : float
    table_stages : list of str
    """

    output_dir: Path
    total: int
    done: int
    failed: int
    skipped: int
    cancelled: bool
    seconds: float
    table_stages: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every task is done, 1 otherwise."""
        return 0 if self.done + self.skipped == self.total and not self.cancelled else 1

    @property
    def results(self) -> RunResults:
        """The run folder, read back."""
        return RunResults(self.output_dir)

    @property
    def images(self) -> pd.DataFrame:
        """images.csv: one row per task."""
        return self.results.images

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every ``<stage>.csv`` by stage."""
        results = self.results
        return {stage: results.table(stage) for stage in self.table_stages}

    def summary(self, group_by: Sequence[str] | str | None = None) -> pd.DataFrame:
        """One row per group of images: counts, and the mean, sd, sem and median of each
        measurement over the per-image means (see :mod:`.summary`).

        Parameters
        ----------
        group_by : sequence of str or str, optional
            Columns of images.csv (a text is split at commas); None: as the run grouped
            its ``summary.csv``.
        """
        from ..results.summary import run_summary

        if isinstance(group_by, str):
            group_by = [column.strip() for column in group_by.split(",") if column.strip()]
        return run_summary(self.results, group_by)[0]

    @property
    def failures(self) -> pd.DataFrame:
        """The failed tasks: image and error."""
        images = self.images
        return images[images[STATUS] == "failed"][[IMAGE, ERROR]]
