"""The engine imports neither Qt, napari nor magicgui (DESIGN: dependencies point one way)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

GUI_MODULES = ["qtpy", "napari", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui"]

CHECK = """
import importlib, json, sys
importlib.import_module({module!r})
print(json.dumps(sorted(m for m in {gui!r} if m in sys.modules)))
"""

EVERY_CORE_MODULE = """
import importlib, json, pkgutil, sys
import napari_batch_pipeline.core as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, core.__name__ + ".")]
for name in names:
    importlib.import_module(name)
names += ["napari_batch_pipeline.cli", "napari_batch_pipeline.cli_commands"]
for name in names[-2:]:
    importlib.import_module(name)
print(json.dumps([len(names), sorted(m for m in {gui!r} if m in sys.modules)]))
"""


@pytest.mark.parametrize(
    "module",
    [
        "napari_batch_pipeline",
        "napari_batch_pipeline.core",
        "napari_batch_pipeline.core.stages",
        "napari_batch_pipeline.core.pipeline.model",
    ],
)
def test_importing_the_engine_loads_no_gui_module(module):
    code = CHECK.format(module=module, gui=GUI_MODULES)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_no_core_module_and_not_the_command_line_loads_a_gui_module():
    """Every module under core/ (found by walking the package), and the command line."""
    code = EVERY_CORE_MODULE.format(gui=GUI_MODULES)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    count, loaded = json.loads(result.stdout.splitlines()[-1])
    assert count > 15
    assert loaded == []
