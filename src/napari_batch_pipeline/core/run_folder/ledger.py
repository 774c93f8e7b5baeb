"""The task ledger (``.ledger.jsonl``): one JSON line per finished task, appended whole.

Each line is a :class:`~.records.TaskRecord` (:meth:`~.records.TaskRecord.to_json`)
with two more keys: ``pipeline``, the hash of the pipeline that computed it (a resume
never takes another pipeline's records as its own), and ``outputs``, the files the
task wrote, relative to the run folder (what starting fresh deletes).

A line is appended with one write and taken back if the write fails (a full disk), so
the ledger never holds a torn line that the next one would be glued to; a line torn
by a kill is cut off by :func:`repair` before the next run appends.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..files import atomic_path
from .records import TaskRecord

__all__ = ["append_line", "ledger_lines", "listed_outputs", "read_records", "repair", "rewrite"]

PIPELINE_KEY = "pipeline"
OUTPUTS_KEY = "outputs"


def append_line(path: Path, line: Mapping[str, Any]) -> None:
    """Append one JSON line to the ledger, whole or not at all.

    Raises
    ------
    OSError
        If it cannot be written; the ledger is then as it was.
    """
    data = (json.dumps(line, default=_json_default) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def ledger_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The ledger's lines as mappings; torn or foreign lines are skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        for text in handle:
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if isinstance(line, dict):
                yield line


def read_records(path: Path, pipeline_hash: str | None = None) -> dict[str, TaskRecord]:
    """Records of finished tasks by task key (later lines win); with ``pipeline_hash``,
    only those computed by that pipeline (lines of earlier versions carry no hash and
    are taken: the folder's pipeline file vouches for them)."""
    records: dict[str, TaskRecord] = {}
    for line in ledger_lines(path):
        made_by = line.get(PIPELINE_KEY)
        if pipeline_hash is not None and made_by is not None and made_by != pipeline_hash:
            continue
        try:
            record = TaskRecord.from_json(line)
        except (ValueError, KeyError, TypeError):
            continue
        records[record.key] = record
    return records


def listed_outputs(path: Path) -> list[PurePosixPath] | None:
    """Every output file the ledger lists, relative to the run folder; None if a line
    (of an earlier version) lists none. Paths that would leave the folder are dropped."""
    found: list[PurePosixPath] = []
    complete = True
    for line in ledger_lines(path):
        outputs = line.get(OUTPUTS_KEY)
        if not isinstance(outputs, list):
            complete = False
            continue
        for name in outputs:
            relative = PurePosixPath(str(name))
            if not relative.is_absolute() and ".." not in relative.parts and relative.parts:
                found.append(relative)
    return found if complete else None


def rewrite(path: Path, lines: Iterable[Mapping[str, Any]]) -> None:
    """Replace the ledger by ``lines``, whole or not at all (written beside it, then
    renamed over it: a kill meanwhile leaves the old ledger)."""
    data = "".join(json.dumps(dict(line), default=_json_default) + "\n" for line in lines)
    with atomic_path(path) as temporary:
        temporary.write_text(data, encoding="utf-8")


def repair(path: Path) -> None:
    """Cut off a last line torn by a kill, so that the next line starts on its own."""
    with contextlib.suppress(FileNotFoundError), path.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        keep = size
        while keep > 0:
            step = min(4096, keep)
            handle.seek(keep - step)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = keep - step + newline + 1
                break
            keep -= step
        handle.truncate(keep)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
