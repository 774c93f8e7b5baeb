"""Names a run folder takes for itself, which stages and metadata groups may not take.

A stage's name names its files (``<stage>.csv``, ``<stage>/``): a stage named ``images``
would overwrite ``images.csv``, one named ``intermediate`` would share the horizontal
strategy's folder. A metadata group's name is a column: a group named ``status`` would
overwrite the task's status. Both are refused before anything runs, by
:func:`check_reserved_names`. The names themselves belong to their owners (the run
folder's layout and tables, the fields, the summary); this module only gathers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from ..errors import PipelineError
from ..images.fields import FIELD_COLUMNS
from ..results.summary import GROUP, OBJECTS, TASKS_DONE, TASKS_FAILED, TASKS_FLAGGED
from ..run_folder import layout
from ..run_folder.tables import BOOKKEEPING, ERROR, FLAGGED, IMAGE, SECONDS, STATUS

__all__ = ["RESERVED_COLUMNS", "RESERVED_STAGE_NAMES", "check_reserved_names"]

#: the stems of the run folder's own files and folders (compared without case)
RESERVED_STAGE_NAMES = frozenset(
    PurePosixPath(name).stem.lower()
    for name in (
        layout.PIPELINE_FILE,
        layout.PROVENANCE_FILE,
        layout.IMAGES_TABLE,
        layout.ERRORS_LOG,
        layout.INTERMEDIATE,
        layout.SUMMARY_TABLE,
        layout.SUMMARY_PLOT,
        layout.SWEEP_PLOT,
        layout.LOCK_FILE,
        layout.NORMALIZED_TABLE,
        layout.ASSAY_TABLE,
    )
    if not name.startswith(".")
)

#: the columns the run writes itself into images.csv, <stage>.csv and summary.csv
RESERVED_COLUMNS = frozenset(
    {
        *BOOKKEEPING,
        *(IMAGE, STATUS, ERROR, SECONDS, FLAGGED),
        *FIELD_COLUMNS,
        *(TASKS_DONE, TASKS_FAILED, TASKS_FLAGGED, OBJECTS, GROUP),
    }
)


def check_reserved_names(stages: Iterable[str], groups: Iterable[str]) -> None:
    """Refuse stage names and metadata groups that the run folder uses for itself.

    Parameters
    ----------
    stages : iterable of str
        The pipeline's stage names.
    groups : iterable of str
        The named groups of the metadata pattern.

    Raises
    ------
    PipelineError
        Naming the stage or group, what it would overwrite, and every reserved name.
    """
    for name in stages:
        if name.lower() in RESERVED_STAGE_NAMES:
            raise PipelineError(
                f"the name {name!r} is one the run folder uses for its own files "
                f"({', '.join(sorted(RESERVED_STAGE_NAMES))}); rename the stage",
                stage=name,
                key="name",
            )
    for group in groups:
        if group in RESERVED_COLUMNS:
            raise PipelineError(
                f"metadata pattern: the group name {group!r} is a column the run writes itself "
                f"({', '.join(sorted(RESERVED_COLUMNS))}); name the group otherwise",
                options=("metadata",),
            )
