"""The pipeline: an ordered chain of stages, validated, versioned, run on one image.

Holds the model (:mod:`.model`: ``Pipeline``, loading and saving, running the chain on
one image), the YAML document it is read from and written to (:mod:`.yaml_file`: safe
YAML, no code runs), and the configuration of one stage (:mod:`.stage_config`: its
function, parameters, inputs and what is saved). It uses the stage catalogue
(:mod:`..stages`) and the channel names of :mod:`..images`; it knows nothing of folders,
tasks or run folders.
"""

from .model import INPUT, Pipeline
from .stage_config import StageConfig

__all__ = ["INPUT", "Pipeline", "StageConfig"]
