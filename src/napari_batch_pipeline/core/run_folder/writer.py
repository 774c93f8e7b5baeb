"""Writing a run folder: opening it for a pipeline, the task ledger, provenance, the tables.

The folder is locked while a run writes it (:mod:`.lock`). The ledger
(``.ledger.jsonl``, :mod:`.ledger`) gets one line per finished task, appended after the
task's outputs are complete, so a run killed at any moment resumes from it. The tables
(``images.csv``, ``<stage>.csv``) are written from the ledger's records and the tasks'
table parts at the end, whole or not at all. Starting fresh deletes only what a run
wrote; a folder that holds no run but files in the way is refused, never emptied. A
full disk raises :class:`~.space.DiskFullError`, the ledger intact.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from ..errors import PipelineError
from ..files import atomic_path, write_text_atomic
from ..pipeline.model import Pipeline
from ..pipeline.recorded import load_recorded
from . import ledger
from .groups import remove_group_results
from .layout import RunLayout, output_stem
from .links import intermediates, linked_folder, prune_empty, remove_output
from .lock import RunLock
from .provenance import command_line, provenance_versions, timestamp
from .records import TaskRecord
from .space import DiskFullError, is_disk_full, record_says_disk_full
from .tables import concatenate, images_frame, object_rows

__all__ = ["FAILED_IN", "PlannedTask", "RunFolder", "command_line", "provenance_versions", "timestamp"]

#: run.json: where a failed run failed; ``_END``: its tables and conclusions, after its tasks
FAILED_IN, _END = "failed_in", "conclusions"


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

    @property
    def output_stem(self) -> str: ...


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
        self.lock = RunLock(self.layout.lock_file, self.path)
        self._pipeline_hash: str | None = None
        #: task key -> the files it writes, relative to the folder (the ledger lists them)
        self._outputs: dict[str, list[str]] = {}
        #: the images of tasks no longer planned whose outputs :meth:`prepare` removed
        self.forgotten: list[str] = []

    # -- opening ------------------------------------------------------------------------

    def check_free(self) -> None:
        """Refuse now if another run is writing the folder (see :class:`.lock.RunLock`)."""
        self.lock.check()

    def holds_other_pipeline(self, pipeline: Pipeline) -> bool:
        """True if the folder holds a run of a pipeline other than ``pipeline`` (or one that
        cannot be read): :meth:`prepare` refuses it unless told to start fresh."""
        existing = self.layout.pipeline_file
        if not existing.exists():
            return False
        try:
            # a received folder's pipeline may name any module: none but ours is imported
            previous = load_recorded(existing, trusted=pipeline.modules)
        except PipelineError:
            return True
        return previous.hash != pipeline.hash

    def prepare(
        self,
        pipeline: Pipeline,
        *,
        fresh: bool = False,
        tasks: Sequence[PlannedTask] | None = None,
        reusable: Collection[tuple[str, str]] = (),
    ) -> dict[str, TaskRecord]:
        """Lock the folder and make it ready for ``pipeline``; return the records of tasks
        already done by it. Call :meth:`unlock` when the run ends, whatever the way.

        Parameters
        ----------
        tasks : sequence of PlannedTask, optional
            The run's tasks: the ledger lists the files each one writes, and what tasks
            no longer planned wrote goes (:meth:`forget`).
        reusable : collection of (str, str)
            Starting fresh: the (stage, stage key) pairs of intermediates the run will
            reuse (see :meth:`clear`).

        Raises
        ------
        PipelineError
            If another run holds the folder, it cannot be written, it holds a run of
            another pipeline and ``fresh`` is False, or it holds no run but files the
            run would overwrite.
        """
        self.lock.check()
        # refused before anything in the folder is touched
        if not fresh and self.holds_other_pipeline(pipeline):
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
        self._refuse_links(pipeline)
        self._outputs = {
            task.key: [
                path.relative_to(self.path).as_posix()
                for stage in pipeline.saved_stages
                # a tiled image saves an OME-Zarr store instead of a TIFF
                for path in (
                    self.layout.output(stage, task.output_stem),
                    self.layout.tiled_output(stage, task.output_stem),
                )
            ]
            for task in tasks or ()
        }
        self.lock.acquire()
        try:
            with self._writing("the task ledger"):
                ledger.repair(self.layout.ledger)
                if fresh:
                    self.clear(trusted=pipeline.modules, reusable=reusable)
                self._refuse_foreign(pipeline)
                self.remove_partials()
                pipeline.save(self.layout.pipeline_file)
                if tasks is not None:
                    self.forgotten = self.forget(pipeline, tasks)
        except BaseException:
            self.lock.release()
            raise
        self._pipeline_hash = pipeline.hash
        return self.done_records()

    def unlock(self) -> None:
        """Give the folder back to other runs; never raises."""
        self.lock.release()

    def holds_run(self) -> bool:
        """Whether the folder holds a run (its pipeline file), finished or not."""
        return self.layout.pipeline_file.is_file()

    def clear(self, trusted: Sequence[str] = (), reusable: Collection[tuple[str, str]] = ()) -> None:
        """Remove what the previous run wrote, and nothing else: its bookkeeping and tables,
        the outputs its ledger lists, its group results and its intermediates (see
        :mod:`.links`) but those of the (stage, stage key) pairs in ``reusable`` (a
        horizontal run of a pipeline changed late reuses the early stages' by their keys).
        A folder that holds no run is left as it is."""
        if not self.holds_run():
            return
        previous: Pipeline | None = None
        with contextlib.suppress(PipelineError, OSError):
            previous = load_recorded(self.layout.pipeline_file, trusted=trusted)
        stages = previous.saved_stages if previous is not None else []  # unknown: none
        for relative in self._previous_outputs(previous):
            remove_output(self.layout, relative, stages)
        # before groups.csv, which lists them, goes
        remove_group_results(self.layout, previous.group_stages if previous is not None else [])
        named = [*previous.input_names, *previous.stage_names] if previous is not None else []
        for path in intermediates(self.layout, named, keep=reusable):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            prune_empty(path.parent, self.path)
        for path in self.layout.written_by_run(previous.table_stages if previous else []):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for plot in self.path.glob(self.layout.plate_plot_glob):
            if plot.is_file() or plot.is_symlink():
                plot.unlink(missing_ok=True)

    def forget(self, pipeline: Pipeline, tasks: Sequence[PlannedTask]) -> list[str]:
        """Remove what the ledger says tasks no longer planned wrote (their input deleted,
        a sweep value or an image left out): their saved outputs, except those a planned
        task writes, their table parts and their ledger lines (so that the input, back
        again, is computed again). Returns the images they were of."""
        planned = {task.key for task in tasks}
        lines = list(ledger.ledger_lines(self.layout.ledger))
        gone = [line for line in lines if "key" in line and str(line["key"]) not in planned]
        if not gone:
            return []
        kept = {path for paths in self._outputs.values() for path in paths}
        for line in gone:
            outputs = line.get(ledger.OUTPUTS_KEY)
            for relative in outputs if isinstance(outputs, list) else []:
                if str(relative) not in kept and ".." not in Path(str(relative)).parts:
                    remove_output(self.layout, str(relative), pipeline.saved_stages)
            for stage in pipeline.table_stages:
                self.layout.part(stage, str(line.get("key"))).unlink(missing_ok=True)
        dropped = {id(line) for line in gone}
        ledger.rewrite(self.layout.ledger, [line for line in lines if id(line) not in dropped])
        return sorted({str(line.get("image")) for line in gone})

    def _previous_outputs(self, previous: Pipeline | None) -> list[str]:
        """The outputs the ledger lists; for lines of earlier versions, the outputs their
        images would have had."""
        listed = ledger.listed_outputs(self.layout.ledger)
        outputs = [str(p) for p in listed or []]
        if listed is None and previous is not None:
            for line in ledger.ledger_lines(self.layout.ledger):
                stem = output_stem(str(line.get("image", "")), str(line.get("label", "")))
                outputs += [
                    str(self.layout.output(s, stem).relative_to(self.path)) for s in previous.saved_stages
                ]
        return [o for o in outputs if ".." not in Path(o).parts and not Path(o).is_absolute()]

    def _refuse_links(self, pipeline: Pipeline) -> None:
        """Refuse a folder where a folder the run writes in is a link (a stage's folder,
        ``intermediate/``, ``.parts/`` and theirs): outputs are written, and old ones
        deleted, only inside the run folder (see :mod:`.links`)."""
        written = [*pipeline.saved_stages, *pipeline.group_stages]
        folder = linked_folder(self.layout, [*pipeline.input_names, *pipeline.stage_names], written)
        if folder is not None:
            name = folder.relative_to(self.path).as_posix()
            raise PipelineError(
                f"output folder {str(self.path)!r}: {name!r} is a link (to "
                f"{os.readlink(folder)!r}), where this run writes its files; nothing was "
                "deleted. Remove the link, or choose another output folder"
            )

    def _refuse_foreign(self, pipeline: Pipeline) -> None:
        """Refuse a folder that holds no run but files where the run would write."""
        if self.holds_run():
            return
        stages = [self.layout.stage_dir(s) for s in pipeline.saved_stages] + [self.layout.intermediate_dir]
        in_the_way = [
            p
            for p in [*self.layout.written_by_run(pipeline.table_stages), *stages]
            if p.is_file() or (p.is_dir() and any(p.iterdir()))
        ]
        if in_the_way:
            names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in in_the_way)
            raise PipelineError(
                f"output folder {str(self.path)!r} holds no run, but files this run would "
                f"overwrite ({names}); nothing was deleted. Choose a new or empty output "
                "folder, or move those files"
            )

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
        """Records of tasks done by this run's pipeline, by task key (later lines win; torn
        lines and other pipelines' lines are skipped)."""
        records = ledger.read_records(self.layout.ledger, self._pipeline_hash)
        return {key: r for key, r in records.items() if r.done}

    def append(self, record: TaskRecord) -> None:
        """Record a finished task (done or failed); its traceback goes to errors.log.

        Raises
        ------
        DiskFullError
            If the task failed for want of space, or its record cannot be written for
            want of space; the ledger is left as it was.
        """
        if record_says_disk_full(record):
            raise DiskFullError(self.path, f"the outputs of {record.image}", record.error.partition(": ")[2])
        line = {
            **record.to_json(),
            ledger.PIPELINE_KEY: self._pipeline_hash,
            ledger.OUTPUTS_KEY: self._outputs.get(record.key, []),
        }
        with self._writing("the task ledger"):
            if record.traceback:
                with self.layout.errors_log.open("a", encoding="utf-8", errors="backslashreplace") as log:
                    log.write(f"--- {record.key} ({_now()})\n{record.traceback}\n")
            ledger.append_line(self.layout.ledger, line)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a write that fails for want of space into :class:`DiskFullError`."""
        try:
            yield
        except OSError as error:
            if is_disk_full(error):
                raise DiskFullError(self.path, what, error.strerror or str(error)) from None
            raise

    # -- provenance ---------------------------------------------------------------------

    def write_provenance(self, info: Mapping[str, Any]) -> None:
        """Write run.json, merged over what is there."""
        target = self.layout.provenance_file
        data: dict[str, Any] = {}
        if target.exists():
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(target.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
        data.update(info)
        with self._writing("run.json"):
            write_text_atomic(target, json.dumps(data, indent=2, default=_json_default) + "\n")

    def fail(self, error: BaseException, traceback: str) -> str:
        """Record that the run failed after its tasks (its tables or conclusions could not
        be written): ``run.json`` says failed with the error, ``errors.log`` gets the
        traceback. Returns the error as run.json writes it; never raises."""
        text = f"{type(error).__name__}: {error}"
        log = self.layout.errors_log
        with contextlib.suppress(OSError), log.open("a", encoding="utf-8", errors="replace") as handle:
            handle.write(f"--- the tables and conclusions ({_now()})\n{traceback}\n")
        failed = {"finished": timestamp(), "status": "failed", "error": text, FAILED_IN: _END}
        with contextlib.suppress(OSError, PipelineError):
            self.write_provenance(failed)
        return text

    def concluded(self) -> None:
        """After the conclusions were written again (``summarize``): a run that failed only
        at its conclusions is finished."""
        if self.recorded_settings().get(FAILED_IN) == _END:
            self.write_provenance({"status": "finished", "error": None, FAILED_IN: None})

    def recorded_settings(self) -> dict[str, Any]:
        """run.json of the run the folder holds now (before this run writes its own), or {}."""
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.layout.provenance_file.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        return {}

    # -- tables -------------------------------------------------------------------------

    def refresh_rows(self, pipeline: Pipeline, tasks: Sequence[PlannedTask], stale: Collection[str]) -> None:
        """Give the per-object rows of resumed ``tasks`` their columns as planned now:
        image, parameter and metadata columns, the ``stale`` ones (those of the run that
        made the rows) dropped. For a resume with another metadata pattern, or over
        subfolders where the run was not."""
        for task in tasks:
            for stage in pipeline.table_stages:
                part = self.layout.part(stage, task.key)
                if not part.is_file():
                    continue
                with self._writing("the tables"):
                    frame = pd.read_csv(part, dtype=str, keep_default_na=False)  # every cell as written
                    frame = frame.drop(columns=[c for c in stale if c in frame.columns])
                    rows = object_rows(task.image, task.values, task.metadata, frame)
                    with atomic_path(part) as temporary:
                        rows.to_csv(temporary, index=False)

    def write_tables(
        self,
        pipeline: Pipeline,
        tasks: Sequence[PlannedTask],
        records: Mapping[str, TaskRecord],
    ) -> None:
        """Write images.csv and every ``<stage>.csv`` in task order, whole or not at all."""
        frame = images_frame((t.image, t.values, t.metadata, records.get(t.key)) for t in tasks)
        with self._writing("the tables"):
            with atomic_path(self.layout.images_table) as temporary:
                frame.to_csv(temporary, index=False, errors="backslashreplace")
            done = [t.key for t in tasks if t.key in records and records[t.key].done]
            for stage in pipeline.table_stages:
                concatenate([self.layout.part(stage, key) for key in done], self.layout.table(stage))

    def salvage(self, pipeline: Pipeline, tasks: Sequence[PlannedTask]) -> None:
        """After a run stopped on a full disk: the tables of the tasks done so far and
        run.json's status, as far as the disk lets them be written; never raises."""
        with contextlib.suppress(OSError, PipelineError):
            self.remove_partials()
            self.write_tables(pipeline, tasks, self.done_records())
        with contextlib.suppress(OSError, PipelineError):
            self.write_provenance({"finished": timestamp(), "status": "stopped: disk full"})


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
