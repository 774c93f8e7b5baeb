"""What the engine reports while it runs: plain objects, yielded by BatchRun.events()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..plan.estimate import Estimate
    from ..run_folder.records import TaskRecord
    from .report import Report

__all__ = ["Event", "ExecutorChosen", "RunFinished", "RunStarted", "StageProgress", "TaskFinished"]


@dataclass(frozen=True)
class Event:
    """Base of every engine event."""


@dataclass(frozen=True)
class RunStarted(Event):
    """The run begins: how many tasks, how many already done (resumed), the estimate;
    ``resumed`` holds the records of the tasks already done, in task order."""

    total: int
    skipped: int
    output_dir: str
    strategy: str
    executor: str
    workers: int
    estimate: Estimate | None
    resumed: tuple[TaskRecord, ...] = ()
    #: why the ``auto`` executor chose ``executor`` (empty when it was named)
    executor_reason: str = ""


@dataclass(frozen=True)
class ExecutorChosen(Event):
    """``auto`` timed the first tasks on threads and chose the executor of the rest:
    ``executor`` (threads or processes), and why, with the numbers (also in run.json)."""

    executor: str
    reason: str


@dataclass(frozen=True)
class StageProgress(Event):
    """Horizontal strategy: ``done`` of ``total`` units of ``stage`` are finished."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class TaskFinished(Event):
    """One task ended, done or failed; ``record`` holds its row of images.csv.

    ``done`` and ``failed`` count the run's tasks so far (tasks resumed from an earlier
    run among the done), of ``total``.
    """

    record: TaskRecord
    done: int
    failed: int
    total: int

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def image(self) -> str:
        return self.record.image

    @property
    def error(self) -> str:
        return self.record.error


@dataclass(frozen=True)
class RunFinished(Event):
    """The run ended (or was cancelled); ``report`` holds the tables."""

    report: Report
