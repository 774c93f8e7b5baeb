"""The classifier stages' forests in a run: trained once, before the tasks, handed to workers.

A pipeline with ``pixel_classifier`` or ``object_classifier`` stages needs a forest
trained from each stage's training file (see :mod:`..stages.forests`). The runner trains
every forest the run needs here, in its own process, as it makes the jobs of the tasks
still to run, before any of them starts: one per distinct set of the settings it depends
on (a sweep of ``trees`` trains one per value); a run that resumes with nothing left to
do trains nothing.
Each task's job carries the forests of its parameter set (:attr:`TaskJob.trained`); a
worker keeps them in memory (:func:`..stages.forests.remember`) before it runs the chain.
Threads share this process's forests; worker processes and dask workers receive them
with their tasks. No forest is ever written to a file.
"""

from __future__ import annotations

import json
from typing import Any

from ..pipeline.model import Pipeline

__all__ = ["Forests"]


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
