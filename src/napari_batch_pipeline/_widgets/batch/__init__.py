"""The *Batch processing* page: a folder through a pipeline, watched from napari. Its fields
are every option of a command-line run; it plans a
:class:`~napari_batch_pipeline.core.plan.batch_plan.BatchPlan`, estimates it, runs it as a
:class:`~napari_batch_pipeline.core.batch.BatchRun` and reads its events (progress bar,
the live task table of :class:`~napari_batch_pipeline.core.run_folder.records.TaskRecord`
rows, status lines, the end's :class:`~napari_batch_pipeline.core.engine.report.Report`).
It owns the warm-up of the first run and the closing of a viewer mid-run, and hands the
run folder to the results page.
"""
