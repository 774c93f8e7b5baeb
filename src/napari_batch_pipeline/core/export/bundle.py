"""Real code of the package, copied with everything it uses, for an exported script.

An exported script (:mod:`.export`) computes what the engine computes without importing
this package, so it holds no second implementation but a copy: a :class:`Bundle` takes
functions and classes by ``inspect.getsource`` and follows every global name they use.
A builtin is left alone; an import of another library becomes that import line; a
function or class of the package is copied in turn; a constant is written as its value,
or, when its value is no literal (``frozenset(...)``, ``re.compile(...)``), as the
assignment its module makes. Decorators of the package (``@stage``) are dropped, others
(``@dataclass``, ``@contextlib.contextmanager``) kept. Two things under one name (the
``_describe`` of two modules) are told apart by renaming the later one
(``_describe_fields``) where it is defined and wherever it is used. A name a module
imports for type checking only (``if TYPE_CHECKING:``) keeps that guarded import; a
library the script can do without (``optional``) is imported where installed, else bound
to None; a definition with a stand-in of the script's own (``substitutes``) is replaced
by the stand-in wherever copied code uses it.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import re
import symtable
import sys
import textwrap
import typing
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["Bundle"]

_PACKAGE = __name__.partition(".")[0]
#: string annotations of stage functions, as the script writes them
_ANNOTATIONS = (
    (re.compile(r"([\"'])Iterable\[napari\.types\.ImageData\]"), r"\1Iterable[np.ndarray]"),
    (re.compile(r"([\"'])napari\.types\.(?:ImageData|LabelsData)"), r"\1np.ndarray"),
    (re.compile(r"([\"'])pandas\.DataFrame\1"), r"\1pd.DataFrame\1"),
)
#: what a name the script keeps for itself is bound to in :attr:`Bundle.names`
_RESERVED = object()
#: marks, in :attr:`Bundle.names`, a name imported for type checking only
_TYPE_CHECKING = "TYPE_CHECKING"


class Bundle:
    """Functions, classes and constants copied from the package for one script.

    Parameters
    ----------
    reserved : iterable of str
        Names the script defines itself; copied code under such a name is renamed.
    overrides : mapping of (module, name) to value
        Constants the script holds with another value than the package (the ``pip
        install`` line a missing reader asks for, say).
    optional : iterable of str
        Libraries the script runs without: their import lines are written guarded, the
        name bound to None where the library is not installed.
    substitutes : mapping
        A function or class of the package to the definition copied in its place (a
        stand-in with the same interface, for code that must not pull in the original).

    Attributes
    ----------
    names : dict
        Every name the script binds, to what it binds.
    imports, constants, definitions : dict of str to str
        By script name: the import line, the assignment, the source of a function or
        class (in the order copied: what a definition uses comes first).
    type_imports : dict of str to str
        By script name: the import lines for type checking only.
    modules : dict of str to str
        By script name of a definition: the module it was copied from.
    """

    def __init__(
        self,
        reserved: Iterable[str] = (),
        overrides: Mapping[tuple[str, str], Any] | None = None,
        optional: Iterable[str] = (),
        substitutes: Mapping[Any, Any] | None = None,
    ) -> None:
        self.names: dict[str, Any] = dict.fromkeys(reserved, _RESERVED)
        self.imports: dict[str, str] = {}
        self.type_imports: dict[str, str] = {}
        self.constants: dict[str, str] = {}
        self.definitions: dict[str, str] = {}
        self.modules: dict[str, str] = {}
        self._copied: dict[int, str] = {}
        self._overrides = dict(overrides or {})
        self._optional = set(optional)
        self._substitutes = {id(original): stand_in for original, stand_in in (substitutes or {}).items()}

    def claim(self, name: str, value: Any, module: str = "") -> str:
        """Bind ``value`` to ``name``, or where that holds something else to a new name
        (``name_<module>``); return the name bound."""
        if name not in self.names or _same(self.names[name], value):
            self.names[name] = value
            return name
        base = f"{name}_{module.rpartition('.')[2]}" if module else name
        candidate, number = base, 1
        while candidate in self.names and not _same(self.names[candidate], value):
            number += 1
            candidate = f"{base}_{number}"
        self.names[candidate] = value
        return candidate

    def copy(self, definition: Any, name: str | None = None) -> str:
        """Copy a function (undecorated) or class as ``name`` (default: its own) with what
        it uses; return the name it has in the script."""
        if inspect.isfunction(definition):
            definition = inspect.unwrap(definition)
        definition = self._substitutes.get(id(definition), definition)
        if id(definition) in self._copied:
            return self._copied[id(definition)]
        module = sys.modules[definition.__module__]
        bound = self.claim(name or definition.__name__, definition, module.__name__)
        self._copied[id(definition)] = bound
        source = _definition_source(definition, vars(module))
        renames = {definition.__name__: bound}
        required, optional = _global_names(source)
        for used in sorted(required | {n for n in optional if n in vars(module)}):
            if used != definition.__name__:
                renames[used] = self._provide(used, module) or used
        self.definitions[bound] = _rename(source, {k: v for k, v in renames.items() if k != v})
        self.modules[bound] = module.__name__
        return bound

    def _provide(self, name: str, module: ModuleType) -> str | None:
        """Bind what ``name`` means in ``module``; its script name, None for a builtin."""
        namespace = vars(module)
        if name not in namespace and name in _type_checking_imports(module):
            bound = self.claim(name, (_TYPE_CHECKING, module.__name__, name), module.__name__)
            self.type_imports[bound] = _type_checking_imports(module)[name](bound)
            return bound
        if name not in namespace:
            if hasattr(builtins, name):
                return None
            raise RuntimeError(f"{module.__name__} uses {name!r}, which it does not define")
        value = namespace[name]
        statement = _imports(module).get(name)
        if statement is not None:
            bound = self.claim(name, value, module.__name__)
            self.imports[bound] = statement(bound)
            return bound
        definition = inspect.isfunction(value) or inspect.isclass(value)
        if definition and id(value) in self._substitutes:
            return self.copy(value)
        if definition and _internal(inspect.unwrap(value).__module__):
            return self.copy(value)
        if typing.get_origin(value) is typing.Literal:
            self.imports[self.claim("Literal", typing.Literal)] = "from typing import Literal"
            bound = self.claim(name, value, module.__name__)
            self.constants[bound] = f"{bound} = Literal[{', '.join(map(repr, typing.get_args(value)))}]"
            return bound
        value = self._overrides.get((module.__name__, name), value)
        bound = self.claim(name, value, module.__name__)
        if bound not in self.constants:
            self.constants[bound] = self._constant(bound, name, value, module)
        return bound

    def _constant(self, bound: str, name: str, value: Any, module: ModuleType) -> str:
        """``bound = <value>``, or the module's own assignment where the value is no literal."""
        try:
            return f"{bound} = {_value(name, value)}"
        except TypeError:
            statement = _assignment(module, name)
            if statement is None:
                raise
        renames = {name: bound}
        for used in sorted(_global_names(statement)[0] - {name}):
            provided = self._provide(used, module)
            if provided in self.definitions:
                raise TypeError(f"{module.__name__}.{name} is computed by {used}; expected a constant")
            renames[used] = provided or used
        return _rename(statement, {k: v for k, v in renames.items() if k != v})

    def expression(self, text: str, module: ModuleType) -> str:
        """An expression as ``module`` writes it (``_non_negative("sigma")``), with what it
        uses; its text in the script."""
        renames = {used: self._provide(used, module) or used for used in sorted(_global_names(text)[0])}
        return _rename(text, {k: v for k, v in renames.items() if k != v})

    def library(self, module: str, name: str) -> str:
        """Bind ``from module import name`` (another library's); return the name bound."""
        value = getattr(sys.modules.get(module), name, (module, name))
        bound = self.claim(name, value, module)
        self.imports[bound] = _import_line(module, name, None, bound)
        return bound

    def import_lines(self) -> str:
        """The import lines: ``import`` ones first, then ``from`` ones merged by module, then
        those of optional libraries (guarded) and those for type checking only."""
        guard = self.library("typing", "TYPE_CHECKING") if self.type_imports else None
        required = {k: v for k, v in self.imports.items() if _module_of(v) not in self._optional}
        plain = sorted(s for s in required.values() if s.startswith("import "))
        lines = ["", *plain, "", *_merged(s for s in required.values() if s.startswith("from ")), ""]
        for bound, statement in sorted(self.imports.items()):
            if bound not in required:
                lines += [
                    "try:",
                    f"    {statement}",
                    "except ImportError:  # not installed",
                    f"    {bound} = None",
                ]
        if guard is not None:
            lines += [f"if {guard}:", *(f"    {s}" for s in sorted(self.type_imports.values()))]
        return "\n".join([*lines, ""] if lines[-1] else lines)

    def constant_lines(self) -> str:
        """The assignments of the constants, each after those it uses."""
        return "\n".join(self.constants.values())


