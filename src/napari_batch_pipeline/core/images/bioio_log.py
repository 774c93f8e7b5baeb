"""What bioio says while it opens a file: kept for the file's message, never printed.

bioio logs a warning for every reader plugin that fails on a file, on stderr, past the
command line's ``--quiet``; and when none opens it, its error says only that a plugin
may be missing. :func:`quiet_bioio` keeps those lines (for the file being opened) out of
the log, and :func:`unsupported` turns them into one message: the reader is missing
(with the line to install it), or it is installed and says why it cannot read the file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["quiet_bioio", "unsupported"]

_LOGGER = "bioio"
_LOCK = threading.Lock()
_quieted = 0
_propagated = True
_FAILED = re.compile(r"failed with error:\s*(.*)", re.S)


class _Keep(logging.Handler):
    def __init__(self, path: Path, kept: list[str]):
        super().__init__(logging.DEBUG)
        self.path, self.kept = str(path), kept

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.path in message:
            found = _FAILED.search(message)
            self.kept.append((found.group(1) if found else message).strip())


@contextlib.contextmanager
def quiet_bioio(path: Path) -> Iterator[list[str]]:
    """While bioio opens ``path``: its log lines are not printed; yields the reasons its
    readers gave for that file (filled in as they come)."""
    global _quieted, _propagated
    logger = logging.getLogger(_LOGGER)
    kept: list[str] = []
    handler = _Keep(path, kept)
    with _LOCK:
        if _quieted == 0:
            _propagated, logger.propagate = logger.propagate, False
        _quieted += 1
        logger.addHandler(handler)
    try:
        yield kept
    finally:
        with _LOCK:
            logger.removeHandler(handler)
            _quieted -= 1
            if _quieted == 0:
                logger.propagate = _propagated


def unsupported(path: Path, reader: str, reasons: list[str], install: str) -> str:
    """The message for a file no installed bioio reader opens."""
    module = reader.replace("-", "_")
    try:
        installed = reader.startswith("bioio-") and importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        return f"{path.name}: no installed reader opens this file; it needs {reader}; run: {install}"
    reason = reasons[-1] if reasons else "no reason given"
    reason = reason if len(reason) <= 240 else reason[:237] + "..."
    return f"{path.name}: {reader} cannot read it; the file may be damaged or truncated ({reason})"
