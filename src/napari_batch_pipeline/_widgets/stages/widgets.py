"""Each core stage as a magicgui widget: pick layers, set parameters, get a result layer.

``make_stage_widget(name)`` builds the widget for any stage of the catalogue; the
``<stage>_widget`` functions are what the npe2 manifest names (one command, one widget
and one Layers-menu entry per built-in stage in ``napari.yaml``).

The Run button computes in a napari thread worker, so the viewer stays responsive;
calling the widget from Python (``widget(sigma=3)``) computes in the calling thread
and returns the result layer, as a script expects.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd
from magicgui.widgets import FunctionGui
from napari.layers import Image, Labels, Layer
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from napari.viewer import Viewer

from ..._layer_steps import as_features
from ...core.stages import SPACING_ARG, StageSpec, get_stage
from .outputs import OUTPUT_KIND, is_mask, mask_warning
from .param_fields import param_annotation

__all__ = [
    "BUILTIN_WIDGETS",
    "StageWidget",
    "binary_opening_widget",
    "expand_labels_widget",
    "fill_holes_widget",
    "filter_objects_widget",
    "gaussian_widget",
    "image_quality_widget",
    "label_widget",
    "make_stage_widget",
    "measure_widget",
    "median_widget",
    "object_classifier_widget",
    "param_annotation",
    "pixel_classifier_widget",
    "remove_small_objects_widget",
    "rescale_intensity_widget",
    "result_layer_name",
    "threshold_widget",
    "voronoi_otsu_labeling_widget",
    "watershed_widget",
    "white_tophat_widget",
]

# napari layer type offered for each kind of data argument
_LAYER_TYPES: dict[str, type[Layer]] = {"image": Image, "labels": Labels}


def result_layer_name(layer_name: str, stage_name: str) -> str:
    """Name of the layer that shows ``stage_name`` applied to ``layer_name``."""
    return f"{layer_name} {stage_name}"


@dataclass
class _StageCall:
    """One run of a stage: its inputs taken from the layers, and where the output goes."""

    viewer: Viewer
    spec: StageSpec
    data: dict[str, Any]
    params: dict[str, Any]
    source: Layer
    layers: dict[str, Layer | None]

    def compute(self) -> Any:
        """The core stage on the layers' data; safe to call from a worker thread."""
        if self.spec.check is not None:  # in the widget's words: a layer to choose, not an input
            problem = self.spec.check(
                self.params, {n for n, layer in self.layers.items() if layer is not None}
            )
            if problem:
                raise ValueError(_INPUTS.sub(lambda m: f"choose a layer for {m[1]!r}", problem))
        return self.spec.function(**self.data, **self.params)

    def show(self, result: Any) -> Any:
        """Put the output in the viewer (main thread); return its layer or the table."""
        return _show_result(self.viewer, self.spec, result, self.source, self.layers)


class StageWidget(FunctionGui):
    """The widget of one stage; see :func:`make_stage_widget`.

    Attributes
    ----------
    spec : StageSpec
        The stage.
    worker : FunctionWorker or None
        The worker of the last click on Run (or :meth:`start`).
    """

    def __init__(self, spec: StageSpec):
        signature = _widget_signature(spec)

        def run(*args: Any, **kwargs: Any) -> Any:
            call = _prepare(spec, signature.bind(*args, **kwargs).arguments)
            return call.show(call.compute())

        run.__signature__ = signature  # type: ignore[attr-defined]
        run.__name__ = spec.name.rpartition(":")[2]
        run.__doc__ = spec.doc  # magicgui turns its parameter section into tooltips
        super().__init__(run, call_button=f"Run {run.__name__}")
        self.spec = spec
        self.worker: FunctionWorker | None = None
        # the button runs the stage in a thread worker instead of in the event loop
        button = self.call_button
        assert button is not None
        button.changed.disconnect()
        button.changed.connect(self._on_run_clicked)

    def reset_choices(self, *args: Any) -> None:
        """Refresh the layer choosers; an optional image chooser the stage's defaults need
        (measure's intensity, for ``intensity_mean``) takes the first image layer; a labels
        chooser showing a mask (a threshold's 0/1 output) takes the newest labels layer."""
        super().reset_choices(*args)
        for name, kind in self.spec.data_args.items():
            box = self.__getitem__(name)  # by name: ``labels`` is also a Container property
            if kind == "labels" and name != "mask" and is_mask(box.value):
                labels = [c for c in box.choices if isinstance(c, Labels) and not is_mask(c)]
                if labels:
                    box.value = labels[-1]
        check, defaults = self.spec.check, self.spec.defaults()
        for name in self.spec.optional_data:
            box = getattr(self, name, None)
            if box is None or box.value is not None or check is None:
                continue
            without = check(defaults, set(self.spec.data_args) - {name})
            images = [c for c in box.choices if isinstance(c, Image)]
            if without and images and not check(defaults, set(self.spec.data_args)):
                box.value = images[0]

    def _on_run_clicked(self) -> None:
        """Run; a layer not chosen is said in plain words, never as a traceback."""
        try:
            self.start()
        except ValueError as error:
            show_error(str(error))

    def start(self) -> FunctionWorker:
        """Run the stage with the current values in a thread worker; return the worker.

        The output layer is added (or updated) when the worker returns, then ``called``
        is emitted with it, as after a direct call; an error becomes a napari
        notification.

        Raises
        ------
        ValueError
            If a layer the stage needs is not chosen (nothing is started then).
        """
        bound = self.__signature__.bind()
        bound.apply_defaults()
        call = _prepare(self.spec, dict(bound.arguments))
        worker = create_worker(call.compute, _ignore_errors=True)
        worker.returned.connect(lambda result: self.called.emit(call.show(result)))
        worker.errored.connect(lambda error: show_error(f"{self.spec.name}: {error}"))
        button = self.call_button
        if button is not None:
            button.enabled = False
            worker.finished.connect(lambda: setattr(button, "enabled", True))
        self.worker = worker
        worker.start()
        return worker


