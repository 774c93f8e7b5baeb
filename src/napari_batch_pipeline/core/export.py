"""Export a pipeline as a plain, standalone Python script that writes the same tables.

The script imports scikit-image, numpy, pandas and tifffile (scipy comes with
scikit-image), plus the user's own modules where the pipeline names them; never this
package. It is assembled from real code: the built-in stage functions (undecorated, their
napari annotations written as numpy and pandas types) and the runtime of
:mod:`.export_runtime` are copied from their source with every function and constant
they use from the package, as ``inspect.getsource`` and the constants' values give them,
and the import lines of their modules that they need. So the script computes what the
engine computes and names its files as the engine does. Each pipeline stage becomes one
function, its parameters named constants.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import re
import symtable
import textwrap
import typing
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from . import export_runtime
from .files import write_text_atomic
from .pipeline import INPUT, Pipeline
from .run_folder.writer import provenance_versions
from .stages import STAGES

__all__ = ["export_script", "script_text"]

_PACKAGE = __name__.partition(".")[0]
#: the script's own names, besides what it copies
_SCRIPT_NAMES = ("process", "SAVED_STAGES", "TABLE_STAGES")
#: string annotations of stage functions, as the script writes them
_ANNOTATIONS = (
    (re.compile(r"([\"'])napari\.types\.(?:ImageData|LabelsData)"), r"\1np.ndarray"),
    (re.compile(r"([\"'])pandas\.DataFrame\1"), r"\1pd.DataFrame\1"),
)


def script_text(pipeline: Pipeline) -> str:
    """The source of a standalone script that runs ``pipeline`` over a folder.

    Usage of the script: ``python script.py INPUT_DIR OUTPUT_DIR [--pattern GLOB]``.
    """
    bundle = _Bundle()
    callees, user_imports = {}, []
    for stage in pipeline.stages:
        if stage.function in STAGES and ":" not in stage.function:
            callees[stage.name] = bundle.copy(STAGES[stage.function].function, f"stage_{stage.function}")
        else:
            module, _, attribute = stage.function.partition(":")
            callees[stage.name] = bundle.claim(f"user_{_identifier(stage.function)}", stage.function)
            user_imports.append(f"from {module} import {attribute} as {callees[stage.name]}")
    stage_functions = list(bundle.functions)
    bundle.copy(export_runtime.main)
    runtime = [text for name, text in bundle.functions.items() if name not in stage_functions]
    parameters, functions = _pipeline_code(pipeline, callees, set(bundle.names) | set(_SCRIPT_NAMES))
    sections = [
        "\n".join([*_header(pipeline), bundle.import_lines(), *user_imports]),
        _block("names of the run folder and the stages", [bundle.constant_lines()]),
        _block("parameters", [parameters]),
        _block(
            "stage functions (as in napari-batch-pipeline)", [bundle.functions[n] for n in stage_functions]
        ),
        _block("the pipeline: one function per stage", functions),
        _block("the runtime (as in napari-batch-pipeline)", runtime),
        'if __name__ == "__main__":\n'
        "    raise SystemExit(main(process, SAVED_STAGES, TABLE_STAGES, description=__doc__))",
    ]
    return "\n\n\n".join(section.strip("\n") for section in sections) + "\n"


def export_script(pipeline: Pipeline, path: str | Path) -> Path:
    """Write the standalone script of ``pipeline`` to ``path``."""
    return write_text_atomic(Path(path), script_text(pipeline))


def _header(pipeline: Pipeline) -> list[str]:
    versions = provenance_versions()
    return [
        "#!/usr/bin/env python3",
        f'"""Run the pipeline {pipeline.name!r} over a folder of images; write its tables.',
        "",
        "Exported by napari-batch-pipeline; needs only scikit-image, numpy, pandas and tifffile.",
        "Usage: python this_script.py INPUT_DIR OUTPUT_DIR [--pattern GLOB]",
        '"""',
        f"# pipeline hash: {pipeline.hash}",
        "# made with: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "platform"),
    ]


def _pipeline_code(pipeline: Pipeline, callees: dict[str, str], taken: set[str]) -> tuple[str, list[str]]:
    """The parameter constants, and one function per stage then ``process``.

    Names the script already uses (``taken``) get a ``_stage`` suffix.
    """
    constants, functions, calls = [], [], []
    for stage in pipeline.stages:
        arguments = [f"{arg}=outputs[{src!r}]" for arg, src in stage.inputs.items()]
        for name, value in stage.params.items():
            constant = _unique(_identifier(f"{stage.name}_{name}").upper(), taken)
            constants.append(f"{constant} = {_literal(value, stage.spec.params[name].default)}")
            arguments.append(f"{name}={constant}")
        function = _unique(_identifier(stage.name), taken)
        functions.append(
            f"def {function}(outputs):\n"
            f'    """Stage {stage.name!r}: {stage.function}."""\n'
            f"    return {callees[stage.name]}({', '.join(arguments)})"
        )
        calls.append(f"    outputs[{stage.name!r}] = {function}(outputs)")
    constants += [f"SAVED_STAGES = {pipeline.saved_stages!r}", f"TABLE_STAGES = {pipeline.table_stages!r}"]
    process = [
        "def process(image):",
        '    """Every stage on one image: {stage name: output}."""',
        f"    outputs = {{{INPUT!r}: image}}",
        *calls,
        f"    del outputs[{INPUT!r}]",
        "    return outputs",
    ]
    return "\n".join(constants), [*functions, "\n".join(process)]


