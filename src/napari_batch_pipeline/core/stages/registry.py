"""What a stage is: a plain function with napari type annotations, described by a StageSpec.

Data arguments are recognised by their napari type annotations (``ImageData``,
``LabelsData``), written as strings so that nothing here imports napari. An argument
named ``spacing`` (default None) is the pixel size of the image being processed, as
``(z, y, x)`` or ``(y, x)`` in micrometres, which the engine supplies (None when the file
has none). Every other argument is a parameter, and must have a default a user can start
from.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import PipelineError
from .param_values import check_param, check_range, describe_type

__all__ = [
    "BUILT_IN_MODULES",
    "OUTPUT_KINDS",
    "SPACING_ARG",
    "ParamSpec",
    "StageSpec",
    "check_param",
    "check_range",
    "describe_type",
    "import_function",
    "spec_from_function",
    "stage",
]

OUTPUT_KINDS = ("image", "mask", "labels", "table")
_DATA_NAMES = {"ImageData": "image", "LabelsData": "labels"}
_TABLE_NAMES = ("DataFrame", "pandas.DataFrame", "pd.DataFrame")
#: the argument through which the engine gives a stage its image's pixel size
SPACING_ARG = "spacing"
#: where the built-in stages' functions live (a function elsewhere is a user's)
BUILT_IN_MODULES = "napari_batch_pipeline.core.stages."


#: ``check(params, connected_data_args)``: a message when the values cannot work together, else None
Check = Callable[[dict[str, Any], set[str]], str | None]


def stage(
    *,
    menu: str | None = None,
    returns: str | None = None,
    check: Check | None = None,
    returns_by: Callable[[dict[str, Any]], str] | None = None,
    trains: str | None = None,
    columns: Mapping[str, str] | None = None,
    radius: int | Callable[[dict[str, Any]], int] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    read_only: Mapping[str, str] | None = None,
) -> Callable[[Callable], Callable]:
    """Mark a function as a stage: the built-in ones, and a user's that says more than its
    annotations do (its reach, for images larger than memory).

    Parameters
    ----------
    menu : {'filter', 'segment', 'measure'}, optional
        The napari Layers menu the stage belongs under; None: from what it returns.
    returns : str, optional
        The output kind when the annotation alone cannot say it (``'mask'``).
    check : callable, optional
        ``check(params, connected_data_args)`` returns a message when the values cannot
        work together, else None. The one place a stage's parameter checks are written:
        a pipeline runs it when it loads, before any image (see ``stage_config``), and a
        direct call of the stage runs it before computing.
    returns_by : callable, optional
        ``returns_by(params)``: the output kind where a parameter chooses it.
    trains : {'pixels', 'objects'}, optional
        A classifier: its forest is trained from its training file (see ``forests``).
    columns : mapping of str to str, optional
        A table stage's columns and what each holds (its unit), as ``stages`` lists them.
    radius : int or callable, optional
        How far (pixels) the output at a pixel depends on the input: 0 for a pointwise
        stage, or ``radius(params)``. A stage that says it runs tile by tile on images
        larger than memory (``tile`` option), with a halo of its reach.
    options : mapping of str to mapping, optional
        Parameters that are a mapping of named options (``features: {sigma_min: 1, ...}``),
        each with the type annotation of every option it takes; an option's default is
        the one in the parameter's default mapping (None where that has none). Widgets
        give each option a field of its own; the pipeline file keeps the mapping.
    read_only : mapping of str to str, optional
        Parameters a person does not type, each with what writes it (``training_sha256``:
        the builder, when it saves a training). The pipeline file holds them as any
        parameter; the builder shows them without a field to edit.

    Returns
    -------
    callable
        A decorator. With ``check``, it returns a wrapper (``functools.wraps``: same
        name, docstring and signature; ``inspect.unwrap`` gives the function) that raises
        ``ValueError(message)`` when the check fails; without, the function itself.
    """

    def mark(function: Callable) -> Callable:
        info = {
            "menu": menu,
            "returns": returns,
            "check": check,
            "returns_by": returns_by,
            "trains": trains,
            "columns": dict(columns or {}),
            "radius": radius,
            "options": {param: dict(kinds) for param, kinds in (options or {}).items()},
            "read_only": dict(read_only or {}),
        }
        marked = function if check is None else _checked(function, check)
        marked.__stage_info__ = info  # type: ignore[attr-defined]
        return marked

    return mark


def _checked(function: Callable, check: Check) -> Callable:
    """``function`` running ``check`` on its parameters and connected data arguments first."""
    signature = inspect.signature(function)
    data = [name for name, arg in signature.parameters.items() if _data_kind(arg.annotation)]

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        params = {name: value for name, value in values.items() if name not in data}
        problem = check(params, {name for name in data if values.get(name) is not None})
        if problem:
            raise ValueError(problem)
        return function(*args, **kwargs)

    return checked


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a stage: its name, type annotation and default.

    Attributes
    ----------
    name : str
    annotation : type annotation
    default : object
    options : tuple of ParamSpec
        For a mapping of named options (a classifier's ``features``), each option with
        its type annotation and default, in order; empty for other parameters.
    read_only : str
        For a parameter a person does not type, what writes it (a training's hash: the
        builder's Save...); empty for the others.
    """

    name: str
    annotation: Any
    default: Any
    options: tuple[ParamSpec, ...] = ()
    read_only: str = ""

    @property
    def expected(self) -> str:
        return describe_type(self.annotation)


