"""Images as the engine takes them: the files of a folder (``sources``), what each holds
and how to read it (``formats``), the pipeline's named channels (``channels``), and the
fields (scene x time point) that are the tasks' inputs (``fields``)."""
