"""Images larger than memory: the same pipeline, tile by tile, with the whole image's answer.

- :mod:`.settings`: when an image is tiled, and how (tile, halo, max_object, levels).
- :mod:`.kinds`: each stage's kind (pointwise, local, global, component, table).
- :mod:`.grid`: tile cores and halos.
- :mod:`.thresholds`: global thresholds from the tiles' histograms.
- :mod:`.seams`: labels joined across seams, numbered as ``skimage.measure.label`` does.
- :mod:`.objects`: each object measured once, whole.
- :mod:`.run`: one image through all of it, resumable tile by tile.
"""

from typing import TYPE_CHECKING, Any

from .kinds import TiledChain, tiled_chain
from .settings import TileSettings

if TYPE_CHECKING:
    from .run import run_tiled

__all__ = ["TileSettings", "TiledChain", "run_tiled", "tiled_chain"]


def __getattr__(name: str) -> Any:
    # run_tiled imports scipy's sparse graphs and the OME-Zarr writer: loaded when an
    # image is tiled, not by every run that checks whether one would be
    if name == "run_tiled":
        from .run import run_tiled

        return run_tiled
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
