"""Each core stage as a magicgui widget: pick layers, set parameters, get a result layer.

``make_stage_widget(name)`` builds the widget for any stage of the catalogue; the
``<stage>_widget`` functions are what the npe2 manifest names. To add a stage to napari,
write ``def median_widget() -> FunctionGui: return make_stage_widget("median")`` and
give it a command, a widget and a menu entry in ``napari.yaml``.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import numpy as np
import pandas as pd
from magicgui import magicgui
from magicgui.widgets import FunctionGui
from napari.layers import Image, Labels, Layer
from napari.utils.notifications import show_info
from napari.viewer import Viewer

from ..core.stages import StageSpec, get_stage

__all__ = ["gaussian_widget", "make_stage_widget", "result_layer_name"]

# napari layer type offered for each kind of data argument
_LAYER_TYPES: dict[str, type[Layer]] = {"image": Image, "labels": Labels}


def result_layer_name(layer_name: str, stage_name: str) -> str:
    """Name of the layer that shows ``stage_name`` applied to ``layer_name``."""
    return f"{layer_name} {stage_name}"


def make_stage_widget(stage_name: str) -> FunctionGui:
    """Build the widget for the stage called ``stage_name``.

    The widget has one layer chooser per data argument of the stage, one field per
    parameter (with the stage's default), and a Run button. Running it calls the core
    stage on the chosen layers' data and shows the output in the viewer: an image in an
    Image layer, a mask or labels in a Labels layer, named ``"<input layer> <stage>"``
    and updated in place on the next run; a table becomes the features of the Labels
    layer it measured. Called from Python, the widget returns that layer (or the table).

    Parameters
    ----------
    stage_name : str
        A built-in stage (``'gaussian'``) or a function reference
        (``'package.module:function'``).

    Raises
    ------
    PipelineError
        If there is no such stage.
    """
    spec = get_stage(stage_name)
    signature = _widget_signature(spec)

    def run(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs).arguments
        viewer = arguments.pop("viewer")
        layers: dict[str, Layer | None] = {name: arguments.pop(name) for name in spec.data_args}
        source = layers[spec.main_arg]
        if source is None:
            raise ValueError(f"{spec.name}: choose a layer for {spec.main_arg!r}")
        data = {name: None if layer is None else layer.data for name, layer in layers.items()}
        result = spec.function(**data, **arguments)
        return _show_result(viewer, spec, result, source, layers)

    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__name__ = spec.name.rpartition(":")[2]
    run.__doc__ = spec.doc  # magicgui turns its parameter section into tooltips
    return magicgui(run, call_button=f"Run {run.__name__}")


def gaussian_widget() -> FunctionGui:
    """The Gaussian filter stage as a widget."""
    return make_stage_widget("gaussian")


def _widget_signature(spec: StageSpec) -> inspect.Signature:
    """Layers for the data arguments, the stage's own parameters, and the viewer."""
    arguments: list[tuple[str, Any, Any]] = []  # (name, annotation, default)
    for name, data_kind in spec.data_args.items():
        layer_type: Any = _LAYER_TYPES[data_kind]
        if name in spec.optional_data:
            # a nullable layer chooser
            arguments.append((name, Optional[layer_type], None))  # noqa: UP045
        else:
            arguments.append((name, layer_type, inspect.Parameter.empty))
    arguments += [(p.name, p.annotation, p.default) for p in spec.params.values()]
    # napari fills a Viewer argument with the viewer holding the widget; magicgui hides it
    arguments.append(("viewer", Viewer, inspect.Parameter.empty))

    # arguments without a default may not follow one with a default, except keyword-only
    parameters: list[inspect.Parameter] = []
    keyword_only = False
    for name, annotation, default in arguments:
        if default is inspect.Parameter.empty and any(p.default is not p.empty for p in parameters):
            keyword_only = True
        kind = inspect.Parameter.KEYWORD_ONLY if keyword_only else inspect.Parameter.POSITIONAL_OR_KEYWORD
        parameters.append(inspect.Parameter(name, kind, annotation=annotation, default=default))
    return inspect.Signature(parameters)


def _show_result(
    viewer: Viewer,
    spec: StageSpec,
    result: Any,
    source: Layer,
    layers: dict[str, Layer | None],
) -> Any:
    """Put a stage's output in the viewer; return the layer it went to (or the table)."""
    if spec.returns == "table":
        return _show_table(spec, pd.DataFrame(result), source, layers)
    data = np.asarray(result)
    if spec.returns == "image":
        layer_type: type[Layer] = Image
    else:
        layer_type = Labels
        if data.dtype == bool:
            data = data.astype(np.uint8)
    name = result_layer_name(source.name, spec.name)
    if name in viewer.layers and isinstance(viewer.layers[name], layer_type):
        layer = viewer.layers[name]
        layer.data = data
        if isinstance(layer, Image):
            layer.reset_contrast_limits()
        return layer
    return viewer.add_layer(layer_type(data, name=name, scale=source.scale, translate=source.translate))


def _show_table(
    spec: StageSpec, table: pd.DataFrame, source: Layer, layers: dict[str, Layer | None]
) -> pd.DataFrame:
    """Attach a measurement table to the Labels layer it describes, and say so."""
    target = next((layer for layer in layers.values() if isinstance(layer, Labels)), None)
    if target is None:
        source.metadata[spec.name] = table
        show_info(f"{spec.name}: {len(table)} rows, stored in the metadata of {source.name!r}")
        return table
    features = table.copy()
    if "label" in features and "index" not in features:
        # napari matches a Labels layer's feature rows to label values by 'index'
        features.insert(0, "index", features["label"])
    target.features = features
    show_info(f"{spec.name}: {len(table)} objects measured, features of {target.name!r}")
    return table
