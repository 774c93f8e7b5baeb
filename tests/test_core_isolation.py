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


@pytest.mark.parametrize(
    "module",
    [
        "napari_batch_pipeline",
        "napari_batch_pipeline.core",
        "napari_batch_pipeline.core.stages",
        "napari_batch_pipeline.core.pipeline",
    ],
)
def test_importing_the_engine_loads_no_gui_module(module):
    code = CHECK.format(module=module, gui=GUI_MODULES)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
