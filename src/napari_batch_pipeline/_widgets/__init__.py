"""napari widgets: thin magicgui and Qt wiring over ``napari_batch_pipeline.core``, grouped
by the plugin's pages: ``builder``, ``sweep``, ``batch``, ``results``, the menu's
``stages``, and ``viewer`` (the home dock and the session every page shares).

Nothing in ``core`` may import from here.
"""

from .stages.widgets import StageWidget, gaussian_widget, make_stage_widget, result_layer_name

__all__ = ["StageWidget", "gaussian_widget", "make_stage_widget", "result_layer_name"]