@dataclass(frozen=True)
class StageSpec:
    """A stage function and what the engine needs to know about it.

    Attributes
    ----------
    name : str
        How pipeline files name it: a built-in name or ``package.module:function``.
    function : callable
        The function itself.
    data_args : dict of str to str
        Data argument names, in signature order, mapped to ``'image'`` or ``'labels'``.
        The first one is the main argument, fed by the stage before by default.
    optional_data : frozenset of str
        Data arguments that may be left unconnected (their default is None).
    params : dict of str to ParamSpec
        The other arguments.
    returns : {'image', 'mask', 'labels', 'table'}
    menu : str
        ``'filter'``, ``'segment'`` or ``'measure'``.
    takes_spacing : bool
        Whether the function has a ``spacing`` argument for the pixel size.
    group : bool
        A group stage: its main argument is annotated ``"Iterable[napari.types.ImageData]"``
        and receives the images of a whole group, one at a time, in image order.
    returns_by, trains
        As :func:`stage` takes them (None where not given).
    columns : dict of str to str
        A built-in table stage's columns and what each holds (empty when not said).
    """

    name: str
    function: Callable[..., Any]
    data_args: dict[str, str]
    optional_data: frozenset[str]
    params: dict[str, ParamSpec]
    returns: str
    menu: str
    doc: str = field(default="", compare=False)
    check: Check | None = field(default=None, compare=False)
    takes_spacing: bool = False
    group: bool = False
    returns_by: Callable[[dict[str, Any]], str] | None = field(default=None, compare=False)
    trains: str | None = None
    #: how far the stage reaches (pixels, or a function of its parameters); None: unknown
    radius: int | Callable[[dict[str, Any]], int] | None = field(default=None, compare=False)
    columns: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def main_arg(self) -> str:
        return next(iter(self.data_args))

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""

    def defaults(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.params.items()}


def _data_kind(annotation: Any) -> str | None:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if not isinstance(annotation, str) and getattr(annotation, "__module__", "") != "napari.types":
        return None
    for name, kind in _DATA_NAMES.items():
        if name in text:
            return kind
    return None


def _is_group(annotation: Any) -> bool:
    """An ``Iterable[...ImageData]`` annotation (written as a string): a group stage's images."""
    if not isinstance(annotation, str):
        return False
    text = annotation.replace(" ", "").strip("\"'")
    return text.split("[", 1)[0].rsplit(".", 1)[-1] == "Iterable" and _data_kind(annotation) == "image"


