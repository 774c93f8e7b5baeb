"""The *Pipeline builder* page: a chain of stages put together on one image, every output
shown as a layer. It edits the viewer's
:class:`~napari_batch_pipeline.core.tuning.session.TuningSession` (its
:class:`~napari_batch_pipeline.core.tuning.draft.StageDraft` list and channel map), runs
the chain with :class:`~napari_batch_pipeline.core.tuning.session.ChainRun`, owns the
chain's output layers and a classifier's training layers, and exports the
:class:`~napari_batch_pipeline.core.pipeline.model.Pipeline` as YAML or a script.
"""
