"""The identity of a stage's code: what makes a stored result stale when the code changes.

A stage's output is reused by its key (the horizontal strategy's intermediates, the
tuning cache); the key holds the stage's configuration and :func:`code_identity`: a
hash of the source file of the module that defines the function (the built-in stages'
modules, or a user's module), else the version of the package it comes from. A file is
hashed again only when its size or modification time changes.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import threading
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["code_identity"]

#: (path, size, modification time) -> the file's hash
_HASHES: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def code_identity(function: Callable[..., Any]) -> str:
    """What the code of ``function`` is: its module file's content hash, ``'version:<v>'``
    of its package where no source file can be read, or ``'unknown'``.

    Parameters
    ----------
    function : callable
        A stage function (decorators are looked through).

    Returns
    -------
    str
    """
    function = inspect.unwrap(function)
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if path:
        digest = _file_hash(Path(path))
        if digest is not None:
            return digest
    package = (getattr(function, "__module__", "") or "").partition(".")[0]
    try:
        return f"version:{metadata.version(package)}"
    except (metadata.PackageNotFoundError, ValueError):
        return "unknown"


def _file_hash(path: Path) -> str | None:
    try:
        info = path.stat()
    except OSError:
        return None
    key = (str(path), info.st_size, info.st_mtime_ns)
    with _LOCK:
        known = _HASHES.get(key)
    if known is not None:
        return known
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None
    with _LOCK:
        _HASHES[key] = digest
    return digest
