"""What the engine reports while it runs: plain objects, yielded by BatchRun.events()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch import Report
    from .plan import Estimate

__all__ = ["Event", "RunFinished", "RunStarted", "StageProgress", "TaskFinished"]


@dataclass(frozen=True)
class Event:
    """Base of every engine event."""


@dataclass(frozen=True)
class RunStarted(Event):
    """The run begins: how many tasks, how many already done (resumed), the estimate."""

    total: int
    skipped: int
    output_dir: str
    strategy: str
    executor: str
    workers: int
    estimate: Estimate | None


@dataclass(frozen=True)
class StageProgress(Event):
    """Horizontal strategy: ``done`` of ``total`` units of ``stage`` are finished."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class TaskFinished(Event):
    """One task ended, done or failed; ``record`` is its row of images.csv."""

    record: dict[str, Any]
    done: int
    failed: int
    total: int

    @property
    def status(self) -> str:
        return str(self.record["status"])

    @property
    def image(self) -> str:
        return str(self.record["image"])


@dataclass(frozen=True)
class RunFinished(Event):
    """The run ended (or was cancelled); ``report`` holds the tables."""

    report: Report
