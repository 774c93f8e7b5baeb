"""The live table of the Batch processing widget: one row per finished task, as it finishes."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from ..core.images.fields import SCENE, TIME
from ..core.plan import Task
from ..core.run_folder.records import TaskRecord

__all__ = ["TaskTable"]

_FAILED = QColor(255, 120, 120, 90)
_FIRST_COLUMNS = ["image", "parameters", "status", "seconds", "error"]
#: the columns of a task's field shown after ``image``, for runs that have them
_FIELD_COLUMNS = (SCENE, TIME)


class TaskTable(QTableWidget):
    """Rows of images.csv as the engine reports them (``TaskFinished.record``).

    Columns: image, scene and t (for runs with several scenes or time points, from the
    task's columns), parameters (the task's parameter-set label), status, seconds, the
    summary values (object count, mean measurements) as they first appear, and error,
    always last. Failed tasks are tinted red.

    Attributes
    ----------
    tasks : list of Task
        The plan's task of each row.
    """

    def __init__(self) -> None:
        super().__init__(0, 0)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setMinimumHeight(180)
        self.tasks: list[Task] = []
        self._values: list[dict[str, Any]] = []  # the cells of each row, by column
        self.columns: list[str] = []
        self.clear_tasks()

    def clear_tasks(self) -> None:
        self.tasks, self._values, self.columns = [], [], list(_FIRST_COLUMNS)
        self.setRowCount(0)
        self.setColumnCount(len(self.columns))
        self.setHorizontalHeaderLabels(self.columns)

    def add_record(self, record: TaskRecord, task: Task) -> None:
        """Append the row of one finished task (``task``: the plan's task of ``record``)."""
        field = task.metadata
        values = {
            "image": record.image,
            **{column: field[column] for column in _FIELD_COLUMNS if column in field},
            "parameters": record.label,
            "status": record.status,
            "seconds": record.seconds,
            **record.summary,
            "error": record.error,
        }
        self.tasks.append(task)
        self._values.append(values)
        new = [column for column in values if column not in self.columns]
        if new:
            # field columns go after "image", summary columns before "error"; the few rows
            # so far are refilled, in one go
            fields = [column for column in new if column in _FIELD_COLUMNS]
            self.columns[1:1] = fields
            self.columns[-1:-1] = [column for column in new if column not in fields]
            self.setColumnCount(len(self.columns))
            self.setHorizontalHeaderLabels(self.columns)
            self.setRowCount(len(self._values) - 1)
            for row, old in enumerate(self._values[:-1]):
                self._fill(row, old)
        row = self.rowCount()
        self.insertRow(row)
        self._fill(row, values)

    def _fill(self, row: int, values: dict[str, Any]) -> None:
        failed = values["status"] == "failed"
        for column, value in values.items():
            item = QTableWidgetItem(_cell(value))
            if failed:
                item.setBackground(_FAILED)
            self.setItem(row, self.columns.index(column), item)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value)
