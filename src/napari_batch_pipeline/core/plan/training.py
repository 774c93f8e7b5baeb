"""Checking the classifier stages' training files before anything runs.

A ``pixel_classifier`` or ``object_classifier`` stage names a training file (relative to
the pipeline file) and its SHA-256 (see :mod:`..stages.training`). Every parameter set
of the batch (a sweep, a parameter table) may name another; each one is read and checked
here, so that a missing, malformed or changed training file refuses the batch before
any image is touched, naming the stage and the file.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import PipelineError
from ..pipeline.model import Pipeline
from ..stages.training import TrainingFileError, read_training, resolve_training
from .tasks import Task

__all__ = ["check_training"]


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
