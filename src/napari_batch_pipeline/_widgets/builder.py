"""The *Pipeline builder*: put a chain of stages together on one image and watch every output.

Stages are added from the catalogue, removed and moved; each shows its parameter
fields. Run computes the chain on the chosen image layer in a thread worker and shows
each stage's output as a layer named after the stage (labels for masks and labels).
A change of a parameter re-runs after a pause of 300 ms; unchanged upstream outputs
come from a :class:`~napari_batch_pipeline.core.cache.StageCache`, and a run that a
newer one supersedes stops and is ignored. Test mode runs the chain on a second image
too, its layers suffixed with that image's name and shown beside the first.

The pipeline is saved and loaded as a pipeline file; the Batch processing widget runs
the builder's current pipeline when it has no file.

From Python::

    builder = PipelineBuilder(viewer)
    builder.add_stage("gaussian", params={"sigma": 1.5})
    builder.add_stage("threshold")
    builder.add_stage("label")
    worker = builder.run()
    panel = builder.open_sweep()                 # try a range of values of one parameter
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, PushButton
from napari.layers import Image, Labels, Layer
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error
from napari.viewer import Viewer
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QFileDialog, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from ..core.cache import StageCache
from ..core.errors import PipelineError
from ..core.export import export_script
from ..core.pipeline import Pipeline
from ..core.stages import STAGES, get_stage
from .stage_panel import StagePanel

if TYPE_CHECKING:
    from .sweep import SweepPanel

__all__ = ["DEBOUNCE_MS", "PipelineBuilder", "builder_pipeline"]

#: pause after the last change before the chain re-runs
DEBOUNCE_MS = 300

_BUILDERS: weakref.WeakSet[PipelineBuilder] = weakref.WeakSet()


def builder_pipeline(viewer: Any = None) -> Pipeline | None:
    """The current pipeline of an open builder (of ``viewer``, if given), or None.

    None too when the builder has no stages or its pipeline is invalid.
    """
    target = _unwrap(viewer) if viewer is not None else None
    for builder in sorted(_BUILDERS, key=lambda b: b.created, reverse=True):
        if target is not None and _unwrap(builder.viewer) is not target:
            continue
        try:
            return builder.pipeline()
        except PipelineError:
            continue
    return None


class PipelineBuilder(QWidget):
    """Build and tune a pipeline on an image layer.

    Parameters
    ----------
    napari_viewer : napari.Viewer

    Attributes
    ----------
    image, second_image : ComboBox
        The image layer the chain runs on, and the second one of test mode.
    test_mode, auto_run : CheckBox
    stage_choice : ComboBox
        The stage function Add appends.
    panels : list of StagePanel
        The stages, in order.
    output_layers : dict of (int, str) to Layer
        The layer of each (image number, stage name): 0 for ``image``, 1 for ``second_image``.
    tables : dict of (int, str) to DataFrame
        The outputs of table stages.
    worker : GeneratorWorker or None
        The worker of the latest run.

    Emits ``run_finished(seconds)`` when a run that was not superseded has ended
    (``seconds`` is None after an error).
    """

    run_finished = Signal(object)

    def __init__(self, napari_viewer: Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.created = time.monotonic()
        self.pipeline_name = LineEdit(value="pipeline", label="pipeline name")
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.test_mode = CheckBox(value=False, text="test mode: also run on")
        self.second_image = ComboBox(label="second image", choices=self._image_choices, nullable=True)
        self.stage_choice = ComboBox(label="stage", choices=sorted(STAGES))
        self.add_button = PushButton(text="Add stage")
        self.run_button = PushButton(text="Run")
        self.auto_run = CheckBox(value=True, text="re-run on change")
        self.save_button = PushButton(text="Save...")
        self.load_button = PushButton(text="Load...")
        self.export_button = PushButton(
            text="Export...", tooltip="write a standalone Python script that runs this pipeline over a folder"
        )
        self.sweep_button = PushButton(text="Sweep...", tooltip="try a range of values of a parameter")
        self.status = Label(value="add stages, then Run")
        self.status.native.setWordWrap(True)
        top = Container(
            widgets=[
                self.pipeline_name,
                self.image,
                Container(widgets=[self.test_mode, self.second_image], layout="horizontal", labels=False),
                Container(widgets=[self.stage_choice, self.add_button], layout="horizontal", labels=False),
            ]
        )
        bottom = Container(
            widgets=[
                self.run_button,
                self.auto_run,
                self.save_button,
                self.load_button,
                self.export_button,
                self.sweep_button,
            ],
            layout="horizontal",
            labels=False,
        )
        self._stages_widget = QWidget()
        self._stages_layout = QVBoxLayout(self._stages_widget)
        self._stages_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setMinimumHeight(280)  # the stages are the builder's content: claim room in the dock area
        scroll.setWidget(self._stages_widget)
        layout = QVBoxLayout(self)
        for fixed in (top, bottom):  # only the stage list gives up height when the dock is short
            fixed.native.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        layout.addWidget(top.native)
        layout.addWidget(scroll, stretch=1)
        layout.addWidget(bottom.native)
        layout.addWidget(self.status.native)

        self.panels: list[StagePanel] = []
        self.output_layers: dict[tuple[int, str], Layer] = {}
        self.tables: dict[tuple[int, str], pd.DataFrame] = {}
        self.cache = StageCache()
        self.worker: GeneratorWorker | None = None
        self._generation = 0
        self._started = 0.0
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._run_quietly)

        self.add_button.changed.connect(lambda: self.add_stage(self.stage_choice.value))
        self.run_button.changed.connect(self._run_quietly)
        self.save_button.changed.connect(self._on_save_clicked)
        self.load_button.changed.connect(self._on_load_clicked)
        self.export_button.changed.connect(self._on_export_clicked)
        self.sweep_button.changed.connect(self.open_sweep)
        self._sweep_panel: SweepPanel | None = None
        for field in (self.image, self.test_mode, self.second_image):
            field.changed.connect(self.schedule_run)
        self.viewer.layers.events.inserted.connect(self._refresh_images)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        selected = self.viewer.layers.selection.active
        if isinstance(selected, Image):
            self.image.value = selected
        _BUILDERS.add(self)

    # -- the chain ----------------------------------------------------------------------

    def add_stage(
        self,
        function: str,
        name: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        save: bool = False,
    ) -> StagePanel:
        """Append a stage; return its panel.

        Parameters
        ----------
        function : str
            A catalogue stage (``'gaussian'``) or ``'package.module:function'``.
        name : str, optional
            Its name in the pipeline; default: the function's name, made unique.
        params, inputs, save
            As in a pipeline file.
        """
        spec = get_stage(function)
        if name is None:
            base = spec.name.rpartition(":")[2]
            taken = {panel.stage for panel in self.panels}
            name = (
                base
                if base not in taken
                else next(f"{base}_{n}" for n in range(2, 1000) if f"{base}_{n}" not in taken)
            )
        panel = StagePanel(spec, name, params=params, inputs=inputs, save=save)
        panel.up_button.changed.connect(lambda: self.move_stage(self.panels.index(panel), -1))
        panel.down_button.changed.connect(lambda: self.move_stage(self.panels.index(panel), 1))
        panel.remove_button.changed.connect(lambda: self.remove_stage(self.panels.index(panel)))
        panel.changed.connect(self._on_panel_changed)
        self.panels.append(panel)
        self._stages_layout.insertWidget(len(self.panels) - 1, panel.native)
        self._update_sources()
        self.schedule_run()
        return panel

    def remove_stage(self, index: int) -> None:
        """Remove the stage at ``index`` (its layers go at the next run)."""
        panel = self.panels.pop(index)
        self._stages_layout.removeWidget(panel.native)
        panel.native.setParent(None)
        self._update_sources()
        self.schedule_run()

    def move_stage(self, index: int, offset: int) -> None:
        """Move the stage at ``index`` by ``offset`` places (-1: up, 1: down), within bounds."""
        target = min(max(index + offset, 0), len(self.panels) - 1)
        if target == index:
            return
        panel = self.panels.pop(index)
        self.panels.insert(target, panel)
        self._stages_layout.removeWidget(panel.native)
        self._stages_layout.insertWidget(target, panel.native)
        self._update_sources()
        self.schedule_run()

    def clear(self) -> None:
        """Remove every stage."""
        while self.panels:
            self.remove_stage(len(self.panels) - 1)

    def pipeline(self) -> Pipeline:
        """The chain as a validated Pipeline.

        Raises
        ------
        PipelineError
            If there is no stage, or a stage's fields do not make a valid pipeline.
        """
        if not self.panels:
            raise PipelineError("the pipeline has no stage yet; add one")
        return Pipeline(
            [panel.config() for panel in self.panels], name=self.pipeline_name.value or "pipeline"
        )

    def set_pipeline(self, pipeline: Pipeline) -> None:
        """Replace the stages with those of ``pipeline``."""
        with self._debounce_blocked():
            self.clear()
            self.pipeline_name.value = pipeline.name
            for stage in pipeline.stages:
                self.add_stage(
                    stage.function, stage.name, params=stage.params, inputs=stage.inputs, save=stage.save
                )
        self.schedule_run()

    def save(self, path: str | Path) -> Path:
        """Write the pipeline file (whole or not at all)."""
        return self.pipeline().save(path)

    def export_script(self, path: str | Path) -> Path:
        """Write the pipeline as a standalone script (see ``napari-batch-pipeline export-script``)."""
        return export_script(self.pipeline(), path)

    def load(self, path: str | Path) -> Pipeline:
        """Load a pipeline file into the builder."""
        pipeline = Pipeline.from_yaml(path)
        self.set_pipeline(pipeline)
        return pipeline

    def open_sweep(self) -> SweepPanel:
        """Dock the parameter sweep panel of this builder (one per builder) and return it."""
        from .sweep import SweepPanel

        panel = self._sweep_panel if self._sweep_panel is not None else SweepPanel(self)
        if panel.parent() is None:  # new, or its dock was closed
            self.viewer.window.add_dock_widget(panel, name="Parameter sweep", area="right")
        self._sweep_panel = panel
        panel.refresh()
        return panel

    def _update_sources(self) -> None:
        earlier: list[tuple[str, str]] = []
        for panel in self.panels:
            panel.set_sources(earlier)
            earlier.append((panel.stage, panel.spec.returns))

    def _on_panel_changed(self) -> None:
        self._update_sources()  # a renamed stage renames the choices after it
        self.schedule_run()

    # -- running ------------------------------------------------------------------------

    def schedule_run(self) -> None:
        """Re-run after a pause (restarted by every change), if re-run on change is on."""
        if self.auto_run.value and self.panels and self.image.value is not None:
            self._debounce.start()

    def run(self) -> GeneratorWorker:
        """Run the chain on the image (and the second image in test mode) in a worker.

        Outputs of stages whose configuration and upstream are unchanged are reused.
        A running chain is superseded: it stops before its next stage and is ignored.

        Raises
        ------
        PipelineError
            If the pipeline is invalid or no image layer is chosen.
        """
        self._debounce.stop()
        pipeline = self.pipeline()
        layers = self._input_layers()
        self._generation += 1
        generation = self._generation
        if self.worker is not None:
            self.worker.quit()
        images = [(_image_key(layer), np.asarray(layer.data)) for layer in layers]
        worker = create_worker(
            _run_chain,
            pipeline,
            images,
            self.cache,
            lambda: self._generation != generation,
            _ignore_errors=True,
        )
        worker.yielded.connect(partial(self._on_output, generation, pipeline, layers))
        worker.errored.connect(partial(self._on_error, generation))
        worker.finished.connect(partial(self._on_run_done, generation, pipeline, len(layers)))
        self.worker = worker
        self._started = time.perf_counter()
        self.status.value = "running..."
        worker.start()
        return worker

    def _run_quietly(self) -> None:
        try:
            self.run()
        except PipelineError as error:
            self.status.value = str(error)

    def _input_layers(self) -> list[Layer]:
        first = self.image.value
        if first is None:
            raise PipelineError("choose an image layer to run on")
        layers = [first]
        second = self.second_image.value
        if self.test_mode.value and second is not None and second is not first:
            layers.append(second)
        return layers

    def _on_output(
        self, generation: int, pipeline: Pipeline, sources: list[Layer], item: tuple[int, str, Any, bool]
    ) -> None:
        if generation != self._generation:
            return  # superseded
        index, name, output, reused = item
        key = (index, name)
        if pipeline[name].returns == "table":
            self.tables[key] = output
            self._attach_table(index, pipeline, name, output)
            return
        layer = self.output_layers.get(key)
        if reused and layer is not None and layer in self.viewer.layers:
            return
        self._show(key, pipeline[name].returns, output, sources)

    def _show(self, key: tuple[int, str], kind: str, data: np.ndarray, sources: list[Layer]) -> None:
        index, name = key
        source = sources[index]
        layer_name = name if index == 0 else f"{name} [{source.name}]"
        translate = np.asarray(source.translate, dtype=float)
        if index > 0:  # test mode: beside the first image
            translate[-1] += np.asarray(sources[0].data).shape[-1] * 1.1
        layer_type: type[Layer] = Image if kind == "image" else Labels
        if kind == "mask":
            data = data.astype(np.uint8)
        layer = self.output_layers.get(key)
        if layer is not None and layer in self.viewer.layers and isinstance(layer, layer_type):
            layer.data = data
            layer.name = layer_name
            layer.translate = translate
            if isinstance(layer, Image):
                layer.reset_contrast_limits()
            return
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)
        new = layer_type(data, name=layer_name, scale=source.scale, translate=translate)
        self.output_layers[key] = self.viewer.add_layer(new)

    def _attach_table(self, index: int, pipeline: Pipeline, name: str, table: pd.DataFrame) -> None:
        """A measurement table becomes the features of the labels layer it measured."""
        labels_source = next(
            (
                src
                for arg, src in pipeline[name].inputs.items()
                if pipeline[name].spec.data_args[arg] == "labels"
            ),
            None,
        )
        layer = self.output_layers.get((index, labels_source)) if labels_source else None
        if isinstance(layer, Labels):
            features = table.copy()
            if "label" in features and "index" not in features:
                features.insert(0, "index", features["label"])
            layer.features = features

    def _on_error(self, generation: int, error: Exception) -> None:
        if generation != self._generation:
            return
        self.status.value = f"error: {error}"
        show_error(str(error))
        self.run_finished.emit(None)

    def _on_run_done(self, generation: int, pipeline: Pipeline, n_images: int) -> None:
        if generation != self._generation:
            return
        if self.status.value.startswith("error"):
            return
        # drop the layers of stages no longer in the chain, and of an image no longer run
        names = set(pipeline.stage_names)
        for key, layer in list(self.output_layers.items()):
            if key[1] not in names or key[0] >= n_images:
                del self.output_layers[key]
                self.tables.pop(key, None)
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
        seconds = time.perf_counter() - self._started
        self.status.value = f"{len(pipeline)} stage(s) on {n_images} image(s) in {seconds:.2f} s"
        self.run_finished.emit(seconds)

    # -- layers, files ------------------------------------------------------------------

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        ours = set(map(id, self.output_layers.values())) if hasattr(self, "output_layers") else set()
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Image) and id(layer) not in ours
        ]

    def _refresh_images(self, _event: Any = None) -> None:
        for box in (self.image, self.second_image):
            with box.changed.blocked():
                box.reset_choices()

    def _debounce_blocked(self) -> Any:
        return _Blocked(self)

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save pipeline", "pipeline.yaml", "Pipeline (*.yaml *.yml)"
        )
        if path:
            try:
                self.save(path)
                self.status.value = f"saved {path}"
            except PipelineError as error:
                self.status.value = str(error)
                show_error(str(error))

    def _on_export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export pipeline as a Python script", "pipeline_script.py", "Python (*.py)"
        )
        if path:
            try:
                self.export_script(path)
                self.status.value = f"exported {path}: python {Path(path).name} INPUT_DIR OUTPUT_DIR"
            except PipelineError as error:
                self.status.value = str(error)
                show_error(str(error))

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load pipeline", "", "Pipeline (*.yaml *.yml)")
        if path:
            try:
                self.load(path)
                self.status.value = f"loaded {path}"
            except PipelineError as error:
                self.status.value = str(error)
                show_error(str(error))


class _Blocked:
    """Within: changes do not schedule runs (loading a pipeline changes every field)."""

    def __init__(self, builder: PipelineBuilder):
        self.builder = builder
        self.auto = False

    def __enter__(self) -> None:
        self.auto = self.builder.auto_run.value
        self.builder.auto_run.value = False

    def __exit__(self, *exc: object) -> None:
        self.builder.auto_run.value = self.auto


def _run_chain(
    pipeline: Pipeline, images: list[tuple[str, np.ndarray]], cache: StageCache, superseded: Any
) -> Iterator[tuple[int, str, Any, bool]]:
    """The worker's generator: (image number, stage, output, reused) for every stage of every image."""
    for index, (key, image) in enumerate(images):
        for name, output, reused in cache.run(pipeline, image, key, stop=superseded):
            yield index, name, output, reused
        if superseded():
            return


def _image_key(layer: Layer) -> str:
    """Identifies a layer's current data for the cache (new data, new key)."""
    return f"{id(layer)}:{id(layer.data)}"


def _unwrap(obj: Any) -> Any:
    """The object behind napari's public-only proxy of a plugin's viewer."""
    return getattr(obj, "__wrapped__", obj)
