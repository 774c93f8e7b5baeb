"""napari-batch-pipeline: tune a scikit-image pipeline in napari, run it on a thousand images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core.errors import PipelineError, StageError

#: the one place the version is written: pyproject.toml reads it (dynamic = ["version"])
__version__ = "0.1.0"
__all__ = ["Pipeline", "PipelineError", "StageError", "__version__", "run_batch", "stage"]

if TYPE_CHECKING:
    from .core.batch import run_batch
    from .core.pipeline.model import Pipeline
    from .core.stages.registry import stage


def __getattr__(name: str) -> Any:
    # the engine (scikit-image, scipy, pandas) is imported on first use, so that the
    # command line answers --help and refuses bad arguments at once
    if name == "Pipeline":
        from .core.pipeline.model import Pipeline

        return Pipeline
    if name == "run_batch":
        from .core.batch import run_batch

        return run_batch
    if name == "stage":  # a user's stage that says more than its annotations (its reach)
        from .core.stages.registry import stage

        return stage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
