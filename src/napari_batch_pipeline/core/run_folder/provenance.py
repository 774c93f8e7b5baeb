"""What ``run.json`` records of the run's making (versions, command, times), and reading
back a run's settings from it, for a re-run.

``run.json`` is written by the run, but it is a text file anyone may edit or damage. A
re-run takes its settings from it, so every value it takes is checked here first; a
wrong one gives a message naming the key and what was expected, never a traceback from
deep inside the engine.
"""

from __future__ import annotations

import functools
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from .layout import RunLayout

__all__ = ["STAGE_RETURNS", "command_line", "provenance_versions", "read_run_settings", "timestamp"]

#: the key of run.json that records what each stage returns (``{'labels': 'labels', ...}``),
#: so that the run's results can be read without importing the modules of its stages
STAGE_RETURNS = "stage_returns"


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e9


def _sweep(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str)
        and isinstance(values, list)
        and values
        and all(isinstance(v, (str, int, float, bool, list)) for v in values)
        for key, values in value.items()
    )


def _params(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("table"), (str, type(None)))


def _columns(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(c, str) for c in value)


#: the settings a re-run takes, what each must be, and how messages describe it
_SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "input_dir": (_text, "the input folder's path"),
    "pattern": (_text, "a file pattern"),
    "recursive": (_flag, "true or false"),
    "metadata": (_text, "a regular expression"),
    "executor": (_text, "an executor's name"),
    "executor_reason": (_text, "why the auto executor chose it"),
    "tiling": (lambda value: isinstance(value, dict), "a mapping of tile, halo, max_object and levels"),
    "workers": (_count, "a whole number of workers"),
    "scheduler": (_text, "a scheduler address"),
    "strategy": (_text, "a strategy's name"),
    "sweep": (_sweep, "a mapping of 'stage.param' to a non-empty list of values"),
    "memory_budget": (_count, "a number of bytes"),
    "limit": (_count, "a whole number of images"),
    "params": (_params, "a mapping with the parameter table's path as 'table'"),
    "group_by": (_columns, "a list of column names"),
    "task_timeout": (_seconds, "a number of seconds"),
}


def read_run_settings(layout: RunLayout) -> dict[str, Any]:
    """The settings of the run in ``layout`` as its ``run.json`` records them, checked.

    Returns
    -------
    dict
        The whole of ``run.json``; every key a re-run takes is either absent, null, or
        of the expected type, and ``input_dir`` is present.

    Raises
    ------
    PipelineError
        If the file is missing, unreadable, not JSON, not a mapping, or a setting has
        the wrong type; the message names the key.
    """
    path = layout.provenance_file
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{str(path)!r} does not exist: not a run folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise PipelineError(f"{str(path)!r} cannot be read as JSON ({error}); it is damaged") from None
    if not isinstance(info, dict):
        raise PipelineError(f"{str(path)!r}: expected a mapping of settings, got {type(info).__name__}")
    if info.get("input_dir") is None:
        raise PipelineError(f"{str(path)!r}: the input folder (input_dir) is missing")
    for key, (valid, expected) in _SETTINGS.items():
        value = info.get(key)
        if value is not None and not valid(value):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise PipelineError(
                f"{str(path)!r}: {key} must be {expected}, got {shown}; the file was edited or damaged"
            )
    return info


def provenance_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package, module in _VERSIONED.items():
        imported = getattr(sys.modules.get(module), "__version__", None)
        versions[package] = imported if isinstance(imported, str) else _installed_version(package)
    return versions


#: the libraries run.json names, by distribution and module; an imported module's
#: ``__version__`` is read (a metadata lookup reads files: some 4 ms each)
_VERSIONED = {
    "napari-batch-pipeline": "napari_batch_pipeline",
    "numpy": "numpy",
    "scikit-image": "skimage",
    "scipy": "scipy",
    "pandas": "pandas",
    "tifffile": "tifffile",
    "dask": "dask",
    "distributed": "distributed",
}


@functools.cache
def _installed_version(package: str) -> str:
    """The installed version of the distribution ``package``, or "not installed"."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def command_line() -> str:
    """The command that started this process, for run.json."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def timestamp() -> str:
    """Local time with its offset, as run.json writes it."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
