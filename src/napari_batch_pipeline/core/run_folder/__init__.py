"""The run folder: one owner of its on-disk layout, written and read back.

Holds the layout (:mod:`.layout`: every file name and path), the table columns and rows
(:mod:`.tables`), the task records (:mod:`.records`) and the ledger they are appended
to (:mod:`.ledger`), one task's files (:mod:`.outputs`), the group results and ``groups.csv``
(:mod:`.groups`), the writer (:mod:`.writer`,
with the lock of :mod:`.lock`, the disk-space guard of :mod:`.space` and run.json in
:mod:`.provenance`), and the reader (:mod:`.reader`, per-object rows in
:mod:`.objects`, saved outputs as lazy stacks in :mod:`.lazy`, a tiled image's
OME-Zarr stores written and opened in :mod:`.ome_zarr`). It uses the pipeline
and images; it never plans or runs a batch.
"""
