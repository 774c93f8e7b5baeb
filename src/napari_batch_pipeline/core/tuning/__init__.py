"""Tuning: the state behind the GUI while a pipeline is built on one image.

Holds the session (:mod:`.session`: one evented object per viewer), the pipeline being
edited (:mod:`.draft`, one stage of it in :mod:`.stage_draft`), the cache of stage
outputs that lets a changed parameter re-run the chain from that stage on
(:mod:`.cache`), the image tuned on (:mod:`.image`) and one-image sweeps
(:mod:`.sweep`). It uses the pipeline, the plan's parameter sets and the run folder's
naming rules; the batch side never imports it. No Qt: the widgets are views over it.
"""
