"""Images as the engine takes them, whatever the format.

Holds the files of a folder (:mod:`.sources`), what each holds and how to read it
(:mod:`.formats`: tifffile, imageio, bioio's readers), the pipeline's named channels
(:mod:`.channels`), and the fields (scene x time point) that are the tasks' inputs
(:mod:`.fields`). It uses only the project's errors: pipelines, plans and run folders
build on it.
"""
