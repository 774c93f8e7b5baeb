"""The builder's training layers: paint a classifier's classes, and it retrains.

Every classifier stage of the builder's chain gets a napari Labels layer on each image
the chain runs on (the main image, and test mode's second one), named
``<stage> training``. For a ``pixel_classifier``, paint classes 1, 2, ... on pixels; for
an ``object_classifier``, paint a class over objects (each takes the class painted most
over it). Every stroke restarts a pause of 300 ms; then, in a thread worker, the stage's
inputs are computed on each painted image, the paintings make the stage's training file and train
its forest (:class:`~..core.tuning.training.PaintedTraining`), and back on the GUI
thread the stage names the file and its hash, so the chain re-runs and previews as after
any edit. The paintings of an image no longer run stay in the training. *Save...* writes
each training file beside the pipeline file (:meth:`TrainingLayers.save`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.qt.threading import FunctionWorker, create_worker
from napari.viewer import Viewer
from qtpy.QtCore import QObject, QTimer, Signal

from ...core.errors import PipelineError
from ...core.pipeline.model import Pipeline
from ...core.tuning.image import TuningImage
from ...core.tuning.session import TuningSession
from ...core.tuning.training import PaintedTraining

__all__ = ["RETRAIN_MS", "TrainingLayers"]

#: pause after the last stroke before the stage retrains
RETRAIN_MS = 300


class TrainingLayers(QObject):
    """The training layers of a session's pixel classifier stages in ``viewer``.

    Parameters
    ----------
    viewer : napari.Viewer
    session : TuningSession
    report : callable
        Called with a line for the builder's status (what was trained, or what failed).

    Attributes
    ----------
    layers : dict of (str, str) to Labels
        The training layer of each (stage name, image key).
    trainings : dict of str to PaintedTraining
        Each stage's paintings and training file.
    workers : dict of str to FunctionWorker
        The latest training of each stage.

    Emits ``trained(stage)`` once a stage names its new training (the chain re-runs then).
    """

    trained = Signal(str)

    def __init__(self, viewer: Viewer, session: TuningSession, report: Callable[[str], None]):
        super().__init__()
        self.viewer, self.session, self.report = viewer, session, report
        self.layers: dict[tuple[str, str], Labels] = {}
        self.trainings: dict[str, PaintedTraining] = {}
        self.workers: dict[str, FunctionWorker] = {}
        self._timers: dict[str, QTimer] = {}

    def refresh(self, *_args: Any) -> None:
        """Offer a training layer for every pixel classifier stage on every image run; remove
        those of stages and images no longer there."""
        stages = [s.name for s in self.session.stages if s.spec.trains is not None]
        images = self.session.images
        wanted = {
            (stage, image.key): (index, image) for stage in stages for index, image in enumerate(images)
        }
        for key, layer in list(self.layers.items()):
            if key not in wanted:
                del self.layers[key]
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
        for stage in list(self.trainings):
            if stage not in stages:
                del self.trainings[stage]
        for (stage, image_key), (index, image) in wanted.items():
            if (stage, image_key) not in self.layers:
                self._add_layer(stage, index, image)

    def _add_layer(self, stage: str, index: int, image: TuningImage) -> None:
        shape = image.shape
        name = f"{stage} training" if index == 0 else f"{stage} training [{image.name}]"
        ndim = len(shape)
        layer = Labels(
            np.zeros(shape, dtype=np.uint8),
            name=name,
            scale=tuple(image.scale[-ndim:]) or None,
            translate=tuple(image.translate[-ndim:]) or None,
        )
        layer.events.paint.connect(partial(self._painted, stage))
        self.layers[(stage, image.key)] = layer
        self.viewer.add_layer(layer)
        layer.selected_label = 1

    def _painted(self, stage: str, _event: Any = None) -> None:
        """A stroke on a training layer: retrain after the pause (restarted by every stroke)."""
        timer = self._timers.get(stage)
        if timer is None:
            timer = self._timers[stage] = QTimer(self)
            timer.setSingleShot(True)
            timer.setInterval(RETRAIN_MS)
            timer.timeout.connect(partial(self.retrain, stage))
        timer.start()

    def retrain(self, stage: str) -> FunctionWorker | None:
        """Train ``stage`` on its paintings in a worker; None when the pipeline is invalid."""
        try:
            pipeline = self.session.pipeline()
        except PipelineError as error:
            self.report(f"{stage}: cannot train yet: {error}")
            return None
        images = [image for image in self.session.images if (stage, image.key) in self.layers]
        paintings = [(image, np.array(self.layers[(stage, image.key)].data)) for image in images]
        training = self.trainings.setdefault(stage, PaintedTraining(stage, pipeline[stage].spec.trains or ""))
        worker = create_worker(_train, pipeline, stage, training, paintings, _ignore_errors=True)
        worker.returned.connect(partial(self._apply, stage))
        worker.errored.connect(lambda error: self.report(f"{stage}: training failed: {error}"))
        self.workers[stage] = worker
        self.report(f"{stage}: training...")
        worker.start()
        return worker

    def _apply(self, stage: str, result: tuple[str, str]) -> None:
        """Name the new training in the stage (hash first: the pipeline stays valid)."""
        name, sha = result
        index = next((i for i, s in enumerate(self.session.stages) if s.name == stage), None)
        if index is None:
            return
        self.session.set_param(index, "training_sha256", sha)
        self.session.set_param(index, "training", name)
        training = self.trainings[stage]
        marks = "labels" if training.kind == "pixels" else "classes"
        count = sum(int((np.asarray(e[marks]) > 0).sum()) for e in training.examples())
        what = "painted pixels" if training.kind == "pixels" else "chosen objects"
        self.report(f"{stage}: trained on {count} {what}; previewing")
        self.trained.emit(stage)

    def save(self, folder: str | Path) -> list[Path]:
        """Write every stage's training file into ``folder`` (the pipeline file's)."""
        written = (training.save(folder) for training in self.trainings.values())
        return [path for path in written if path is not None]


def _train(
    pipeline: Pipeline,
    stage: str,
    training: PaintedTraining,
    paintings: Sequence[tuple[TuningImage, np.ndarray]],
) -> tuple[str, str]:
    """In a worker: the stage's inputs on each painted image, then the training."""
    config = pipeline[stage]
    names = pipeline.stage_names
    before = names[names.index(stage) - 1] if names.index(stage) else None
    for image, painted in paintings:
        if not painted.any():
            continue
        data = image.read()
        available = dict(pipeline.images_of(data))
        if before is not None:
            available.update(pipeline.run(data, spacing=image.scale or None, until=before))
        inputs = {arg: np.asarray(available[source]) for arg, source in config.inputs.items()}
        if training.kind == "pixels":
            training.paint(image.key, inputs[config.spec.main_arg], painted)
        else:
            training.paint_objects(image.key, inputs[config.spec.main_arg], inputs.get("intensity"), painted)
    return training.train(config.params)