def make_stage_widget(stage_name: str) -> StageWidget:
    """Build the widget for the stage called ``stage_name``.

    The widget has one layer chooser per data argument of the stage, one field per
    parameter (with the stage's default), and a Run button. Running it calls the core
    stage on the chosen layers' data and shows the output in the viewer: an image in an
    Image layer, a mask or labels in a Labels layer, named ``"<input layer> <stage>"``
    and updated in place on the next run; a table becomes the features of the Labels
    layer it measured. The button computes in a thread worker; called from Python, the
    widget computes at once and returns that layer (or the table).

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
    return StageWidget(get_stage(stage_name))


def gaussian_widget() -> StageWidget:
    """The Gaussian filter stage as a widget."""
    return make_stage_widget("gaussian")


def median_widget() -> StageWidget:
    """The median filter stage as a widget."""
    return make_stage_widget("median")


def rescale_intensity_widget() -> StageWidget:
    """The intensity rescaling stage as a widget."""
    return make_stage_widget("rescale_intensity")


def white_tophat_widget() -> StageWidget:
    """The white top-hat (background subtraction) stage as a widget."""
    return make_stage_widget("white_tophat")


def threshold_widget() -> StageWidget:
    """The threshold stage as a widget."""
    return make_stage_widget("threshold")


def remove_small_objects_widget() -> StageWidget:
    """The small-object removal stage as a widget."""
    return make_stage_widget("remove_small_objects")


def binary_opening_widget() -> StageWidget:
    """The binary opening stage as a widget."""
    return make_stage_widget("binary_opening")


def fill_holes_widget() -> StageWidget:
    """The hole filling stage as a widget."""
    return make_stage_widget("fill_holes")


def label_widget() -> StageWidget:
    """The connected-component labelling stage as a widget."""
    return make_stage_widget("label")


def voronoi_otsu_labeling_widget() -> StageWidget:
    """The Voronoi-Otsu labelling stage as a widget."""
    return make_stage_widget("voronoi_otsu_labeling")


def watershed_widget() -> StageWidget:
    """The seeded watershed stage as a widget."""
    return make_stage_widget("watershed")


def expand_labels_widget() -> StageWidget:
    """The label expansion stage as a widget."""
    return make_stage_widget("expand_labels")


def measure_widget() -> StageWidget:
    """The measurement stage as a widget."""
    return make_stage_widget("measure")


def illumination_widget() -> StageWidget:
    """The illumination function stage as a widget: on one image layer, a group of one
    (a batch learns it from every image of a group)."""
    return make_stage_widget("illumination")


def correct_illumination_widget() -> StageWidget:
    """The illumination correction stage as a widget."""
    return make_stage_widget("correct_illumination")


def filter_objects_widget() -> StageWidget:
    """The object filter (by size, shape or intensity) as a widget."""
    return make_stage_widget("filter_objects")


def pixel_classifier_widget() -> StageWidget:
    """The pixel classifier (a random forest from a training file) as a widget."""
    return make_stage_widget("pixel_classifier")


def object_classifier_widget() -> StageWidget:
    """The object classifier (a random forest over measurements) as a widget."""
    return make_stage_widget("object_classifier")


def image_quality_widget() -> StageWidget:
    """The image quality measurement as a widget."""
    return make_stage_widget("image_quality")


#: The manifest's widget factory of each built-in stage, by stage name.
BUILTIN_WIDGETS = {
    "gaussian": gaussian_widget,
    "median": median_widget,
    "rescale_intensity": rescale_intensity_widget,
    "white_tophat": white_tophat_widget,
    "threshold": threshold_widget,
    "remove_small_objects": remove_small_objects_widget,
    "binary_opening": binary_opening_widget,
    "fill_holes": fill_holes_widget,
    "label": label_widget,
    "voronoi_otsu_labeling": voronoi_otsu_labeling_widget,
    "watershed": watershed_widget,
    "expand_labels": expand_labels_widget,
    "measure": measure_widget,
    "illumination": illumination_widget,
    "correct_illumination": correct_illumination_widget,
    "filter_objects": filter_objects_widget,
    "image_quality": image_quality_widget,
    "pixel_classifier": pixel_classifier_widget,
    "object_classifier": object_classifier_widget,
}


def _prepare(spec: StageSpec, arguments: dict[str, Any]) -> _StageCall:
    """Split bound widget arguments into the viewer, the layers and the parameters."""
    arguments = dict(arguments)
    viewer = arguments.pop("viewer")
    layers: dict[str, Layer | None] = {name: arguments.pop(name) for name in spec.data_args}
    source = layers[spec.main_arg]
    if source is None:
        raise ValueError(f"{spec.name}: choose a layer for {spec.main_arg!r}")
    for name, layer in layers.items():  # runs, and means nothing: say so
        if spec.data_args[name] == "labels" and name != "mask" and layer is not None and is_mask(layer):
            show_warning(mask_warning(spec.name, name, layer.name))
    data = {name: None if layer is None else layer.data for name, layer in layers.items()}
    if spec.takes_spacing:
        data[SPACING_ARG] = _layer_spacing(layers, source)
    return _StageCall(viewer, spec, data, arguments, source, layers)


#: the pipeline file's words for a data argument to connect (``add inputs: {intensity: input}``)
_INPUTS = re.compile(r"add inputs: \{(\w+): [^}]*\}")


def _layer_spacing(layers: dict[str, Layer | None], source: Layer) -> tuple[float, ...]:
    """The pixel size a stage's ``spacing`` gets: the scale of its Labels layer (else its source).

    A layer's scale is its pixel size, as the reader sets it from the file.
    """
    layer = next((layer for layer in layers.values() if isinstance(layer, Labels)), source)
    return tuple(float(size) for size in layer.scale[-layer.ndim :])


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
    arguments += [(p.name, param_annotation(p, spec), p.default) for p in spec.params.values()]
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
    if spec.returns == "image" or not (data.dtype == bool or np.issubdtype(data.dtype, np.integer)):
        layer_type: type[Layer] = Image  # a classifier's probability is an image too
    else:
        layer_type = Labels
        if data.dtype == bool:
            data = data.astype(np.uint8)
    name = result_layer_name(source.name, spec.name)
    if name in viewer.layers and isinstance(viewer.layers[name], layer_type):
        layer = viewer.layers[name]
        layer.data = data
        layer.metadata[OUTPUT_KIND] = spec.returns
        if isinstance(layer, Image):
            layer.reset_contrast_limits()
        return layer
    metadata = {OUTPUT_KIND: spec.returns}
    layer = layer_type(data, name=name, scale=source.scale, translate=source.translate, metadata=metadata)
    return viewer.add_layer(layer)


def _show_table(
    spec: StageSpec, table: pd.DataFrame, source: Layer, layers: dict[str, Layer | None]
) -> pd.DataFrame:
    """Attach a measurement table to the Labels layer it describes, and say so."""
    target = next((layer for layer in layers.values() if isinstance(layer, Labels)), None)
    if target is None:
        source.metadata[spec.name] = table
        show_info(f"{spec.name}: {len(table)} rows, stored in the metadata of {source.name!r}")
        return table
    target.features = as_features(table)  # napari matches feature rows to labels by 'index'
    show_info(f"{spec.name}: {len(table)} objects measured, features of {target.name!r}")
    return table
