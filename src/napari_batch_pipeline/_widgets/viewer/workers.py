"""Generator workers whose every error reaches their ``errored`` signal.

superqt's generator worker takes a ``RuntimeError`` raised by its generator for a sign
that the worker was deleted: it warns "RuntimeError in aborted thread" and emits neither
``errored`` nor ``finished``. The engine's :class:`~napari_batch_pipeline.core.errors.StageError`
is a ``RuntimeError``, so a stage that failed left the builder saying "running..."
forever. :func:`generator_worker` carries such an error past superqt, and
:func:`unwrapped` hands the original to the page's error handler.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker

__all__ = ["generator_worker", "unwrapped"]


class _Carried(Exception):
    """A ``RuntimeError`` of a worker's generator, carried to its ``errored`` signal."""

    def __init__(self, error: RuntimeError):
        super().__init__(str(error))
        self.error = error


def _carrying(function: Callable[..., Any], *args: Any) -> Generator[Any, Any, Any]:
    try:
        return (yield from function(*args))
    except RuntimeError as error:
        raise _Carried(error) from error


def generator_worker(function: Callable[..., Any], *args: Any) -> GeneratorWorker:
    """``create_worker(function, *args, _ignore_errors=True)`` for a generator function,
    with a ``RuntimeError`` it raises reaching ``errored`` (connect it through
    :func:`unwrapped`) instead of being dropped."""
    worker = create_worker(_carrying, function, *args, _ignore_errors=True)
    assert isinstance(worker, GeneratorWorker)
    return worker


def unwrapped(handler: Callable[[Any], Any]) -> Callable[[BaseException], Any]:
    """``handler`` called with the error the generator raised (not the carrier)."""

    def handle(error: BaseException) -> Any:
        return handler(error.error if isinstance(error, _Carried) else error)

    return handle
