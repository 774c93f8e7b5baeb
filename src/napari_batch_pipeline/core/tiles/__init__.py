"""Images larger than memory: the same pipeline, tile by tile, with the whole image's answer.

- :mod:`.settings`: when an image is tiled, and how (tile, halo, max_object, levels).
- :mod:`.kinds`: each stage's kind (pointwise, local, global, component, table).
- :mod:`.grid`: tile cores and halos.
- :mod:`.thresholds`: global thresholds from the tiles' histograms.
- :mod:`.seams`: labels joined across seams, numbered as ``skimage.measure.label`` does.
- :mod:`.objects`: each object measured once, whole.
- :mod:`.run`: one image through all of it, resumable tile by tile.
"""

from .kinds import TiledChain, tiled_chain
from .run import run_tiled
from .settings import TileSettings

__all__ = ["TileSettings", "TiledChain", "run_tiled", "tiled_chain"]
