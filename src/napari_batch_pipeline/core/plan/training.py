"""The classifier stages' training: files checked before anything runs, forests trained once.

A ``pixel_classifier`` or ``object_classifier`` stage names a training file (relative to
the pipeline file) and its SHA-256 (see :mod:`..stages.training`). Every parameter set
of the batch (a sweep, a parameter table) may name another; each one is read and checked
here, so that a missing, malformed or changed training file refuses the batch before
any image is touched, naming the stage and the file.

A run then trains every forest it needs in its own process (:class:`Forests`), as it
makes the jobs of the tasks still to run, before any of them starts: one per distinct
set of the settings it depends on (a sweep of ``trees`` trains one per value); a run
that resumes with nothing left to do trains nothing. Each task's job carries the
forests of its parameter set; a worker keeps them in memory
(:func:`..stages.forests.remember`). Threads share this process's forests; worker
processes and dask workers receive them with their tasks. No forest is ever written to
a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..errors import PipelineError
from ..pipeline.model import Pipeline
from ..stages.training import TrainingFileError, read_training, resolve_training
from .tasks import Task

__all__ = ["Forests", "check_training"]


def check_training(pipeline: Pipeline, tasks: Iterable[Task]) -> None:
    """Refuse a batch whose classifier stages cannot be trained from their files.

    Raises
    ------
    PipelineError
        Naming the stage and the file: no training file named, no such file, a file
        that does not match ``training_sha256``, or one that is no training file.
    """
    if not pipeline.classifier_stages:
        return
    checked: set[tuple[str, str, str]] = set()
    for values in _distinct(task.values for task in tasks):
        variant = pipeline.with_params(values) if values else pipeline
        for name in variant.classifier_stages:
            stage = variant[name]
            training, sha = (
                str(stage.params.get("training") or ""),
                str(stage.params.get("training_sha256") or ""),
            )
            if (name, training, sha) in checked:
                continue
            checked.add((name, training, sha))
            if not training:
                raise PipelineError(
                    "no training file: name one (training: file.npz, with its training_sha256), "
                    "or paint and save the training in the builder",
                    stage=name,
                    key="params.training",
                )
            try:
                read_training(resolve_training(training, pipeline.folder), sha, stage.spec.trains or "")
            except TrainingFileError as error:
                raise PipelineError(str(error), stage=name, key="params.training") from None


def _distinct(values: Iterable[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for item in values:
        seen.setdefault(repr(sorted(item.items())), item)
    return list(seen.values())


class Forests:
    """The forests of a run's classifier stages, by the parameter values of its tasks.

    Parameters
    ----------
    pipeline : Pipeline
        The run's pipeline; its :attr:`~Pipeline.folder` is where training files are.
    """

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self._by_values: dict[str, dict[str, Any]] = {}

    def of(self, values: dict[str, Any]) -> dict[str, Any]:
        """The forests a task with parameter ``values`` needs, by training key; trained
        here the first time those values are asked for.

        Raises
        ------
        PipelineError
            Naming the stage, for a training file that is missing, malformed or not the
            one its hash names (planning refuses those already, see :mod:`..plan.training`).
        """
        if not self.pipeline.classifier_stages:
            return {}
        key = _values_key(values)
        if key not in self._by_values:
            variant = self.pipeline.with_params(values) if values else self.pipeline
            self._by_values[key] = variant.train()
        return self._by_values[key]


def _values_key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=str)
