"""The live table of the Batch processing widget: one row per finished task, as it finishes.

A model/view table: :class:`TaskTableModel` holds the rows (plain values, formatted only
when a cell is painted) and takes finished tasks in batches, one ``rowsInserted`` per
batch, so a run of 1,000 fast tasks costs the event loop a few dozen cheap updates
instead of 1,000 rows of widget items. Only the rows in view are ever painted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QTableView

from ...core.engine.report import Report
from ...core.errors import PipelineError
from ...core.images.fields import SCENE, TIME
from ...core.plan.tasks import Task
from ...core.run_folder.records import TaskRecord
from ...core.run_folder.tables import FLAGGED
from ..results.columns import tells_nothing

__all__ = ["TaskTable", "TaskTableModel"]

_FAILED = QColor(255, 120, 120, 90)
#: done, but breaking a quality rule: left out of the run's conclusions
_FLAGGED = QColor(255, 190, 60, 90)
_FIRST_COLUMNS = ["image", "parameters", "status", "seconds", "error"]
#: pixels an image name may take in the table at most
MAX_NAME_WIDTH = 320
#: rows the widths of columns are fitted to (the first ones)
_FIT_ROWS = 50
#: the columns of a task's field shown after ``image``, for runs that have them
_FIELD_COLUMNS = (SCENE, TIME)
#: the columns that are no measurement
_NOT_MEASURED = {*_FIRST_COLUMNS, *_FIELD_COLUMNS, FLAGGED}


class TaskTableModel(QAbstractTableModel):
    """Rows of images.csv as the engine reports them (``TaskFinished.record``), read-only.

    Columns: image, scene and t (for runs with several scenes or time points, from the
    task's columns), parameters (the task's parameter-set label), status, seconds, the
    summary values (object count, mean measurements) as they first appear, ``flagged``
    (the quality rules a done image breaks, known once the run's tables are written), and
    error, always last. Failed rows have a red background, flagged ones an amber one.

    Attributes
    ----------
    tasks : list of Task
        The plan's task of each row.
    columns : list of str
        The column names, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[Task] = []
        self.columns: list[str] = list(_FIRST_COLUMNS)
        self._values: list[dict[str, Any]] = []  # the cells of each row, by column

    def clear(self) -> None:
        """Remove every row; the columns go back to the first ones."""
        self.beginResetModel()
        self.tasks, self._values, self.columns = [], [], list(_FIRST_COLUMNS)
        self.endResetModel()

    def add_records(self, finished: Sequence[tuple[TaskRecord, Task]]) -> None:
        """Append the rows of finished tasks: ``(record, the plan's task of it)`` pairs.

        One ``rowsInserted`` for all of them; when they bring new columns (the summary
        values of the first done task, a run's scene column) the model is reset once
        instead, which repaints only what is in view.
        """
        if not finished:
            return
        rows = [_row_values(record, task) for record, task in finished]
        seen = dict.fromkeys(column for values in rows for column in values)
        new = [column for column in seen if column not in self.columns]
        if new:
            self.beginResetModel()
            # field columns go after "image", summary columns before "error"
            fields = [column for column in new if column in _FIELD_COLUMNS]
            self.columns[1:1] = fields
            self.columns[-1:-1] = [column for column in new if column not in fields]
        else:
            first = len(self._values)
            self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        self._values.extend(rows)
        self.tasks.extend(task for _, task in finished)
        if new:
            self.endResetModel()
        else:
            self.endInsertRows()

    def set_flags(self, flags: Sequence[str]) -> None:
        """Show the quality rules each task breaks: ``flags`` in task order (images.csv's
        ``flagged``); a ``flagged`` column appears before ``error`` if any is flagged."""
        marked = {row: flags[task.index] for row, task in enumerate(self.tasks) if task.index < len(flags)}
        if not any(marked.values()):
            return
        self.beginResetModel()
        if FLAGGED not in self.columns:
            self.columns.insert(len(self.columns) - 1, FLAGGED)
        for row, text in marked.items():
            self._values[row][FLAGGED] = text
        self.endResetModel()

    def value(self, row: int, column: str) -> Any:
        """The value of ``column`` in row ``row`` (None where the row has none)."""
        return self._values[row].get(column)

    def text(self, row: int, column: int) -> str:
        """The text shown in a cell."""
        return _cell(self._values[row].get(self.columns[column]))

    # -- QAbstractTableModel ------------------------------------------------------------

    def rowCount(self, parent: Any = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._values)

    def columnCount(self, parent: Any = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(index.row(), index.column())
        if role == Qt.ItemDataRole.BackgroundRole:
            values = self._values[index.row()]
            return _FAILED if values["status"] == "failed" else _FLAGGED if values.get(FLAGGED) else None
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.columns[section] if section < len(self.columns) else None
        return str(section + 1)


class TaskTable(QTableView):
    """The view of a :class:`TaskTableModel`: rows selected whole, one at a time.

    Signals
    -------
    cellClicked(row, column)
        A cell was clicked.

    Attributes
    ----------
    tasks : list of Task
        The plan's task of each row.
    columns : list of str
        The column names, in order.
    """

    cellClicked = Signal(int, int)

    def __init__(self) -> None:
        super().__init__()
        self.task_model = TaskTableModel()
        self.setModel(self.task_model)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setMinimumHeight(180)
        self.horizontalHeader().setResizeContentsPrecision(_FIT_ROWS)
        self.clicked.connect(lambda index: self.cellClicked.emit(index.row(), index.column()))

    @property
    def tasks(self) -> list[Task]:
        return self.task_model.tasks

    @property
    def columns(self) -> list[str]:
        return self.task_model.columns

    def clear_tasks(self) -> None:
        self.task_model.clear()

    def add_record(self, record: TaskRecord, task: Task) -> None:
        """Append the row of one finished task (``task``: the plan's task of ``record``)."""
        self.task_model.add_records([(record, task)])

    def add_records(self, finished: Sequence[tuple[TaskRecord, Task]]) -> None:
        """Append the rows of several finished tasks at once (see :meth:`TaskTableModel.add_records`)."""
        columns = len(self.columns)
        self.task_model.add_records(finished)
        if len(self.columns) != columns:
            self.fit_columns()
        self._hide_constant_columns()

    def _hide_constant_columns(self) -> None:
        """Hide a measurement column while it tells nothing (:func:`tells_nothing`): a
        ``<stage>.count`` of 1 in every row (a stage of one row per image, such as
        ``image_quality``, counts nothing) or a value the same in every row; they only push
        the measurements that differ out of view."""
        for position, column in enumerate(self.columns):
            if column not in _NOT_MEASURED:
                values = [self.task_model.value(r, column) for r in range(self.rowCount())]
                self.setColumnHidden(position, tells_nothing(column, values))

    def fit_columns(self) -> None:
        """Columns as wide as what their first rows hold (image names up to
        :data:`MAX_NAME_WIDTH` pixels); the parameters column hidden while no row has a
        parameter set, so that the measurements come into view."""
        self.resizeColumnsToContents()
        self.setColumnWidth(0, min(self.columnWidth(0), MAX_NAME_WIDTH))
        labels = self.columns.index("parameters")
        self.setColumnHidden(labels, not any(self.task_model.text(r, labels) for r in range(self.rowCount())))

    def add_resumed(self, records: Sequence[TaskRecord], tasks: Sequence[Task]) -> None:
        """Rows for the tasks a resumed run had done before: clicked like the others."""
        by_key = {task.key: task for task in tasks}
        self.add_records([(record, by_key[record.key]) for record in records if record.key in by_key])

    def show_flags(self, report: Report | None) -> None:
        """Mark the tasks a finished run flagged (its images.csv's ``flagged``; see
        :meth:`TaskTableModel.set_flags`); nothing when its tables cannot be read."""
        if report is None:
            return
        try:
            images = report.images
        except (PipelineError, OSError, ValueError):
            return
        if FLAGGED in images.columns:
            self.task_model.set_flags(list(images[FLAGGED].fillna("").astype(str)))

    def rowCount(self) -> int:
        return self.task_model.rowCount()

    def columnCount(self) -> int:
        return self.task_model.columnCount()

    def text(self, row: int, column: int | str) -> str:
        """The text of a cell; ``column`` by position or by name."""
        position = self.columns.index(column) if isinstance(column, str) else column
        return self.task_model.text(row, position)

    def cell_rect(self, row: int, column: int = 0) -> Any:
        """Where a cell is in the viewport (a QRect), for a click."""
        return self.visualRect(self.task_model.index(row, column))


def _row_values(record: TaskRecord, task: Task) -> dict[str, Any]:
    field = task.metadata
    return {
        "image": record.image,
        **{column: field[column] for column in _FIELD_COLUMNS if column in field},
        "parameters": record.label,
        "status": record.status,
        "seconds": record.seconds,
        **record.summary,
        "error": record.error,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value)
