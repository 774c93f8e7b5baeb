"""``summary.png`` drawn by a second process, which imports matplotlib while the run computes.

Importing matplotlib takes about half a second of CPU, as long as a small image's task,
and a thread that imports it beside the run holds the GIL that the run's own Python
needs. A one-image run from the command line waited for both. :func:`start` (at the
command line's start, and at the beginning of a run, in a process that has not imported
matplotlib) starts a Python process that imports matplotlib on another core and then
waits; :func:`draw` hands it a
:class:`~.summary_plot.SummaryPlot` and waits for the file. The process serves every
later run of this process, and ends when this process ends (its input closes).

Where no such process runs (matplotlib was already imported, Python cannot start
itself, or the process died), :func:`draw` draws in this process: the figure is the
same either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # not imported here: the command line starts the process before numpy loads
    from concurrent.futures import Future

    from .summary_plot import SummaryPlot

__all__ = ["draw", "draw_later", "running", "serve", "start", "stop"]

log = logging.getLogger(__name__)

#: what the second process runs; the folder this package was found in is searched last,
#: for a package found by a path this process added (never ahead of the standard library)
_COMMAND = (
    "import sys; sys.path.append({root!r}); "
    "from napari_batch_pipeline.core.results.figure_process import serve; serve()"
)
#: a request's length, before its pickled (plot, path)
_LENGTH = struct.Struct("<Q")

_process: subprocess.Popen[bytes] | None = None
_lock = threading.Lock()


def start() -> None:
    """Start the figure process, unless one runs, matplotlib is imported here already
    (drawing here costs little then), or this Python cannot start another."""
    global _process
    if "matplotlib.figure" in sys.modules or getattr(sys, "frozen", False) or not sys.executable:
        return
    with _lock:
        if _process is not None and _process.poll() is None:
            return
        command = _COMMAND.format(root=str(Path(__file__).resolve().parents[3]))
        env = dict(os.environ, MPLBACKEND="agg")  # no pyplot import to resolve a backend
        try:
            _process = subprocess.Popen(
                [sys.executable, "-c", command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError as error:
            log.debug("figure process not started: %s", error)
            _process = None


def running() -> bool:
    """Whether a figure process runs (started, and not ended or failed)."""
    process = _process
    return process is not None and process.poll() is None


def draw(plot: SummaryPlot, path: str | Path) -> Path:
    """Draw ``plot`` into the PNG file ``path`` (whole or not at all): by the figure
    process where one runs, else here."""
    target = Path(path)
    with _lock:
        if _process is not None and _ask(_process, plot, target):
            return target
    return plot.save(target)


def draw_later(plot: SummaryPlot, path: str | Path) -> Future[Path]:
    """:func:`draw` in a thread: the caller goes on (writing its other tables) while the
    figure process draws, and waits on the future's ``result()`` (which raises what
    drawing raised). The thread holds the lock only while it draws, as :func:`draw`."""
    from concurrent.futures import Future

    future: Future[Path] = Future()

    def drawing() -> None:
        try:
            future.set_result(draw(plot, path))
        except BaseException as error:  # the waiter gets it
            future.set_exception(error)

    threading.Thread(target=drawing, name="summary figure", daemon=True).start()
    return future


def stop() -> None:
    """End the figure process (it ends by itself when this process ends)."""
    global _process
    with _lock:
        process, _process = _process, None
    if process is not None:
        _close(process)


def _ask(process: subprocess.Popen[bytes], plot: SummaryPlot, target: Path) -> bool:
    """Whether ``process`` drew ``plot`` into ``target``; a process that fails is ended."""
    global _process
    assert process.stdin is not None and process.stdout is not None
    data = pickle.dumps((plot, os.path.abspath(target)), protocol=pickle.HIGHEST_PROTOCOL)
    try:
        process.stdin.write(_LENGTH.pack(len(data)) + data)
        process.stdin.flush()
        reply = json.loads(process.stdout.readline() or "null")
    except (OSError, ValueError):
        reply = None
    if isinstance(reply, dict) and reply.get("drawn"):
        return True
    log.debug("figure process failed (%s); drawing here", reply)
    _process = None
    _close(process)
    return False


def _close(process: subprocess.Popen[bytes]) -> None:
    for stream in (process.stdin, process.stdout):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serve(requests: IO[bytes] | None = None, replies: IO[bytes] | None = None) -> None:
    """The figure process: import matplotlib, then draw each request until the input ends.

    A reply is one JSON line: ``{"drawn": true}``, or ``{"drawn": false, "error": ...}``.
    """
    # Ctrl-C in a terminal reaches every process of the command; the run it interrupts
    # still writes its summary, through this process
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = requests or sys.stdin.buffer
    replies = replies or sys.stdout.buffer
    import matplotlib.figure  # noqa: F401  (the point: imported before the first request)
    from matplotlib.backends import backend_agg  # noqa: F401

    while True:
        header = requests.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            return
        request = requests.read(_LENGTH.unpack(header)[0])
        reply: dict[str, Any]
        try:
            plot, path = pickle.loads(request)  # another version of this package fails here
            plot.save(path)
            reply = {"drawn": True}
        except Exception as error:  # the run draws it itself, and reports what fails there
            reply = {"drawn": False, "error": f"{type(error).__name__}: {error}"}
        replies.write((json.dumps(reply) + "\n").encode())
        replies.flush()