def _is_table(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation in _TABLE_NAMES
    return getattr(annotation, "__name__", "") == "DataFrame"


def spec_from_function(function: Callable[..., Any], name: str | None = None) -> StageSpec:
    """Describe ``function`` as a stage, refusing one without napari type annotations.

    Raises
    ------
    PipelineError
        If no argument is annotated ``ImageData`` or ``LabelsData``, the return is not
        one of those or a table, or a parameter has no default.
    """
    name = name or function.__name__
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as error:
        raise PipelineError(f"{name} has no inspectable signature ({error})") from None
    info = getattr(function, "__stage_info__", {})
    if not any(_data_kind(arg.annotation) for arg in signature.parameters.values()):
        raise PipelineError(
            f"{name} is not a stage: no argument is annotated with a napari type "
            "(napari.types.ImageData or napari.types.LabelsData)"
        )
    data_args: dict[str, str] = {}
    optional: set[str] = set()
    params: dict[str, ParamSpec] = {}
    for arg in signature.parameters.values():
        if arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD):
            continue
        if arg.name == SPACING_ARG:
            if arg.default is not None:
                raise PipelineError(
                    f"{name}: argument {SPACING_ARG!r} receives the pixel size and needs the default None"
                )
            continue
        kind = _data_kind(arg.annotation)
        if kind is not None:
            data_args[arg.name] = kind
            if arg.default is None:
                optional.add(arg.name)
            continue
        if arg.default is inspect.Parameter.empty:
            raise PipelineError(
                f"{name}: parameter {arg.name!r} needs a default, or a napari type "
                "annotation (napari.types.ImageData or LabelsData) if it takes data"
            )
        params[arg.name] = ParamSpec(
            arg.name,
            _resolve(arg.annotation),
            arg.default,
            options=_options(name, arg, info.get("options", {}).get(arg.name)),
            read_only=info.get("read_only", {}).get(arg.name, ""),
        )
    said = sorted((set(info.get("options", {})) | set(info.get("read_only", {}))) - set(params))
    if said:
        raise PipelineError(f"{name}: the stage marks {said[0]!r}, which is not one of its parameters")
    returns = info.get("returns")
    if returns is None:
        ret = signature.return_annotation
        returns = _data_kind(ret) or ("table" if _is_table(ret) else None)
    if returns not in OUTPUT_KINDS:
        raise PipelineError(
            f"{name} is not a stage: its return must be annotated napari.types.ImageData, "
            "napari.types.LabelsData or pandas.DataFrame"
        )
    group = any(_is_group(arg.annotation) for arg in signature.parameters.values())
    if group and (len(data_args) != 1 or returns != "image"):
        raise PipelineError(
            f"{name} is a group stage (Iterable[napari.types.ImageData]): it takes that one "
            "data argument and returns napari.types.ImageData"
        )
    menu = info.get("menu") or {"image": "filter", "table": "measure"}.get(returns, "segment")
    return StageSpec(
        name=name,
        function=function,
        data_args=data_args,
        optional_data=frozenset(optional),
        params=params,
        returns=returns,
        menu=menu,
        doc=inspect.getdoc(function) or "",
        check=info.get("check"),
        takes_spacing=SPACING_ARG in signature.parameters,
        group=group,
        returns_by=info.get("returns_by"),
        radius=info.get("radius"),
        trains=info.get("trains"),
        columns=dict(info.get("columns") or {}),
    )


def _options(name: str, arg: inspect.Parameter, kinds: Mapping[str, Any] | None) -> tuple[ParamSpec, ...]:
    """The named options of a mapping parameter, their defaults from its default mapping."""
    if not kinds:
        return ()
    if not isinstance(arg.default, Mapping):
        raise PipelineError(f"{name}: parameter {arg.name!r} has named options, so its default is a mapping")
    return tuple(ParamSpec(key, kind, arg.default.get(key)) for key, kind in kinds.items())


_SIMPLE = {"float": float, "int": int, "bool": bool, "str": str}


def _resolve(annotation: Any) -> Any:
    """Turn simple string annotations (``'float'``) into types; leave the rest."""
    if isinstance(annotation, str):
        return _SIMPLE.get(annotation.strip(), annotation)
    return annotation


def import_function(reference: str) -> Callable[..., Any]:
    """Import ``package.module:function``; raise PipelineError if it cannot be found."""
    module_name, _, attribute = reference.partition(":")
    dotted = module_name.split(".") + attribute.split(".")
    if not module_name or not attribute or not all(part.isidentifier() for part in dotted):
        raise PipelineError(
            f"function {reference!r} is neither a built-in stage nor of the form 'package.module:function'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise PipelineError(f"cannot import module {module_name!r} ({error})") from None
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise PipelineError(f"module {module_name!r} has no function {attribute!r}")
    if not callable(target):
        raise PipelineError(f"{reference!r} is not a function")
    return target
