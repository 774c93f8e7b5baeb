"""Keeping Python's cyclic garbage collector off the viewer's objects while a batch runs.

A napari process holds millions of long-lived objects (Qt wrappers, layers, scikit-image,
pandas). A batch streams results in, and every new object counts towards the next full
collection, which walks all of them while holding the GIL: measured here, 1 to 3.5 s
each, several per run of 1,000 images, every one a stall of the viewer. napari also calls
``gc.collect()`` whenever a layer is removed, as showing a run's results does.

:func:`hold_collector` moves every object alive when a run starts into the collector's
permanent generation (``gc.freeze``), so collections during the run only look at what
the run creates; the release puts them back (``gc.unfreeze``), where the next full
collection looks at them again. Nothing is lost: garbage that is frozen is collected
after the release. Holds nest: the objects go back once the last holder has released.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

__all__ = ["hold_collector", "holders"]

_lock = threading.Lock()
_holders = 0


def hold_collector() -> Callable[[], None]:
    """Freeze the objects alive now until the returned function is called (once is enough;
    later calls do nothing)."""
    global _holders
    with _lock:
        if _holders == 0:
            gc.freeze()
        _holders += 1
    released = False

    def release() -> None:
        nonlocal released
        global _holders
        with _lock:
            if released:
                return
            released = True
            _holders -= 1
            if _holders == 0:
                gc.unfreeze()

    return release


def holders() -> int:
    """How many holds are in place (0: the collector sees every object)."""
    return _holders
