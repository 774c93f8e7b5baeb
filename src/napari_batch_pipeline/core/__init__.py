"""The Qt-free, napari-free engine of napari-batch-pipeline.

The names below load on first use, so that importing a light module of the engine (its
errors, for the command line's argument parsing) does not import scikit-image and scipy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import PipelineError

if TYPE_CHECKING:
    from .pipeline.model import Pipeline, StageConfig
    from .stages import STAGES, StageSpec, get_stage, register_stage

__all__ = [
    "STAGES",
    "Pipeline",
    "PipelineError",
    "StageConfig",
    "StageSpec",
    "get_stage",
    "register_stage",
]

#: where each name that loads on first use lives
_LAZY = {
    "Pipeline": ".pipeline",
    "StageConfig": ".pipeline",
    "STAGES": ".stages",
    "StageSpec": ".stages",
    "get_stage": ".stages",
    "register_stage": ".stages",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
