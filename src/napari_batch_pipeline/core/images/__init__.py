"""Images as the engine takes them, whatever the format.

Holds the files of a folder (:mod:`.sources`), what each holds and how to read it
(:mod:`.formats`: tifffile, imageio, bioio's readers), the pipeline's named channels
(:mod:`.channels`), and the fields (scene x time point) that are the tasks' inputs
(:mod:`.fields`); images larger than memory read region by region (:mod:`.lazy`), and
OME-Zarr multiscale stores written tile by tile and opened lazily (:mod:`.ome_zarr`).
It uses only the project's errors: pipelines, plans and run folders
build on it.
"""
