"""The *Batch results* page and a run's results in the viewer: a run folder read back with
:class:`~napari_batch_pipeline.core.run_folder.reader.RunResults`, its tables to copy or
save, plots by group and against a swept parameter, the plate map of a screen, and each
task's saved outputs as napari layers (labels carry their objects table as ``features``).
It only reads the run folder; it never writes one.
"""