class _Bundle:
    """Functions copied from their source with everything they use, for one script.

    A name a copied function uses is, in the function's module: a builtin (left alone),
    an import of another library (the module's import line is copied), a function of
    this package (copied in turn, before the one that uses it) or a constant (written as
    an assignment of its value). Two different things under one name are refused.
    """

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}
        self.imports: dict[str, str] = {}
        self.constants: dict[str, str] = {}
        self.functions: dict[str, str] = {}

    def claim(self, name: str, value: Any) -> str:
        """Reserve ``name`` for ``value``; raise if it holds something else already."""
        if name in self.names and not _same(self.names[name], value):
            raise RuntimeError(
                f"the exported script would bind {name!r} to both {self.names[name]!r} and {value!r}"
            )
        self.names[name] = value
        return name

    def copy(self, function: Callable[..., Any], name: str | None = None) -> str:
        """Copy ``function`` (undecorated) as ``name`` with what it uses; return the name."""
        function = inspect.unwrap(function)
        name = name or function.__name__
        if name in self.names:
            return self.claim(name, function)
        self.claim(name, function)
        source = _function_source(function, name)
        for used in sorted(_global_names(source)):
            self._provide(used, function)
        self.functions[name] = source
        return name

    def _provide(self, name: str, function: Callable[..., Any]) -> None:
        namespace = function.__globals__
        if name not in namespace:
            if hasattr(builtins, name):
                return
            raise RuntimeError(f"{function.__qualname__} uses {name!r}, which its module does not define")
        value = namespace[name]
        statement = _imports(inspect.getmodule(function)).get(name)
        if statement is not None:
            self.imports[self.claim(name, value)] = statement
        elif inspect.isfunction(value) and _internal(value.__module__):
            self.copy(value, name)
        elif typing.get_origin(value) is typing.Literal:
            self.imports[self.claim("Literal", typing.Literal)] = "from typing import Literal"
            items = ", ".join(map(repr, typing.get_args(value)))
            self.constants[self.claim(name, value)] = f"{name} = Literal[{items}]"
        else:
            self.constants[self.claim(name, value)] = f"{name} = {_value(name, value)}"

    def import_lines(self) -> str:
        """The import lines: ``import`` ones first, then ``from`` ones merged by module."""
        plain = sorted(s for s in self.imports.values() if s.startswith("import "))
        merged: dict[str, set[str]] = {}
        for statement in self.imports.values():
            if statement.startswith("from "):
                module, _, names = statement.removeprefix("from ").partition(" import ")
                merged.setdefault(module, set()).add(names)
        froms = [f"from {module} import {', '.join(sorted(merged[module]))}" for module in sorted(merged)]
        return "\n".join(["", *plain, "", *froms, ""])

    def constant_lines(self) -> str:
        """The assignments of the constants, by name."""
        return "\n".join(self.constants[name] for name in sorted(self.constants))


def _block(title: str, items: list[str]) -> str:
    """A section of the script: a title line, then its items two blank lines apart."""
    line = f"# -- {title} "
    return line + "-" * (88 - len(line)) + "\n" + "\n\n\n".join(item.strip("\n") for item in items)


def _function_source(function: Callable[..., Any], name: str) -> str:
    """The source of ``function`` without its decorators, named ``name``."""
    source = textwrap.dedent(inspect.getsource(function))
    definition = ast.parse(source).body[0]
    text = "\n".join(source.splitlines()[definition.lineno - 1 :]) + "\n"
    for pattern, replacement in _ANNOTATIONS:
        text = pattern.sub(replacement, text)
    return re.sub(rf"^def {function.__name__}\(", f"def {name}(", text, count=1, flags=re.M)


def _global_names(source: str) -> set[str]:
    """The global names one function's source uses, string annotations included."""
    table = symtable.symtable(source, "<exported>", "exec")
    names = {symbol.get_name() for symbol in table.get_symbols() if symbol.is_referenced()}
    scopes = list(table.get_children())
    while scopes:
        scope = scopes.pop()
        names |= {s.get_name() for s in scope.get_symbols() if s.is_global() and s.is_referenced()}
        scopes += scope.get_children()
    for node in ast.walk(ast.parse(source)):
        annotation = getattr(node, "annotation", None) if isinstance(node, ast.arg) else None
        if isinstance(node, ast.FunctionDef):
            annotation = node.returns
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            expression = ast.parse(annotation.value, mode="eval")
            names |= {n.id for n in ast.walk(expression) if isinstance(n, ast.Name)}
    return names


@functools.cache
def _imports(module: ModuleType | None) -> dict[str, str]:
    """The import line of each name a module imports from another library, at top level."""
    if module is None:
        return {}
    lines: dict[str, str] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _internal(alias.name):
                    bound = alias.asname or alias.name.partition(".")[0]
                    lines[bound] = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "__future__" or _internal(node.module):
                continue
            for alias in node.names:
                as_name = f" as {alias.asname}" if alias.asname else ""
                lines[alias.asname or alias.name] = f"from {node.module} import {alias.name}{as_name}"
    return lines


def _internal(module: str) -> bool:
    return module == _PACKAGE or module.startswith(f"{_PACKAGE}.")


def _value(name: str, value: Any) -> str:
    """``value`` as Python source; only literals (str, numbers, tuples ...) are accepted."""
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        same = False
    if not same:
        raise TypeError(f"cannot write {name} = {text} into the exported script; expected a literal value")
    return text


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:
        return False


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_stage`` (and so on) where the script already uses it."""
    while name in taken:
        name += "_stage"
    taken.add(name)
    return name


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return f"_{name}" if name[0].isdigit() else name


def _literal(value: Any, default: Any) -> str:
    if isinstance(default, tuple) and isinstance(value, list):
        return repr(tuple(value))
    return repr(value)
