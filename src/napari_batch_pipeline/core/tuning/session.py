"""The tuning state behind the GUI: the pipeline being edited, the images, the cache, the sweep.

A :class:`TuningSession` is what a person tunes in napari, held once per viewer so that
the builder, the sweep panel and the batch widget are views of the same thing: the
editable pipeline (a :class:`~napari_batch_pipeline.core.tuning.draft.PipelineDraft`), the
image the chain runs on (and a second one in test mode; see :mod:`.tuning_images`), a
:class:`~napari_batch_pipeline.core.tuning.cache.StageCache` so that a change re-runs only the
changed stage and those after it, and the latest parameter sweep. Runs are started here
and superseded here: a run started after another makes the earlier one stop before its
next stage.

Signals (psygnal), besides those of the draft: ``images_changed()`` when other images
are chosen, ``sweep_changed(sweep)`` when a sweep is set. A view re-runs the chain on
``stages_changed``, ``stage_changed`` and ``images_changed``. Qt- and napari-free: a view
hands it arrays with an identity key, never layers.

Example
-------
>>> session = TuningSession()
>>> session.add_stage("gaussian", "blurred", params={"sigma": 2.0})
>>> session.add_stage("threshold")
>>> session.set_images(TuningImage("nuclei", image))
>>> for index, stage, output, reused in session.start_run():
...     print(stage, output.shape, reused)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from psygnal import Signal

from ..errors import PipelineError
from ..pipeline.model import Pipeline
from .cache import StageCache
from .draft import PipelineDraft
from .image import TuningImage
from .sweep import ImageSweep
from .wiring import wiring_warnings

__all__ = ["ChainRun", "TuningImage", "TuningSession"]


class ChainRun:
    """One run of a pipeline on the session's images; iterate to compute it.

    Yields ``(image index, stage name, output, reused)`` for every stage of every image
    (index 0: the main image, 1: the second one), in pipeline order; ``reused`` is True
    when the output came from the cache. Iterating is meant for a worker thread; it stops
    before the next stage to compute once :meth:`superseded` is True.

    A group stage (an illumination function) learns from ``group_images`` (the images
    open in the viewer; the run's images when none are given), in order, each through the
    stages it needs; every image of the run then gets that one result.

    Attributes
    ----------
    pipeline : Pipeline
        The chain, as it was when the run started.
    images : list of TuningImage
    warnings : list of str
        Once the main image has run: stages fed data of the wrong kind
        (:func:`.wiring.wiring_warnings`).
    group_images : list of TuningImage
    """

    def __init__(
        self,
        pipeline: Pipeline,
        images: Sequence[TuningImage],
        cache: StageCache,
        superseded: Callable[[], bool],
        group_images: Sequence[TuningImage] = (),
    ):
        self.pipeline = pipeline
        self.images = list(images)
        self.warnings: list[str] = []
        self.group_images = list(group_images) or list(images)
        self._cache = cache
        self._superseded = superseded

    def superseded(self) -> bool:
        """Whether a newer run of the same session has started."""
        return self._superseded()

    def __iter__(self) -> Iterator[tuple[int, str, Any, bool]]:
        """Runs each image at its scale (the pixel size stages that take one get).

        Raises StageError if a stage fails (outputs before it stay cached), PipelineError
        if the pipeline names a channel an image lacks.
        """
        given, members = self._group_results()
        if given is None:
            return
        for index, image in enumerate(self.images):
            if self.superseded():
                return
            data = image.read()
            outputs = self._cache.run(
                self.pipeline,
                data,
                image.key + members,
                spacing=image.scale,
                stop=self.superseded,
                given=given,
            )
            seen = dict(self.pipeline.images_of(data)) if index == 0 else {}
            for name, output, reused in outputs:
                if index == 0:
                    seen[name] = output
                yield index, name, output, reused
            if index == 0:
                self.warnings = wiring_warnings(self.pipeline, seen)

    def _group_results(self) -> tuple[dict[str, Any] | None, str]:
        """Each group stage's result over the group images, and a key naming those images
        (empty without group stages); None if the run was superseded meanwhile."""
        if not self.pipeline.group_stages:
            return {}, ""
        members = (
            "|group:" + hashlib.sha256(repr([m.key for m in self.group_images]).encode()).hexdigest()[:16]
        )
        given: dict[str, Any] = {}
        for stage in self.pipeline.group_stages:
            config = self.pipeline[stage]
            source = config.inputs[config.spec.main_arg]
            inputs = self._inputs(source, given)
            compute = partial(self.pipeline.run_group, stage, inputs)
            try:
                given[stage], _ = self._cache.group(stage, members, self.pipeline.stage_key(stage), compute)
            except _Superseded:
                return None, members
        return given, members

    def _inputs(self, source: str, given: Mapping[str, Any]) -> Iterator[Any]:
        """The group images' outputs of ``source``, one at a time, in order."""
        for member in self.group_images:
            if self.superseded():
                raise _Superseded
            data = member.read()
            if source in self.pipeline.input_names:
                yield self.pipeline.images_of(data)[source]
            else:
                spacing = member.scale or None
                yield self.pipeline.run(data, spacing=spacing, until=source, given=given)[source]


class _Superseded(BaseException):
    """A newer run started while a group's result was being learnt (a BaseException, so
    that the stage it interrupts does not report it as its own error)."""


class TuningSession(PipelineDraft):
    """The tuning state of one viewer: pipeline draft, images, stage cache, sweep.

    Attributes
    ----------
    image, second_image : TuningImage or None
        The image the chain runs on, and the second one of test mode.
    group_images : list of TuningImage
        The images a group stage learns from in a preview (:meth:`set_group_images`).
    cache : StageCache
    sweep : ImageSweep or None
        The latest sweep set (:meth:`set_sweep`), and :attr:`sweep_image` the image it ran on.
    """

    images_changed = Signal()
    sweep_changed = Signal(object)

    def __init__(self, name: str = "pipeline") -> None:
        super().__init__(name)
        self.image: TuningImage | None = None
        self.second_image: TuningImage | None = None
        self.group_images: list[TuningImage] = []
        self.cache = StageCache()
        self.sweep: ImageSweep | None = None
        self.sweep_image: TuningImage | None = None
        self._generation = 0

    # -- images and runs ----------------------------------------------------------------

    @property
    def images(self) -> list[TuningImage]:
        """The images a run computes: the main one, then the second one if chosen."""
        return [image for image in (self.image, self.second_image) if image is not None]

    def set_images(self, image: TuningImage | None, second: TuningImage | None = None) -> None:
        """Choose the image to tune on and, for test mode, a second one (None: no test mode).

        Emits ``images_changed`` when a key differs from before. A second image with the
        key of the first is ignored.

        Raises
        ------
        ValueError
            If a second image is given without a first.
        """
        if image is None and second is not None:
            raise ValueError(f"a second image ({second.name!r}) needs a first one; got image=None")
        if second is not None and image is not None and second.key == image.key:
            second = None
        before = [im.key for im in self.images]
        self.image, self.second_image = image, second
        if [im.key for im in self.images] != before:
            self.images_changed.emit()

    def set_group_images(self, images: Sequence[TuningImage]) -> None:
        """Choose the images a group stage learns from in a preview (the images open in
        the viewer); emits ``images_changed`` when they differ and a stage is a group stage."""
        before = [image.key for image in self.group_images]
        self.group_images = list(images)
        if [image.key for image in images] != before and any(s.spec.group for s in self.stages):
            self.images_changed.emit()

    def start_run(self) -> ChainRun:
        """A run of the current pipeline on the chosen images; any earlier run is superseded.

        Nothing is computed until the run is iterated.

        Raises
        ------
        PipelineError
            If the pipeline is invalid or no image is chosen (an earlier run goes on then).
        """
        pipeline = self.pipeline()
        if self.image is None:
            raise PipelineError("no image is chosen to run the pipeline on; choose one")
        self._generation += 1
        generation = self._generation
        return ChainRun(
            pipeline, self.images, self.cache, lambda: self._generation != generation, self.group_images
        )

    def supersede(self) -> None:
        """Stop the running chain before its next stage (its later outputs are not computed)."""
        self._generation += 1

    # -- sweeps -------------------------------------------------------------------------

    def new_sweep(self, sweep: Mapping[str, Sequence[Any]], stage: str | None = None) -> ImageSweep:
        """A sweep of the current pipeline, to run on :attr:`image`; not run yet.

        Parameters
        ----------
        sweep : dict of str to list
            ``{'stage.param': [values]}``, one or two keys.
        stage : str, optional
            The stage whose outputs are kept (default: the last image, mask or labels stage).

        Raises
        ------
        PipelineError
            If the pipeline or the sweep is invalid, or no image is chosen.
        """
        pipeline = self.pipeline()
        if self.image is None:
            raise PipelineError("no image is chosen to sweep on; choose one")
        return ImageSweep(pipeline, sweep, stage)

    def set_sweep(self, sweep: ImageSweep | None, image: TuningImage | None = None) -> None:
        """Make ``sweep`` (run on ``image``) the current one; emits ``sweep_changed(sweep)``."""
        self.sweep, self.sweep_image = sweep, image
        self.sweep_changed.emit(sweep)

    def apply(self, params: Mapping[str, Any]) -> None:
        """Write a parameter set, ``{'stage.param': value}``, into the stages.

        Emits ``stage_changed`` as an edit does (so views update and the chain re-runs).
        Nothing is written unless every key still names a stage and one of its parameters.

        Raises
        ------
        PipelineError
            Naming the first key whose stage or parameter no longer exists.
        """
        targets: list[tuple[int, str, Any]] = []
        for key, value in params.items():
            stage, _, param = key.partition(".")
            index = next((i for i, s in enumerate(self.stages) if s.name == stage), None)
            if index is None or param not in self.stages[index].spec.params:
                raise PipelineError(
                    f"the pipeline has no parameter {key} any more; run the sweep again", key=key
                )
            targets.append((index, param, value))
        for index, param, value in targets:
            self.set_param(index, param, value)
