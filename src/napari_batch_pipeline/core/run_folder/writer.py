"""Writing a run folder: opening it for a pipeline, the task ledger, provenance, the tables.

The ledger (``.ledger.jsonl``) gets one line per finished task, appended after the
task's outputs are complete, so a run killed at any moment resumes from it. The tables
(``images.csv``, ``<stage>.csv``) are written from the ledger's records and the tasks'
table parts at the end, whole or not at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import platform
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..errors import PipelineError
from ..files import atomic_path, write_text_atomic
from ..pipeline import Pipeline
from .layout import RunLayout
from .records import TaskRecord
from .tables import concatenate, images_frame

__all__ = ["PlannedTask", "RunFolder", "command_line", "provenance_versions", "timestamp"]


class PlannedTask(Protocol):
    """What the writer needs of a planned task (``core.plan.Task`` is one)."""

    @property
    def key(self) -> str: ...

    @property
    def image(self) -> str: ...

    @property
    def values(self) -> dict[str, Any]: ...

    @property
    def metadata(self) -> dict[str, Any]: ...


class RunFolder:
    """The output folder of a batch run, being written.

    Parameters
    ----------
    path : path
        The output folder; created by :meth:`prepare`.
    """

    def __init__(self, path: str | Path):
        self.layout = RunLayout.at(path)
        self.path = self.layout.root

    # -- opening ------------------------------------------------------------------------

    def prepare(self, pipeline: Pipeline, *, fresh: bool = False) -> dict[str, TaskRecord]:
        """Make the folder ready for ``pipeline``; return the records of tasks already done.

        Raises
        ------
        PipelineError
            If the folder cannot be written, or holds a run of another pipeline and
            ``fresh`` is False.
        """
        existing = self.layout.pipeline_file
        # refused before anything in the folder is touched
        if existing.exists() and not fresh:
            try:
                previous = Pipeline.from_yaml(existing)
            except PipelineError:
                previous = None
            if previous is None or previous.hash != pipeline.hash:
                raise PipelineError(
                    f"output folder {str(self.path)!r} holds a run of a different pipeline; "
                    "start fresh to replace it, or choose another output folder",
                    options=("fresh",),
                )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise PipelineError(
                f"output folder {str(self.path)!r} cannot be written: {error.strerror or error}"
            ) from None
        if fresh:
            self.clear(pipeline)
        self.remove_partials()
        pipeline.save(existing)
        return self.done_records()

    def clear(self, pipeline: Pipeline) -> None:
        """Remove a previous run's results (not the inputs, not unrelated files)."""
        previous: list[str] = []
        with contextlib.suppress(PipelineError, OSError):
            previous = Pipeline.from_yaml(self.layout.pipeline_file).stage_names
        for path in self.layout.written_by_run(sorted({*previous, *pipeline.stage_names})):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def remove_partials(self) -> int:
        """Delete temporary files left by an interrupted write; return how many."""
        count = 0
        for partial in self.path.rglob(".*.part*"):
            with contextlib.suppress(OSError):
                partial.unlink()
                count += 1
        return count

    # -- the ledger ---------------------------------------------------------------------

    def done_records(self) -> dict[str, TaskRecord]:
        """Records of finished tasks by task key (later lines win; torn lines are skipped)."""
        records: dict[str, TaskRecord] = {}
        ledger = self.layout.ledger
        if not ledger.exists():
            return records
        with ledger.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = TaskRecord.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue
                records[record.key] = record
        return {key: r for key, r in records.items() if r.done}

    def append(self, record: TaskRecord) -> None:
        """Record a finished task (done or failed); its traceback goes to errors.log."""
        if record.traceback:
            with self.layout.errors_log.open("a", encoding="utf-8") as log:
                log.write(f"--- {record.key} ({_now()})\n{record.traceback}\n")
        with self.layout.ledger.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record.to_json(), default=_json_default) + "\n")
            handle.flush()

    # -- provenance ---------------------------------------------------------------------

    def write_provenance(self, info: Mapping[str, Any]) -> None:
        """Write run.json, merged over what is there."""
        target = self.layout.provenance_file
        data: dict[str, Any] = {}
        if target.exists():
            with contextlib.suppress(OSError, json.JSONDecodeError):
                data = json.loads(target.read_text(encoding="utf-8"))
        data.update(info)
        write_text_atomic(target, json.dumps(data, indent=2, default=_json_default) + "\n")

    # -- tables -------------------------------------------------------------------------

    def write_tables(
        self,
        pipeline: Pipeline,
        tasks: Sequence[PlannedTask],
        records: Mapping[str, TaskRecord],
    ) -> None:
        """Write images.csv and every ``<stage>.csv`` in task order, whole or not at all."""
        frame = images_frame((t.image, t.values, t.metadata, records.get(t.key)) for t in tasks)
        with atomic_path(self.layout.images_table) as temporary:
            frame.to_csv(temporary, index=False)
        done = [t.key for t in tasks if t.key in records and records[t.key].done]
        for stage in pipeline.table_stages:
            concatenate([self.layout.part(stage, key) for key in done], self.layout.table(stage))


def provenance_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    from importlib import metadata

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in (
        "napari-batch-pipeline",
        "numpy",
        "scikit-image",
        "scipy",
        "pandas",
        "tifffile",
        "dask",
        "distributed",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def command_line() -> str:
    """The command that started this process, for run.json."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def timestamp() -> str:
    """Local time with its offset, as run.json writes it."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
