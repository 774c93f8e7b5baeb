"""The package's shape: import contracts hold, modules stay small, core messages speak of
options by meaning, and no widget registry lives at module level."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_batch_pipeline"
MAX_LINES = 450
#: a command-line flag as core messages must not write it (``--fresh``, ``--memory-budget``)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    command = [str(lint)] if lint.exists() else [shutil.which("lint-imports") or "lint-imports"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PACKAGE.parents[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "KEPT" in result.stdout
    # the layers of the core's subpackages are one of the contracts kept, not only "no Qt"
    assert "The core's subpackages are layers" in result.stdout


#: the most modules beside the core's subpackages, and the most modules in one subpackage
MAX_TOP_MODULES = 6
MAX_SUBPACKAGE_MODULES = 14


def _subpackages(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "__init__.py").exists())


def test_the_core_is_a_handful_of_modules_beside_its_subpackages() -> None:
    core = PACKAGE / "core"
    top = sorted(p.name for p in core.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_MODULES, f"core/ holds {len(top)} modules beside its subpackages: {top}"
    names = {p.name for p in _subpackages(core)}
    # DESIGN's concepts each have a home a newcomer finds from the folder listing
    assert {"pipeline", "stages", "images", "plan", "engine", "run_folder", "results", "tuning"} <= names


def test_the_widgets_are_grouped_by_the_plugins_pages() -> None:
    widgets = PACKAGE / "_widgets"
    top = sorted(p.name for p in widgets.glob("*.py") if p.name != "__init__.py")
    assert not top, f"_widgets/ holds modules beside its pages' subpackages: {top}"
    names = {p.name for p in _subpackages(widgets)}
    # a newcomer finds each page of the plugin from the folder listing
    assert {"builder", "sweep", "batch", "results", "stages", "viewer"} <= names


@pytest.mark.parametrize(
    "package",
    _subpackages(PACKAGE / "core") + _subpackages(PACKAGE / "_widgets"),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_every_subpackage_says_what_it_holds_and_stays_small(package: Path) -> None:
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    assert docstring and len(docstring.split()) >= 12, f"{package.name}/__init__.py says not what it holds"
    modules = [p for p in package.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_SUBPACKAGE_MODULES, f"{package.name}/ is a grab-bag of {len(modules)} modules"


@pytest.mark.parametrize("path", _modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it by concept (at most {MAX_LINES})"


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals and the literal parts of f-strings, with their line numbers."""
    found = []
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
    return found


# The exported script (and its generator) is a standalone program with a command line of its own
# (its screen options are defined beside the rest of its screen, in export/screening.py).
_OWN_COMMAND_LINE = {"export/runtime.py", "export/script.py", "export/screening.py"}


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in _modules(PACKAGE / "core")
        if p.relative_to(PACKAGE / "core").as_posix() not in _OWN_COMMAND_LINE
    ],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_core_messages_name_no_command_line_flag(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    flags = [(line, text) for line, text in _strings(tree) if FLAG.search(text)]
    assert not flags, f"{path.name} names command-line flags: {flags}"


def test_the_flag_check_finds_a_flag() -> None:
    tree = ast.parse('def f():\n    raise ValueError(f"use --fresh to replace {x}")\n')
    assert [text for _, text in _strings(tree) if FLAG.search(text)] == ["use --fresh to replace "]


@pytest.mark.parametrize("path", _modules(PACKAGE / "_widgets"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_level_registry_of_widgets(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            text = ast.unparse(node.value)
            assert not re.search(r"Weak(Set|ValueDictionary)|\bset\(\)|\[\]$", text), (
                f"{path.name}:{node.lineno} keeps widgets at module level: {ast.unparse(node)}"
            )
