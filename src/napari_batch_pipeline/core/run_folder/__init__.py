"""The run folder: one owner of its layout (:mod:`.layout`), its table columns
(:mod:`.tables`), the task records (:mod:`.records`), the writer (:mod:`.writer`) and
the reader (:mod:`.reader`)."""
