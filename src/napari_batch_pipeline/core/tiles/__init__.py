"""Images larger than memory: the same pipeline, tile by tile, with the whole image's answer.

- :mod:`.settings`: when an image is tiled, and how (tile, halo, max_object, levels).
- :mod:`.kinds`: each stage's kind (pointwise, local, global, component, table).
- :mod:`.grid`: tile cores and halos.
- :mod:`.thresholds`: global thresholds from the tiles' histograms.
- :mod:`.seams`: labels joined across seams, numbered as ``skimage.measure.label`` does.
- :mod:`.objects`: each object measured once, whole.
- :mod:`.run`: one image through all of it, resumable tile by tile.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .kinds import TiledChain, tiled_chain
    from .run import run_tiled
    from .settings import TileSettings

__all__ = ["TileSettings", "TiledChain", "run_tiled", "tiled_chain"]

#: where each name lives, loaded on first use: the stop flag (:mod:`.stop`), which every
#: executor imports, must not import the stages (a worker process is started before the
#: command line imports them), and the tiled run imports scipy's sparse graphs
_WHERE = {"TileSettings": "settings", "TiledChain": "kinds", "tiled_chain": "kinds", "run_tiled": "run"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
