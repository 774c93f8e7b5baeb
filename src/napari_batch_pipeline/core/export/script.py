"""Export a pipeline as a plain, standalone Python script that writes the same tables.

The script imports numpy, pandas, tifffile and scikit-image (scipy and imageio come with
it), bioio for the vendor formats when it is installed, plus the user's own modules where
the pipeline names them; never this package. It is assembled from real code
(:mod:`.export_bundle`): the built-in stage functions (undecorated, their napari
annotations written as numpy and pandas types) and the runtime of :mod:`.export_runtime`,
copied with every function, class and constant of the package they use: finding files,
the format layer, fields (scenes, time points, channels, pixel sizes), tasks and their
output names, the run folder's writers, the parameter table (:mod:`.params_table`) and the
summary (:mod:`.summary`). So the script reads, computes and names its files as the
engine does. Each pipeline stage becomes one function, its parameters named constants
that a task's row of the parameter table overrides, and the pipeline's ``channels:``
section a mapping. ``PIPELINE`` holds every parameter with its type and its stage's
check (as the stage's ``@stage`` decorator writes it), against which a parameter table
is checked with the engine's messages.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

from ..files import write_text_atomic
from ..images import formats
from ..pipeline.model import INPUT, Pipeline, StageConfig
from ..run_folder.writer import provenance_versions
from ..stages import STAGES
from ..stages.registry import SPACING_ARG
from ..stages.training import resolve_training
from . import runtime as export_runtime
from .bundle import Bundle

__all__ = ["export_script", "script_text"]

#: the script's own names, besides what it copies
_SCRIPT_NAMES = (
    "process",
    "SAVED_STAGES",
    "TABLE_STAGES",
    "CHANNELS",
    "PIPELINE",
    "GROUP_FUNCTIONS",
    "QUALITY",
    "READOUT",
)
#: constants the script holds with its own value: a missing vendor reader names the
#: packages to install (this package's extra is no help to a standalone script)
_OVERRIDES = {
    (formats.__name__, "FORMATS_EXTRA"): "pip install bioio " + " ".join(formats.BIOIO_READERS.values()),
}
_USAGE = (
    "Usage: python this_script.py INPUT_DIR OUTPUT_DIR [--pattern GLOB] [--recursive]\n"
    "    [--metadata REGEX] [--params TABLE.csv] [--group-by COL,...]\n"
    "    [--annotations MAP.csv] [--negative-control COL=VALUE] [--positive-control COL=VALUE]\n"
    "    [--table-format csv|parquet] [--well-aggregate median|mean]"
)
#: what the script runs without: the cells of a parameter table are read as YAML
_OPTIONAL = ("yaml",)


def script_text(pipeline: Pipeline, folder: str | Path | None = None) -> str:
    """The source of a standalone script that runs ``pipeline`` over a folder.

    Usage of the script: ``python script.py INPUT_DIR OUTPUT_DIR [--pattern GLOB] [--recursive]
    [--metadata REGEX] [--params TABLE.csv] [--group-by COL,...]``, the options of the run
    command of the same names.

    A classifier stage's training file is named relative to the script, which is to lie
    in ``folder`` (default: the working folder): the script trains the same forest from
    the same file (its hash checked), as the engine does, with scikit-learn.
    """
    bundle = Bundle(
        reserved=_SCRIPT_NAMES,
        overrides=_OVERRIDES,
        optional=_OPTIONAL,
        substitutes={Pipeline: export_runtime.ExportedPipeline},
    )
    callees, user_imports = {}, []
    for stage in pipeline.stages:
        if stage.function in STAGES and ":" not in stage.function:
            callees[stage.name] = bundle.copy(STAGES[stage.function].function, f"stage_{stage.function}")
        else:
            module, _, attribute = stage.function.partition(":")
            callees[stage.name] = bundle.claim(f"user_{_identifier(stage.function)}", stage.function)
            user_imports.append(f"from {module} import {attribute} as {callees[stage.name]}")
    main = bundle.copy(export_runtime.main)
    run_stage = bundle.copy(export_runtime.run_stage)
    exported = bundle.copy(export_runtime.ExportedPipeline), bundle.copy(export_runtime.ExportedStage)
    specs = {stage.name: _stage_spec(stage, callees[stage.name], bundle) for stage in pipeline.stages}
    written = _training_paths(pipeline, bundle, Path(folder or "."))
    parameters, functions, constants = _pipeline_code(
        pipeline, callees, run_stage, set(bundle.names), written
    )
    sections = [
        "\n".join([*_header(pipeline), bundle.import_lines(), *user_imports]),
        _block("the pipeline's parameters and channels", [parameters, _quality(pipeline)]),
        _block("the pipeline: one function per stage", functions),
        _block("constants (as in napari-batch-pipeline)", [bundle.constant_lines()]),
        *_copied_blocks(bundle),
        _block("what a parameter table may set", [_exported_pipeline(pipeline, specs, constants, exported)]),
        'if __name__ == "__main__":\n'
        f"    raise SystemExit({main}(process, SAVED_STAGES, TABLE_STAGES, CHANNELS, description=__doc__, "
        "pipeline=PIPELINE, groups=GROUP_FUNCTIONS, quality=QUALITY, readout=READOUT))",
    ]
    return "\n\n\n".join(section.strip("\n") for section in sections) + "\n"


def _quality(pipeline: Pipeline) -> str:
    """``QUALITY``: the pipeline's quality rules, ``(stage, measurement, min, max)``;
    ``READOUT``: its ``screen: readout``."""
    rules = [(rule.stage, rule.measurement, rule.min, rule.max) for rule in pipeline.quality]
    comment = "# quality rules: (stage, measurement, min, max); an image breaking one is flagged"
    readout = "# the screen's readout, which the plate figures show (None: the first measurement)"
    return f"{comment}\nQUALITY = {rules!r}\n{readout}\nREADOUT = {pipeline.readout!r}"


def export_script(pipeline: Pipeline, path: str | Path) -> Path:
    """Write the standalone script of ``pipeline`` to ``path``."""
    return write_text_atomic(Path(path), script_text(pipeline, Path(path).expanduser().resolve().parent))


def _training_paths(pipeline: Pipeline, bundle: Bundle, folder: Path) -> dict[str, str]:
    """The script's value of each classifier stage's ``training`` (``'stage.training'``):
    the training file's path relative to the script's own folder, found from there
    whatever the working folder. A pipeline with no folder of its own keeps its paths."""
    if pipeline.folder is None:
        return {}
    written = {}
    for name in pipeline.classifier_stages:
        training = pipeline[name].params.get("training")
        if not training:
            continue
        target = resolve_training(training, pipeline.folder).resolve()
        relative = Path(os.path.relpath(target, folder.resolve())).as_posix()
        path = bundle.library("pathlib", "Path")
        written[f"{name}.training"] = f"str({path}(__file__).resolve().parent / {relative!r})"
    return written


def _header(pipeline: Pipeline) -> list[str]:
    versions = provenance_versions()
    return [
        "#!/usr/bin/env python3",
        # the name as a literal, its quotes escaped: a name with \"\"\" cannot end the docstring
        f'"""Run the pipeline {repr(pipeline.name).replace(chr(34), chr(92) + chr(34))} over a folder '
        "of images; write its tables.",
        "",
        "Exported by napari-batch-pipeline; needs only numpy, pandas, tifffile and scikit-image",
        *(
            ["(and scikit-learn for its classifiers, with their training files beside the script)"]
            if pipeline.classifier_stages
            else []
        ),
        "(CZI, ND2, LIF and OME-Zarr files: bioio too, with its reader of the format; a",
        "parameter table: PyYAML; summary.png: matplotlib).",
        _USAGE,
        '"""',
        f"# pipeline hash: {pipeline.hash}",
        "# made with: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "platform"),
        "",
        "from __future__ import annotations",
    ]


