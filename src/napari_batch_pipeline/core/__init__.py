"""The Qt-free, napari-free engine of napari-batch-pipeline."""

from __future__ import annotations

from .errors import PipelineError
from .pipeline import Pipeline, StageConfig
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
