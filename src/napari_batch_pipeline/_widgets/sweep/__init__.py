"""The *Parameter sweep* page: which value of a stage's parameter works best? It reads the
session's pipeline and tuning image, runs a
:class:`~napari_batch_pipeline.core.tuning.sweep.ImageSweep` off the main thread, owns the
sweep's stacked layer (with its own labelled slider axis) and its plot, and writes the
value chosen back into the session's stage.
"""