def _pipeline_code(
    pipeline: Pipeline, callees: dict[str, str], run_stage: str, taken: set[str], written: dict[str, str]
) -> tuple[str, list[str], dict[str, str]]:
    """The parameter constants and channels, one function per stage then ``process``, and
    the constant of each parameter (``'stage.param'``).

    Names the script already uses (``taken``) get a ``_stage`` suffix. A stage takes each
    parameter's value from the task's ``values`` (its row of the parameter table), else
    the pipeline's constant; a stage that takes the pixel size (``spacing``) gets it from
    ``process``; each stage runs through ``run_stage``, which names the stage in an error
    as the engine does. ``written`` gives some constants' values as code (``'stage.param'``
    to an expression), instead of the parameter's value.
    """
    taken |= set(_SCRIPT_NAMES)
    constants, functions, calls, names, groups = [], [], [], {}, []
    for stage in pipeline.stages:
        arguments = [f"{arg}=outputs[{src!r}]" for arg, src in stage.inputs.items()]
        for name, value in stage.params.items():
            column = f"{stage.name}.{name}"
            names[column] = constant = _unique(_identifier(f"{stage.name}_{name}").upper(), taken)
            literal = written.get(column) or _literal(value, stage.spec.params[name].default)
            constants.append(f"{constant} = {literal}")
            arguments.append(f"{name}=values.get({column!r}, {constant})")
        spacing = ", spacing" if stage.spec.takes_spacing else ""
        if spacing:
            arguments.append(f"{SPACING_ARG}=spacing")
        function = _unique(_identifier(stage.name), taken)
        functions.append(
            f"def {function}(outputs, values{spacing}):\n"
            f'    """Stage {stage.name!r}: {stage.function}."""\n'
            f"    return {callees[stage.name]}({', '.join(arguments)})"
        )
        call = f"{run_stage}({stage.name!r}, {stage.function!r}, {function}, outputs, values{spacing})"
        if stage.group_by is None:
            calls.append(f"    outputs[{stage.name!r}] = {call}")
            continue
        # a group stage: learnt over its group first (see group_passes), given to each image
        groups.append(f"    {stage.name!r}: lambda outputs, values: {call},")
        calls += [
            f"    if until == {stage.name!r}:",
            "        return outputs",
            f"    outputs[{stage.name!r}] = given[{stage.name!r}]",
        ]
    channels = pipeline.to_dict().get("channels")
    constants += [
        f"CHANNELS = {channels!r}",
        f"SAVED_STAGES = {pipeline.saved_stages!r}",
        f"TABLE_STAGES = {pipeline.table_stages!r}",
    ]
    if pipeline.channels:
        first = f"{{{INPUT!r}: images[{pipeline.channels[0].name!r}], **images}}"
        cleanup = [f"    for name in {pipeline.input_names!r}:", "        del outputs[name]"]
    else:
        first, cleanup = "dict(images)", [f"    del outputs[{INPUT!r}]"]
    process = [
        "def process(images, spacing=None, values=None, given=None, until=None):",
        '    """Every stage on one field: {stage name: output}.',
        "",
        "    ``images`` holds the field's channels by name (or ``input``); ``spacing`` is its",
        "    pixel size, (z, y, x) or (y, x) in micrometres, None when the file has none;",
        "    ``values`` the parameter values of its row of the parameter table, by",
        "    'stage.param' (the others are the pipeline's); ``given`` the results of its",
        "    groups, by group stage; ``until`` a group stage to stop before.",
        '    """',
        "    values = values or {}",
        f"    outputs = {first}",
        *calls,
        *cleanup,
        "    return outputs",
    ]
    learnt = "\n".join(["#: each group stage, run on a group's images", "GROUP_FUNCTIONS = {", *groups, "}"])
    return "\n".join(constants), [*functions, "\n".join(process), learnt], names


