"""Reading the YAML text of a pipeline file: safe, small and unambiguous.

A pipeline file is plain YAML (PyYAML's safe loader: no tags that build Python objects),
with three more refusals, each before anything is built from the text:

- **aliases** that would expand the document (``&a [x, x]``, ``&b [*a, *a]``, ...: a few
  lines that stand for billions of values) or refer to themselves: at most
  :data:`MAX_ALIASES` aliases, standing for at most :data:`MAX_ALIAS_VALUES` values
  in all; the check walks the composed nodes, never the expansion, so it is fast;
- **duplicate keys** in a mapping (YAML takes the last one silently);
- nesting deeper than :data:`MAX_DEPTH`.

Every problem, malformed values that YAML would turn into a Python error included
(``2020-13-01``, ``!!float x``), raises :class:`~.errors.PipelineError` naming the line.
"""

from __future__ import annotations

import copy
import re
import threading
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import PipelineError

__all__ = ["MAX_ALIASES", "MAX_ALIAS_VALUES", "MAX_DEPTH", "load_yaml", "read_pipeline_text"]

#: aliases (``*name``) a pipeline file may use
MAX_ALIASES = 100
#: values that aliases may stand for, in all (a repeated parameter mapping is a few)
MAX_ALIAS_VALUES = 10_000
#: how deeply collections may nest
MAX_DEPTH = 50

_MERGE = "tag:yaml.org,2002:merge"


class _Refused(yaml.MarkedYAMLError):
    """A refusal of this loader, with the place in the text."""


#: documents parsed, by their text: a run reads its own pipeline file back four or five
#: times (the tables, the summary, the screen's conclusions, the report), and this
#: line-checking parser takes some 8 ms a time; each caller gets its own copy
_PARSED: dict[str, Any] = {}
_PARSED_LOCK = threading.Lock()
_PARSED_LIMIT = 16
_PARSED_TEXT_LIMIT = 200_000


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing alias bombs, deep nesting and duplicate keys."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()
                raise _Refused(
                    problem=f"more than {MAX_ALIASES} aliases (*name); write the values out",
                    problem_mark=event.start_mark,
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    problem=f"collections nested more than {MAX_DEPTH} deep",
                    problem_mark=self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as error:
            # PyYAML converting a value it matched: a date 2020-13-01, !!float x
            value = node.value if isinstance(node, ScalarNode) else node.tag
            raise _Refused(
                problem=f"cannot read the value {_short(value)} ({error})", problem_mark=node.start_mark
            ) from None

    def compose_document(self) -> Node | None:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise _Refused(
                        problem=f"duplicate key {key!r}; each key may appear once in a mapping",
                        problem_mark=key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# ``1e9`` is a float, as in YAML 1.2 and JSON (YAML 1.1 reads it as text: a quality bound
# or a filter range written so was refused as not a number)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789.")
)


def _check_expansion(root: Node) -> None:
    """Refuse a node graph whose aliases stand for too many values, that refers to itself,
    or that nests too deeply. Iterative, and each node's size is computed once."""
    sizes: dict[int, int] = {}
    uses: dict[int, int] = {}
    stack: list[tuple[Node, int, bool]] = [(root, 0, False)]
    active: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        uses[key] = uses.get(key, 0) + 1
        if key in active:
            raise _Refused(
                problem="an alias refers to itself (a collection inside itself)", problem_mark=node.start_mark
            )
        if key in sizes:
            continue
        if depth > MAX_DEPTH:
            raise _Refused(
                problem=f"collections nested more than {MAX_DEPTH} deep", problem_mark=node.start_mark
            )
        active.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))
    extra = sizes[id(root)] - len(sizes)
    if extra > MAX_ALIAS_VALUES:
        raise _Refused(
            problem=f"aliases expand the file by {extra} values, more than {MAX_ALIAS_VALUES}; "
            "write the values out",
            problem_mark=root.start_mark,
        )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml(text: str, source: str = "pipeline") -> Any:
    """Parse the YAML text of a pipeline file.

    Parameters
    ----------
    text : str
        The file's text.
    source : str
        How messages name the file.

    Returns
    -------
    object
        The document: for a pipeline file, a mapping.

    Raises
    ------
    PipelineError
        For invalid YAML, a tag that builds Python objects, too many or self-referring
        aliases, a duplicate key, too deep nesting, or a value YAML cannot convert; the
        message names the line.
    """
    with _PARSED_LOCK:
        known = _PARSED.get(text)
    if known is not None:
        return copy.deepcopy(known)
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        data = loader.get_single_data()
    except _Refused as error:
        raise PipelineError(f"{_mark(error, source)}: {error.problem}") from None
    except yaml.constructor.ConstructorError as error:
        tag = re.search(r"'([^']*)'", str(error.problem))
        if tag is None or "tag" not in str(error.problem):
            raise PipelineError(f"{_mark(error, source)}: invalid YAML: {error.problem}") from None
        raise PipelineError(
            f"{_mark(error, source)}: refused tag {tag.group(1)!r}; pipeline "
            "files are plain YAML, and tags that build Python objects are not allowed"
        ) from None
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error)
        raise PipelineError(f"{_mark(error, source)}: invalid YAML: {problem}") from None
    except RecursionError:
        raise PipelineError(f"{source}: invalid YAML: collections nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    if len(text) <= _PARSED_TEXT_LIMIT:
        kept = copy.deepcopy(data)
        with _PARSED_LOCK:
            while len(_PARSED) >= _PARSED_LIMIT:
                _PARSED.pop(next(iter(_PARSED)))
            _PARSED[text] = kept
    return data


def _mark(error: yaml.YAMLError, source: str) -> str:
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return source
    return f"{source}, line {mark.line + 1}, column {mark.column + 1}"


def read_pipeline_text(path: Path) -> str:
    """The text of the pipeline file ``path``; a missing or unreadable file is a
    :class:`~..errors.PipelineError` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"pipeline file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError(f"cannot read pipeline file {str(path)!r}: {error}") from None
