"""Parameter values of stages: what a type annotation accepts, in words, and the checks
a pipeline runs on every value when it loads (:func:`check_param`, :func:`check_range`).
"""

from __future__ import annotations

import math
import re
import types
import typing
from typing import Any, Literal

__all__ = ["check_param", "check_range", "describe_type"]


def describe_type(annotation: Any) -> str:
    """A short, user-facing name for an annotation (``'a number'``, ``'one of ...'``)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is float:
        return "a number"
    if annotation is int:
        return "a whole number"
    if annotation is bool:
        return "true or false"
    if annotation is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple) and args:
        if origin is tuple and Ellipsis not in args:
            return f"a list of {len(args)} items, each {describe_type(args[0])}"
        return f"a list, each item {describe_type(args[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe_type(a) for a in args)
    if origin is dict and len(args) == 2:
        return f"a mapping of names to values, each {describe_type(args[1])}"
    return "a value"


def check_param(spec: Any, value: Any) -> Any:
    """Return ``value`` checked (and normalised) against ``spec``'s annotation.

    Raises
    ------
    ValueError
        With what was given and what was expected.
    """
    ok, normalised = _check(spec.annotation, value)
    if not ok:
        raise ValueError(f"expected {spec.expected}, got {_short(value)} ({type(value).__name__})")
    for number in _numbers(normalised):
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {number!r}")
        if abs(number) > MAX_NUMBER:
            raise ValueError(f"expected a number of magnitude at most {MAX_NUMBER:g}, got {number:g}")
    return normalised


#: the largest magnitude of any numeric parameter: beyond it a value is a typo or an attack
MAX_NUMBER = 1e15
#: the largest length in pixels (radius, sigma, distance): a disk of this radius already
#: holds 3e8 pixels, a ball 4e12
MAX_LENGTH = 10_000
_LENGTH = re.compile(r"(^|_)(radius|sigma|distance)$")
_SIZE = re.compile(r"(^|_)size$")


def check_range(name: str, value: Any) -> str | None:
    """Why a parameter value is out of range by its name, or None: a parameter named like
    a length (``radius``, ``sigma``, ``distance``, ``spot_sigma``...) lies in 0 to
    :data:`MAX_LENGTH` pixels, one named like a size (``min_size``, ``max_size``...) is 0
    or more. (:func:`check_param` already refused numbers that are not finite or beyond
    :data:`MAX_NUMBER`.) The rules go by the name, so they hold for user stages too.
    """
    length, size = _LENGTH.search(name), _SIZE.search(name)
    if not (length or size):
        return None
    for number in _numbers(value):
        if number < 0:
            return f"{name} must be 0 or more, got {number:g}"
        if length and number > MAX_LENGTH:
            return f"{name} is a length in pixels, at most {MAX_LENGTH}; got {number:g}"
    return None


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)] if not isinstance(value, int) or abs(value) < 10**300 else [math.inf]
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in _numbers(item)]
    return []


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check(annotation: Any, value: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is str:
        return isinstance(value, str), value
    if origin is Literal:
        return value in args, value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            if option is type(None):
                if value is None:
                    return True, None
                continue
            ok, normalised = _check(option, value)
            if ok:
                return True, normalised
        return False, value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        if origin is tuple and args and Ellipsis not in args:
            if len(value) != len(args):
                return False, value
            pairs = list(zip(args, value, strict=True))
        else:
            item_type = args[0] if args else Any
            pairs = [(item_type, item) for item in value]
        checked = [_check(a, v) for a, v in pairs]
        if not all(ok for ok, _ in checked):
            return False, value
        return True, [v for _, v in checked]
    if origin is dict and len(args) == 2:
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            return False, value
        items = {key: _check(args[1], item) for key, item in value.items()}
        if not all(ok for ok, _ in items.values()):
            return False, value
        return True, {key: item for key, (_, item) in items.items()}
    return True, value
