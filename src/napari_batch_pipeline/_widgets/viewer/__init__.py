"""What every page of the plugin shares in one viewer: the home (the pages tabbed together
in one dock area), docks that scroll and messages that wrap, slow calls that keep the event
loop going, and the viewer's one :class:`~napari_batch_pipeline.core.tuning.session.TuningSession`
(``session.py``), which the builder, the sweep panel and the batch widget all read and edit.
It shows nothing of its own and imports no other page.
"""
