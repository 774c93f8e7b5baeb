"""The run folder: the pipeline as run, provenance, the task ledger, and the tables.

Layout (see DESIGN): ``pipeline.yaml``, ``run.json``, ``images.csv``, one
``<stage>.csv`` per table stage, and ``<stage>/<image>[__<params>].tif`` for saved
outputs. Bookkeeping lives in hidden entries: ``.ledger.jsonl`` (one finished task per
line, appended after its outputs are complete) and ``.parts/`` (per-task table rows).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import platform
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import PipelineError
from .files import atomic_path, write_text_atomic
from .pipeline import Pipeline
from .plan import Task
from .tasks import PARTS, part_path

__all__ = ["LEDGER", "RunFolder", "provenance_versions"]

LEDGER = ".ledger.jsonl"
ERRORS_LOG = "errors.log"
IMAGES_CSV = "images.csv"


class RunFolder:
    """One output folder of a batch run.

    Parameters
    ----------
    path : path
        The output folder; created if missing.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()

    # -- opening ------------------------------------------------------------------------

    def prepare(self, pipeline: Pipeline, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """Make the folder ready for ``pipeline``; return the records of tasks already done.

        Raises
        ------
        PipelineError
            If the folder cannot be written, or holds a run of another pipeline and
            ``fresh`` is False.
        """
        existing = self.path / "pipeline.yaml"
        # refused before anything in the folder is touched
        if existing.exists() and not fresh:
            try:
                previous = Pipeline.from_yaml(existing)
            except PipelineError:
                previous = None
            if previous is None or previous.hash != pipeline.hash:
                raise PipelineError(
                    f"output folder {str(self.path)!r} holds a run of a different pipeline; "
                    "use --fresh to replace it, or choose another output folder"
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
            previous = Pipeline.from_yaml(self.path / "pipeline.yaml").stage_names
        for name in {*previous, *pipeline.stage_names}:
            shutil.rmtree(self.path / name, ignore_errors=True)
            (self.path / f"{name}.csv").unlink(missing_ok=True)
        shutil.rmtree(self.path / PARTS, ignore_errors=True)
        for name in (LEDGER, IMAGES_CSV, ERRORS_LOG, "run.json"):
            (self.path / name).unlink(missing_ok=True)

    def remove_partials(self) -> int:
        """Delete temporary files left by an interrupted write; return how many."""
        count = 0
        for partial in self.path.rglob(".*.part*"):
            with contextlib.suppress(OSError):
                partial.unlink()
                count += 1
        return count

    # -- the ledger ---------------------------------------------------------------------

    def done_records(self) -> dict[str, dict[str, Any]]:
        """Records of finished tasks by task key (later lines win; torn lines are skipped)."""
        records: dict[str, dict[str, Any]] = {}
        ledger = self.path / LEDGER
        if not ledger.exists():
            return records
        with ledger.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                records[record["key"]] = record
        return {key: r for key, r in records.items() if r.get("status") == "done"}

    def append(self, record: Mapping[str, Any]) -> None:
        """Record a finished task (done or failed); its traceback goes to errors.log."""
        record = dict(record)
        trace = record.pop("traceback", None)
        if trace:
            with (self.path / ERRORS_LOG).open("a", encoding="utf-8") as log:
                log.write(f"--- {record['key']} ({_now()})\n{trace}\n")
        with (self.path / LEDGER).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=_json_default) + "\n")
            handle.flush()

    # -- provenance ---------------------------------------------------------------------

    def write_provenance(self, info: Mapping[str, Any]) -> None:
        """Write run.json, merged over what is there."""
        target = self.path / "run.json"
        data: dict[str, Any] = {}
        if target.exists():
            with contextlib.suppress(OSError, json.JSONDecodeError):
                data = json.loads(target.read_text(encoding="utf-8"))
        data.update(info)
        write_text_atomic(target, json.dumps(data, indent=2, default=_json_default) + "\n")

    def provenance(self) -> dict[str, Any]:
        return json.loads((self.path / "run.json").read_text(encoding="utf-8"))

    # -- tables -------------------------------------------------------------------------

    def write_tables(
        self,
        pipeline: Pipeline,
        tasks: Sequence[Task],
        records: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Write images.csv and every ``<stage>.csv`` in task order, whole or not at all."""
        write_images_csv(self.path / IMAGES_CSV, tasks, records)
        for stage in pipeline.table_stages:
            parts = (
                part_path(self.path, stage, task.key)
                for task in tasks
                if records.get(task.key, {}).get("status") == "done"
            )
            _concatenate(parts, self.path / f"{stage}.csv")

    def images(self) -> pd.DataFrame:
        return pd.read_csv(self.path / IMAGES_CSV)

    def table(self, stage: str) -> pd.DataFrame:
        return pd.read_csv(self.path / f"{stage}.csv")


def write_images_csv(target: Path, tasks: Sequence[Task], records: Mapping[str, Mapping[str, Any]]) -> None:
    """One row per task: image, parameter and metadata columns, status, error, seconds, summary."""
    rows = []
    for task in tasks:
        record = records.get(task.key, {})
        row = {"image": task.source.relative, **_plain(task.params), **task.source.metadata}
        row["status"] = record.get("status", "pending")
        row["error"] = record.get("error", "")
        row["seconds"] = record.get("seconds", math.nan)
        row.update(record.get("summary", {}))
        rows.append(row)
    frame = pd.DataFrame(rows)
    with atomic_path(target) as temporary:
        frame.to_csv(temporary, index=False)


def _concatenate(parts: Iterable[Path], target: Path) -> None:
    """Join CSV parts into one file without holding them in memory (same header: text join)."""
    parts = [p for p in parts if p.exists()]
    headers = set()
    for part in parts:
        with part.open(encoding="utf-8") as handle:
            headers.add(handle.readline())
    with atomic_path(target) as temporary:
        if len(headers) > 1:
            pd.concat((pd.read_csv(p) for p in parts), ignore_index=True).to_csv(temporary, index=False)
            return
        with temporary.open("w", encoding="utf-8") as out:
            if not parts:
                out.write("image,label\n")
            for number, part in enumerate(parts):
                with part.open(encoding="utf-8") as handle:
                    header = handle.readline()
                    if number == 0:
                        out.write(header)
                    shutil.copyfileobj(handle, out)


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


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: "-".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in params.items()}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
