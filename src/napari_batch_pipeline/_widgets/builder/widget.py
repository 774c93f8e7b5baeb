"""The *Pipeline builder*: put a chain of stages together on one image and watch every output.

A view of the viewer's tuning session (:func:`.session.session_for`): its stages are
shown and edited in a :class:`.stage_panel.StageList`, and every change of
the session re-runs the chain after a pause of 300 ms, in a thread worker, on the chosen
image layer (and a second one in test mode, shown beside the first). A (Z, Y, X) layer
runs the chain in 3D. When the pipeline names channels, a :class:`.channel_map.ChannelMap`
takes each from a layer or from a channel of a multi-channel layer. The layer's scale is
the pixel size stages get as ``spacing``. Each stage's output becomes a layer named
after the stage (:class:`.chain_layers.ChainLayers`); unchanged upstream outputs come
from the session's cache, and a superseded run stops and is ignored. A pixel classifier
stage gets a training layer to paint on (:class:`.training_layers.TrainingLayers`). The
Batch processing widget of the same viewer runs this pipeline when it has no file.

From Python::

    builder = PipelineBuilder(viewer)
    builder.set_channels({"dna": 0, "cyto": 1})  # optional: channels of the image, by index
    builder.add_stage("gaussian", params={"sigma": 1.5}, inputs={"image": "dna"})
    builder.add_stage("threshold")
    builder.add_stage("label")
    worker = builder.run()
    builder.add_stage("pixel_classifier")        # paint its "training" layer: it retrains
    panel = builder.open_sweep()                 # try a range of values of one parameter
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, PushButton
from napari.layers import Image, Layer
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error, show_warning
from napari.viewer import Viewer
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QFileDialog, QSizePolicy, QWidget

from ...core.errors import PipelineError
from ...core.export.script import export_script
from ...core.pipeline.model import Pipeline
from ...core.stages import STAGES
from ...core.tuning.image import group_images, missing_channels, second_sources, tuning_image
from ...core.tuning.session import ChainRun
from ..sweep.panel import SWEEP_METADATA, SweepPanel
from ..viewer.dock_layout import scrolling_layout, wrapping
from ..viewer.home import join_home, join_home_later, mark_page, show_page
from ..viewer.session import follow, layer_image, session_for
from ..viewer.workers import generator_worker, unwrapped
from .chain_layers import ChainLayers
from .channel_map import ChannelMap
from .group_preview import group_by_of, group_line, group_of
from .stage_panel import StageList, StagePanel
from .training_layers import TrainingLayers

__all__ = ["DEBOUNCE_MS", "PipelineBuilder"]

#: pause after the last change before the chain re-runs
DEBOUNCE_MS = 300


class PipelineBuilder(QWidget):
    """Build and tune a pipeline on an image layer.

    Parameters
    ----------
    napari_viewer : napari.Viewer

    Attributes
    ----------
    session : TuningSession
        The viewer's session, which this widget shows and edits.
    image, second_image : ComboBox
        The image layer the chain runs on, and the second one of test mode.
    channel_map : ChannelMap
        The pipeline's channels, and the layer (or layer channel) each comes from.
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
        self.session = session_for(napari_viewer)
        self.pipeline_name = LineEdit(value=self.session.name, label="pipeline name")
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
        self._group = "(all open images)"  # the group of the chosen image, for the status
        wrapping(self.status)
        self.chain_layers = ChainLayers(napari_viewer)
        self.training_layers = TrainingLayers(napari_viewer, self.session, self._report)
        self.channel_map = ChannelMap(self.session)
        top = Container(
            widgets=[
                self.pipeline_name,
                self.image,
                Container(widgets=[self.test_mode, self.second_image], layout="horizontal", labels=False),
                self.channel_map,
                Container(widgets=[self.stage_choice, self.add_button], layout="horizontal", labels=False),
            ]
        )
        buttons = [self.run_button, self.auto_run, self.save_button, self.load_button]
        bottom = Container(
            widgets=[*buttons, self.export_button, self.sweep_button], layout="horizontal", labels=False
        )
        self.stage_list = StageList(self.session)
        self.stage_list.setMinimumHeight(280)  # the stages are the builder's content: claim room
        layout = scrolling_layout(self)
        for fixed in (top, bottom):  # only the stage list gives up height when the dock is short
            fixed.native.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        layout.addWidget(top.native)
        layout.addWidget(self.stage_list, stretch=1)
        layout.addWidget(bottom.native)
        layout.addWidget(self.status.native)

        self.worker: GeneratorWorker | None = None
        self._started = 0.0
        self._sweep_panel: SweepPanel | None = None
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._run_quietly)

        self.add_button.changed.connect(self._on_add_clicked)
        self.run_button.changed.connect(self._run_quietly)
        self.auto_run.changed.connect(self._on_auto_run)
        self.save_button.changed.connect(partial(self._file_dialog, "save"))
        self.load_button.changed.connect(partial(self._file_dialog, "load"))
        self.export_button.changed.connect(partial(self._file_dialog, "export_script"))
        self.sweep_button.changed.connect(self.open_sweep)
        self.pipeline_name.changed.connect(self.session.set_name)
        for field in (self.image, self.test_mode, self.second_image):
            field.changed.connect(self._push_images)
        self.channel_map.sources_changed.connect(self._push_images)
        self.viewer.layers.events.inserted.connect(self._refresh_images)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        if isinstance(selected := self.viewer.layers.selection.active, Image):
            self.image.value = selected
        follow(
            self,
            self.session,
            {
                "stages_changed": "schedule_run",
                "stage_changed": "schedule_run",
                "name_changed": "_on_name_changed",
                "images_changed": "schedule_run",
                "channels_changed": "_push_images",  # after the channel map (made first)
            },
        )
        follow(self.training_layers, self.session, {"stages_changed": "refresh", "images_changed": "refresh"})
        self.destroyed.connect(partial(_stop_runs, self.session, self.channel_map))
        mark_page(self, "builder")
        self.schedule_run()  # the session may have stages already
        self._push_images()
        self.training_layers.refresh()

    # -- the chain: edits go into the session, the session's changes come back ----------

    def add_stage(
        self,
        function: str,
        name: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        save: bool = False,
    ) -> StagePanel:
        """Append a stage (``function``: ``'gaussian'`` or ``'package.module:function'``; the
        others as in a pipeline file, the name made unique by default); return its panel."""
        draft = self.session.add_stage(function, name, params=params, inputs=inputs, save=save)
        return self.stage_list.panel_of(draft)

    def set_channels(self, channels: dict[str, Any] | None) -> None:
        """Name the channels of the image (a pipeline file's ``channels:``, e.g.
        ``{'dna': 0, 'cyto': 1}``; None: none); stages take the names as inputs."""
        self.session.set_channels(channels)

    @property
    def output_layers(self) -> dict[tuple[int, str], Layer]:
        """The layer of each (image number, stage name): 0 for ``image``, 1 for ``second_image``."""
        return self.chain_layers.layers

    @property
    def tables(self) -> dict[tuple[int, str], pd.DataFrame]:
        """The outputs of table stages, by (image number, stage name)."""
        return self.chain_layers.tables

    @property
    def panels(self) -> list[StagePanel]:
        """The stages' panels, in order."""
        return self.stage_list.panels

    def remove_stage(self, index: int) -> None:
        """Remove the stage at ``index`` (its layers go at the next run)."""
        self.session.remove_stage(index)

    def move_stage(self, index: int, offset: int) -> None:
        """Move the stage at ``index`` by ``offset`` places (-1: up, 1: down), within bounds."""
        self.session.move_stage(index, offset)

    def clear(self) -> None:
        """Remove every stage."""
        self.session.clear()

    def pipeline(self) -> Pipeline:
        """The chain as a validated Pipeline; PipelineError if empty or invalid."""
        return self.session.pipeline()

    def set_pipeline(self, pipeline: Pipeline) -> None:
        """Replace the stages with those of ``pipeline``."""
        self.session.set_pipeline(pipeline)

    def save(self, path: str | Path) -> Path:
        """Write the pipeline file (whole or not at all), and beside it the training file of
        each classifier stage trained by painting."""
        pipeline = self.pipeline()
        self.training_layers.save(Path(path).expanduser().resolve().parent)
        return pipeline.save(path)

    def export_script(self, path: str | Path) -> Path:
        """Write the pipeline as a standalone script (see ``napari-batch-pipeline export-script``)."""
        return export_script(self.pipeline(), path)

    def load(self, path: str | Path) -> Pipeline:
        """Load a pipeline file into the builder."""
        pipeline = Pipeline.from_yaml(path)
        pipeline.train()  # classifiers: their forests from their files beside it, for the preview
        self.set_pipeline(pipeline)
        return pipeline

    def open_sweep(self) -> SweepPanel:
        """Dock the parameter sweep panel of this builder (one per builder) and return it."""
        panel = self._sweep_panel if self._sweep_panel is not None else SweepPanel(self.session, self.viewer)
        if panel.parent() is None:  # new, or its dock was closed
            self.viewer.window.add_dock_widget(panel, name="Parameter sweep", area="right")
            join_home(panel)
        self._sweep_panel = panel
        show_page(panel)
        panel.refresh()
        return panel

    def showEvent(self, event: Any) -> None:
        join_home_later(self)  # a tab of the plugin's home, when its other pages are open
        super().showEvent(event)

    def _report(self, line: str) -> None:
        self.status.value = line

    def _on_name_changed(self, name: str) -> None:
        if self.pipeline_name.value != name:  # not while typing it: the cursor would jump
            with self.pipeline_name.changed.blocked():
                self.pipeline_name.value = name

    def _on_add_clicked(self, _clicked: Any = None) -> None:
        self.add_stage(self.stage_choice.value)

    # -- running ------------------------------------------------------------------------

    def schedule_run(self, *_args: Any) -> None:
        """Re-run after a pause (restarted by every change), if re-run on change is on."""
        if self.auto_run.value and self.session.stages and self.session.image is not None:
            self._debounce.start()

    def _on_auto_run(self, on: bool) -> None:
        if not on:
            self._debounce.stop()  # no pending re-run either

    def run(self) -> GeneratorWorker:
        """Run the chain on the image (and the second one in test mode) in a worker; return it.

        Unchanged upstream outputs are reused; a running chain is superseded (it stops
        before its next stage and is ignored). PipelineError if the pipeline is invalid
        or no image layer is chosen.
        """
        self._push_images()  # a layer's data may have been replaced
        self._debounce.stop()
        chain = self.session.start_run()
        if self.worker is not None:
            self.worker.quit()
        worker = generator_worker(chain.__iter__)  # a generator: yields each output
        worker.yielded.connect(partial(self._on_output, chain))
        worker.errored.connect(unwrapped(partial(self._on_error, chain)))
        worker.finished.connect(partial(self._on_run_done, chain))
        self.worker = worker
        self._started = time.perf_counter()
        self.status.value = "running..."
        worker.start()
        return worker

    def _run_quietly(self, *_args: Any) -> None:
        try:
            self.run()
        except PipelineError as error:
            self.status.value = str(error)

    def _push_images(self, *_args: Any) -> None:
        """Hand the chosen layers to the session: the image, or its channels (a new key for new data)."""
        layers = [layer_image(layer) for _, layer in self._image_choices()]
        first = self.image.value
        second = self.second_image.value if self.test_mode.value and first is not None else None
        self.chain_layers.place_second(first, second)  # before its translate is taken
        main = layer_image(first) if first is not None else None
        with self.channel_map.sources_changed.blocked():
            self.channel_map.set_layers(main, layers)
        sources = self.channel_map.sources() if self.session.channels else None
        if main is not None and missing_channels(self.session.channels, main, layers):
            # named under the channels line; the outputs of the channels before go
            self.status.value = "fix the channels (see above), then the chain runs again"
            self.session.set_images(None)
            self.session.set_group_images([])
            self.chain_layers.clear()
            return
        try:
            image = tuning_image(main, sources, layers) if main is not None else None
            other = layer_image(second) if second is not None else None
            if main is not None and other is not None:
                other_sources = second_sources(sources, main.name, other) if sources else None
                self.session.set_images(image, tuning_image(other, other_sources, layers))
            else:
                self.session.set_images(image)
            group_by = group_by_of(self.session.stages)  # the open images of the chosen one's group
            members = group_images(main, sources, layers, group_by) if main is not None else []
            self.session.set_group_images(members)
            self._group = group_of(main, group_by)
        except ValueError as error:  # channels of different shapes
            self.status.value = str(error)
            self.session.set_images(None)
            self.session.set_group_images([])

    def _on_output(self, chain: ChainRun, item: tuple[int, str, Any, bool]) -> None:
        if not chain.superseded():
            self.chain_layers.show(chain, item)

    def _on_error(self, chain: ChainRun, error: Exception) -> None:
        if chain.superseded():
            return
        self.status.value = f"error: {error}"
        show_error(str(error))
        self.run_finished.emit(None)

    def _on_run_done(self, chain: ChainRun) -> None:
        if chain.superseded() or self.status.value.startswith("error"):
            return
        self.chain_layers.drop_stale(chain)
        seconds = time.perf_counter() - self._started
        n_images = len(chain.images)
        self.status.value = f"{len(chain.pipeline)} stage(s) on {n_images} image(s) in {seconds:.2f} s"
        if chain.pipeline.group_stages:  # which images formed the group
            self.status.value += "\n" + group_line(chain, self._group)
        if chain.warnings:  # wired wrongly: the outputs look fine and mean nothing
            self.status.value += "\nwarning: " + "\nwarning: ".join(chain.warnings)
            show_warning(chain.warnings[0])
        self.run_finished.emit(seconds)

    # -- layers, files ------------------------------------------------------------------

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        """The image layers to run on: every one but the outputs shown (the chain's, and a
        sweep's stack of outputs)."""
        chain_layers = getattr(self, "chain_layers", None)  # the boxes ask before it exists
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and SWEEP_METADATA not in layer.metadata
            and not (chain_layers is not None and chain_layers.owns(layer))
        ]

    def _refresh_images(self, _event: Any = None) -> None:
        for box in (self.image, self.second_image):
            with box.changed.blocked():
                box.reset_choices()
        self._push_images()

    def _file_dialog(self, action: str, _clicked: Any = None) -> None:
        """Ask for a file, then save, export or load it; what happened goes in the status."""
        title, start, kinds, done = _DIALOGS[action]
        ask = QFileDialog.getOpenFileName if action == "load" else QFileDialog.getSaveFileName
        path, _ = ask(self, title, start, kinds)
        if not path:
            return
        try:
            getattr(self, action)(path)
            self.status.value = done.format(path=path, name=Path(path).name)
        except PipelineError as error:
            self.status.value = str(error)
            show_error(str(error))


#: the file dialog of each file button: title, suggested name, file types, status when done
_DIALOGS = {
    "save": ("Save pipeline", "pipeline.yaml", "Pipeline (*.yaml *.yml)", "saved {path}"),
    "load": ("Load pipeline", "", "Pipeline (*.yaml *.yml)", "loaded {path}"),
    "export_script": (
        "Export pipeline as a Python script",
        "pipeline_script.py",
        "Python (*.py)",
        "exported {path}: python {name} INPUT_DIR OUTPUT_DIR",
    ),
}


def _stop_runs(session: Any, channel_map: ChannelMap, *_args: Any) -> None:
    """A closed builder's runs end before their next stage, and nothing of them is shown."""
    session.supersede()
    channel_map.disconnect_session()