def _stage_spec(stage: StageConfig, callee: str, bundle: Bundle) -> tuple[dict[str, str], str | None]:
    """What the script checks a stage's values by: each parameter's type as the script
    writes it, and the stage's check (None without one)."""
    spec = stage.spec
    kinds = {name: _type_code(spec.params[name].annotation, bundle) for name in stage.params}
    if spec.check is None:
        return kinds, None
    function = inspect.unwrap(spec.function)
    if callee.startswith("user_"):  # the user's function, imported by the script, carries it
        return kinds, f"{callee}.__stage_info__['check']"
    source = textwrap.dedent(inspect.getsource(function))
    definition = ast.parse(source).body[0]
    assert isinstance(definition, ast.FunctionDef)
    for decorator in definition.decorator_list:
        for keyword in getattr(decorator, "keywords", ()):
            if keyword.arg == "check":
                text = ast.get_source_segment(source, keyword.value) or ""
                return kinds, bundle.expression(text, sys.modules[function.__module__])
    raise RuntimeError(f"stage {spec.name}: its check is not given in its decorator")


def _type_code(annotation: Any, bundle: Bundle) -> str:
    """A parameter's annotation as the script writes it, for ``check_param``; one it
    cannot check (a class of the user's, a string) is ``Any``, which it checks alike."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    simple = next((kind for kind in (float, int, bool, str, type(None)) if annotation is kind), None)
    if simple is not None:
        return "None" if simple is type(None) else simple.__name__
    if annotation is Ellipsis:
        return "..."
    if origin is typing.Literal:
        return f"{bundle.library('typing', 'Literal')}[{', '.join(map(_literal_value, arguments))}]"
    if origin in (typing.Union, types.UnionType):
        return f"{bundle.library('typing', 'Union')}[{', '.join(_type_code(a, bundle) for a in arguments)}]"
    if origin in (list, tuple) and arguments:
        return f"{origin.__name__}[{', '.join(_type_code(a, bundle) for a in arguments)}]"
    return bundle.library("typing", "Any")


def _literal_value(value: Any) -> str:
    text = repr(value)
    if ast.literal_eval(text) != value:
        raise TypeError(f"cannot write {text} into the exported script; expected a literal value")
    return text


def _exported_pipeline(
    pipeline: Pipeline,
    specs: dict[str, tuple[dict[str, str], str | None]],
    constants: dict[str, str],
    exported: tuple[str, str],
) -> str:
    """``PIPELINE``: every stage with its parameters (their constants), their types and its
    check, as ``ExportedStage(name, function, params, types, connected, check)``."""
    lines = [
        "#: every parameter with its value, its type and its stage's check",
        f"PIPELINE = {exported[0]}([",
    ]
    for stage in pipeline.stages:
        kinds, check = specs[stage.name]
        params = ", ".join(f"{name!r}: {constants[f'{stage.name}.{name}']}" for name in stage.params)
        kind_text = ", ".join(f"{name!r}: {kind}" for name, kind in kinds.items())
        arguments = [repr(stage.name), repr(stage.function), f"{{{params}}}", f"{{{kind_text}}}"]
        arguments += [repr(tuple(stage.inputs))] + ([check] if check else [])
        arguments += [f"inputs={stage.inputs!r}"]
        arguments += [f"group_by={stage.group_by!r}"] if stage.group_by is not None else []
        lines.append(f"    {exported[1]}({', '.join(arguments)}),")
    return "\n".join([*lines, "])"])


def _copied_blocks(bundle: Bundle) -> list[str]:
    """The copied definitions, one block per module (the stages' first), in source order."""
    modules = sorted(dict.fromkeys(bundle.modules.values()), key=lambda m: ".stages." not in m)
    blocks = []
    for module in modules:
        names = [name for name, where in bundle.modules.items() if where == module]
        names.sort(key=lambda name: inspect.getsourcelines(bundle.names[name])[1])
        blocks.append(_block(f"as in {module.replace('.', '/')}.py", [bundle.definitions[n] for n in names]))
    return blocks


def _block(title: str, items: list[str]) -> str:
    """A section of the script: a title line, then its items two blank lines apart."""
    line = f"# -- {title} "
    return line + "-" * (88 - len(line)) + "\n" + "\n\n\n".join(item.strip("\n") for item in items)


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
