"""napari widgets: thin magicgui and Qt wiring over ``napari_batch_pipeline.core``.

Nothing in ``core`` may import from here.
"""

from .stage_widgets import StageWidget, gaussian_widget, make_stage_widget, result_layer_name

__all__ = ["StageWidget", "gaussian_widget", "make_stage_widget", "result_layer_name"]
