"""The stage widgets of the Plugins menu: each core stage
(:class:`~napari_batch_pipeline.core.stages.StageSpec` in ``STAGES``) as a magicgui
widget that takes layers, runs the stage once and adds (or updates) one result layer,
telling a 0/1 mask from labels. They read the stage catalogue; they hold no session.
"""