def _merged(statements: Iterable[str]) -> list[str]:
    """``from`` import lines merged by module, sorted."""
    merged: dict[str, set[str]] = {}
    for statement in statements:
        module, _, names = statement.removeprefix("from ").partition(" import ")
        merged.setdefault(module, set()).add(names)
    return [f"from {module} import {', '.join(sorted(merged[module]))}" for module in sorted(merged)]


def _module_of(statement: str) -> str:
    """The top-level library an import line imports from."""
    return statement.split()[1].partition(".")[0]


def _definition_source(definition: Any, namespace: Mapping[str, Any]) -> str:
    """The source of a function or class, without the package's own decorators."""
    source = textwrap.dedent(inspect.getsource(definition))
    node = ast.parse(source).body[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    if node.name != definition.__name__:  # the file was edited after it was imported
        raise RuntimeError(
            f"the source of {definition.__module__}.{definition.__name__} has changed since import"
        )
    kept = [
        f"@{ast.get_source_segment(source, decorator)}\n"
        for decorator in node.decorator_list
        if not _internal(getattr(_root_value(decorator, namespace), "__module__", None) or "")
    ]
    text = "".join(kept) + "\n".join(source.splitlines()[node.lineno - 1 :]) + "\n"
    for pattern, replacement in _ANNOTATIONS:
        text = pattern.sub(replacement, text)
    return text


def _root_value(expression: ast.expr, namespace: Mapping[str, Any]) -> Any:
    """What the leftmost name of a decorator (``stage`` of ``@stage(...)``) is bound to."""
    while isinstance(expression, (ast.Call, ast.Attribute)):
        expression = expression.func if isinstance(expression, ast.Call) else expression.value
    return namespace.get(expression.id) if isinstance(expression, ast.Name) else None


def _global_names(source: str) -> tuple[set[str], set[str]]:
    """The global names a definition's source uses (string annotations included), and
    the names a class body uses and also assigns, which may be either."""
    table = symtable.symtable(source, "<exported>", "exec")
    names = {symbol.get_name() for symbol in table.get_symbols() if symbol.is_referenced()}
    either: set[str] = set()
    scopes = list(table.get_children())
    while scopes:
        scope = scopes.pop()
        for symbol in scope.get_symbols():
            if symbol.is_referenced() and symbol.is_global():
                names.add(symbol.get_name())
            elif symbol.is_referenced() and scope.get_type() == "class" and symbol.is_local():
                either.add(symbol.get_name())
        scopes += scope.get_children()
    for node in ast.walk(ast.parse(source)):
        annotation = getattr(node, "annotation", None) if isinstance(node, ast.arg) else None
        if isinstance(node, ast.FunctionDef):
            annotation = node.returns
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            expression = ast.parse(annotation.value, mode="eval")
            names |= {n.id for n in ast.walk(expression) if isinstance(n, ast.Name)}
    return names, either - names


def _rename(source: str, renames: Mapping[str, str]) -> str:
    """``source`` with the global names in ``renames`` renamed, its definition included.

    Raises
    ------
    RuntimeError
        If a renamed name is also a local name somewhere in ``source``.
    """
    if not renames:
        return source
    table = symtable.symtable(source, "<exported>", "exec")
    scopes = list(table.get_children())
    while scopes:
        scope = scopes.pop()
        clash = [s.get_name() for s in scope.get_symbols() if s.get_name() in renames and s.is_local()]
        if clash:
            raise RuntimeError(f"cannot rename {clash[0]!r}: {scope.get_name()} has a local of that name")
        scopes += scope.get_children()
    tree = ast.parse(source)
    lines = [line.encode() for line in source.splitlines(keepends=True)]
    spans = [
        (node.lineno - 1, node.col_offset, node.end_col_offset or 0, renames[node.id])
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id in renames
    ]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in renames:
            start = lines[node.lineno - 1].index(f" {node.name}".encode()) + 1
            spans.append((node.lineno - 1, start, start + len(node.name), renames[node.name]))
    for row, start, end, new in sorted(spans, reverse=True):
        lines[row] = lines[row][:start] + new.encode() + lines[row][end:]
    renamed = b"".join(lines).decode()
    if _names(ast.parse(renamed)) != [renames.get(name, name) for name in _names(tree)]:
        raise RuntimeError(f"renaming {', '.join(renames)} changed more than those names")
    return renamed


def _names(tree: ast.AST) -> list[str]:
    """Every name a tree uses or defines, in walking order."""
    return [
        node.id if isinstance(node, ast.Name) else node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Name, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]


@functools.cache
def _module_tree(module: ModuleType) -> ast.Module:
    return ast.parse(inspect.getsource(module))


def _assignment(module: ModuleType, name: str) -> str | None:
    """The source of the top-level statement of ``module`` that assigns ``name`` alone."""
    source = inspect.getsource(module)
    for node in _module_tree(module).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        assigns = isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
        if assigns and [getattr(t, "id", None) for t in targets] == [name]:
            return ast.get_source_segment(source, node)
    return None


@functools.cache
def _imports(module: ModuleType) -> dict[str, Callable[[str], str]]:
    """For each name a module imports from another library at top level: its import
    line, given the name the script binds it to."""
    return _import_statements(_module_tree(module).body)


@functools.cache
def _type_checking_imports(module: ModuleType) -> dict[str, Callable[[str], str]]:
    """The same for the names a module imports under ``if TYPE_CHECKING:`` at top level."""
    guarded = [
        statement
        for node in _module_tree(module).body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == _TYPE_CHECKING
        for statement in node.body
    ]
    return _import_statements(guarded)


def _import_statements(nodes: Iterable[ast.stmt]) -> dict[str, Callable[[str], str]]:
    lines: dict[str, Callable[[str], str]] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _internal(alias.name):
                    bound = alias.asname or alias.name.partition(".")[0]
                    lines[bound] = functools.partial(_import_line, alias.name, None, alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "__future__" or _internal(node.module):
                continue
            for alias in node.names:
                bound = alias.asname or alias.name
                lines[bound] = functools.partial(_import_line, node.module, alias.name, alias.asname)
    return lines


def _import_line(module: str, name: str | None, asname: str | None, bound: str) -> str:
    """``import module [as bound]`` or ``from module import name [as bound]``."""
    if name is not None:
        return f"from {module} import {name}" + (f" as {bound}" if bound != name else "")
    if asname is None and bound == module.partition(".")[0]:
        return f"import {module}"
    if asname is None and "." in module:
        raise RuntimeError(f"cannot bind 'import {module}' to {bound!r}")
    return f"import {module} as {bound}"


def _internal(module: str) -> bool:
    return module == _PACKAGE or module.startswith(f"{_PACKAGE}.")


def _value(name: str, value: Any) -> str:
    """``value`` as Python source; only literals (str, numbers, tuples, sets ...) are
    accepted. A long dict, list, tuple or set is written one item a line; a set's items
    sorted, so that the text is the same every time."""
    if isinstance(value, frozenset):
        return f"frozenset({_value(name, set(value))})" if value else "frozenset()"
    ordered = sorted(value, key=repr) if isinstance(value, set) else value
    text = "{" + ", ".join(map(repr, ordered)) + "}" if isinstance(value, set) and value else repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        same = False
    if not same:
        raise TypeError(f"cannot write {name} = {text} into the exported script; expected a literal value")
    if len(text) <= 80 or not isinstance(value, (dict, list, tuple, set)):
        return text
    if isinstance(value, dict):
        items = [f"    {key!r}: {item!r},\n" for key, item in value.items()]
    else:
        items = [f"    {item!r},\n" for item in ordered]
    brackets = {dict: "{}", list: "[]", set: "{}"}.get(type(value), "()")
    return brackets[0] + "\n" + "".join(items) + brackets[1]


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:
        return False
