"""The live table of the Batch processing widget: one row per finished task, as it finishes."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from ..core.run_folder.records import TaskRecord

__all__ = ["TaskTable"]

_FAILED = QColor(255, 120, 120, 90)
_FIRST_COLUMNS = ["image", "parameters", "status", "seconds", "error"]


class TaskTable(QTableWidget):
    """Rows of images.csv as the engine reports them (``TaskFinished.record``).

    Columns: image, parameters (the task's parameter-set label), status, seconds, the
    summary values (object count, mean measurements) as they first appear, and error,
    always last. Failed tasks are tinted red.
    """

    def __init__(self) -> None:
        super().__init__(0, 0)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setMinimumHeight(180)
        self.tasks: list[tuple[str, str]] = []  # (image, parameter-set label) per row
        self._values: list[dict[str, Any]] = []  # the cells of each row, by column
        self.columns: list[str] = []
        self.clear_tasks()

    def clear_tasks(self) -> None:
        self.tasks, self._values, self.columns = [], [], list(_FIRST_COLUMNS)
        self.setRowCount(0)
        self.setColumnCount(len(self.columns))
        self.setHorizontalHeaderLabels(self.columns)

    def add_record(self, record: TaskRecord) -> None:
        """Append the row of one finished task."""
        values = {
            "image": record.image,
            "parameters": record.label,
            "status": record.status,
            "seconds": record.seconds,
            **record.summary,
            "error": record.error,
        }
        self.tasks.append((record.image, record.label))
        self._values.append(values)
        new = [column for column in values if column not in self.columns]
        if new:
            # summary columns go before "error"; the few rows so far are refilled, in one go
            self.columns[-1:-1] = new
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
