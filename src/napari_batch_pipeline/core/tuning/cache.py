"""Re-running a pipeline on one image after a change: only the changed stage and those after it.

A stage's output is cached under its :meth:`Pipeline.stage_key`, a hash of its own
configuration and of everything upstream of it, so a changed parameter invalidates
exactly that stage and the stages that depend on it; the others are reused. This is
what makes tuning in the Pipeline builder quick. Qt- and napari-free.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..pipeline.model import Pipeline

__all__ = ["StageCache"]


class StageCache:
    """Stage outputs of pipelines on images, keyed by image and stage configuration.

    Safe to share between threads: a run reads and writes whole entries only.
    """

    def __init__(self) -> None:
        self._outputs: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._outputs)

    def run(
        self,
        pipeline: Pipeline,
        image: Any | Mapping[str, Any],
        image_key: str,
        *,
        spacing: tuple[float, ...] | None = None,
        stop: Callable[[], bool] | None = None,
        given: Mapping[str, Any] | None = None,
    ) -> Iterator[tuple[str, Any, bool]]:
        """Run ``pipeline`` on ``image``, reusing cached outputs; yield each stage's output.

        Parameters
        ----------
        pipeline : Pipeline
            The chain.
        image : (M, N) or (P, M, N) ndarray, or mapping
            The input image, or one image per channel name when the pipeline names
            channels (see :meth:`Pipeline.images_of`).
        image_key : str
            Identifies ``image`` and ``spacing``: outputs are reused only for the same key.
        spacing : tuple of float, optional
            The pixel size, for stages that take it (``measure`` in physical units).
        stop : callable, optional
            Checked before each stage that must be computed; if it returns True the
            run ends there (a newer run has superseded this one).
        given : mapping, optional
            Outputs known already (a group stage's result), by stage: yielded as they
            are, never cached. ``image_key`` must then identify them too.

        Yields
        ------
        (stage name, output, reused)
            In pipeline order; ``reused`` is True when the output came from the cache.

        Raises
        ------
        StageError
            If a stage fails; the outputs before it stay cached.
        PipelineError
            If the pipeline names channels and ``image`` lacks one.
        """
        available: dict[str, Any] = pipeline.images_of(image)
        keep: set[tuple[str, str]] = set()
        for stage in pipeline.stages:
            if given is not None and stage.name in given:
                available[stage.name] = given[stage.name]
                yield stage.name, given[stage.name], False
                continue
            key = (image_key, pipeline.stage_key(stage.name))
            keep.add(key)
            with self._lock:
                output = self._outputs.get(key, _MISSING)
            reused = output is not _MISSING
            if not reused:
                if stop is not None and stop():
                    return
                output = pipeline.run_stage(stage.name, available, spacing=spacing)
                with self._lock:
                    self._outputs[key] = output
            available[stage.name] = output
            yield stage.name, output, reused
        self._forget(image_key, keep)

    def group(self, stage: str, members: str, stage_key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """A group stage's output over a group of images: cached under the members' key
        and the stage key (only the latest of each stage is kept), else ``compute()``.

        Returns
        -------
        (output, reused)
        """
        key = (f"group:{stage}:{members}", stage_key)
        with self._lock:
            output = self._outputs.get(key, _MISSING)
        if output is not _MISSING:
            return output, True
        output = compute()
        with self._lock:
            for old in [k for k in self._outputs if k[0].startswith(f"group:{stage}:")]:
                del self._outputs[old]
            self._outputs[key] = output
        return output, False

    def _forget(self, image_key: str, keep: set[tuple[str, str]]) -> None:
        """Drop this image's outputs of stage configurations no longer in the pipeline."""
        with self._lock:
            for key in [k for k in self._outputs if k[0] == image_key and k not in keep]:
                del self._outputs[key]

    def clear(self) -> None:
        with self._lock:
            self._outputs.clear()


_MISSING = object()
