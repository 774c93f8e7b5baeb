"""One run at a time per output folder: the lock file ``.lock`` and who holds it.

A run takes the lock before it writes anything in its folder and releases it on every
way out (finished, cancelled, failed). The file holds the holder's process id, host,
start time and a token of its own. A second run into the folder is refused with a
message that names the holder. A lock whose process is gone (a run killed with
``kill -9``, a machine that rebooted) is stale: on the same host that is certain, and
the next run takes it over. A lock from another host cannot be checked from here; the
message says which file to delete if no run is going on there.

Reading and replacing the file happens under a short ``flock`` (where the platform has
one), so two runs that start at the same moment cannot both take it. The ``flock`` is
never held while the run goes on: worker processes forked from the run would inherit it
and keep the folder locked after a ``kill -9`` of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import PipelineError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunLock"]


class RunLock:
    """The lock of one run folder.

    Parameters
    ----------
    path : Path
        The lock file (``RunLayout.lock_file``).
    folder : Path
        The run folder, as messages name it.

    Thread-safety: one instance belongs to one run; two instances (two runs, in one
    process or two) exclude each other.
    """

    def __init__(self, path: Path, folder: Path):
        self.path = path
        self.folder = folder
        self._token: str | None = None

    @property
    def held(self) -> bool:
        """Whether this run holds the lock."""
        return self._token is not None

    def check(self) -> None:
        """Refuse now if another live run holds the folder; changes nothing.

        Raises
        ------
        PipelineError
            Naming the holder.
        """
        if self.held or not self.path.exists():
            return
        with contextlib.suppress(OSError):
            holder = _parse(self.path.read_bytes())
            if holder is not None and _alive(holder):
                raise PipelineError(self._in_use(holder))

    def acquire(self) -> None:
        """Take the lock, or take over a stale one.

        Raises
        ------
        PipelineError
            If a live run holds it (naming it), or the file cannot be written.
        """
        if self.held:
            return
        token = uuid.uuid4().hex
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "since": _process_start(os.getpid()),
            "token": token,
        }
        try:
            for _ in range(10):
                with _locked(self.path) as fd:
                    if fd is None:
                        continue  # the file was replaced meanwhile: look again
                    holder = _parse(_read(fd))
                    if holder is not None and _alive(holder):
                        raise PipelineError(self._in_use(holder))
                    data = (json.dumps(mine) + "\n").encode()
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, data, 0)
                    os.fsync(fd)
                    self._token = token
                    return
        except OSError as error:
            raise PipelineError(
                f"output folder {str(self.folder)!r} cannot be written: {error.strerror or error}"
            ) from None
        raise PipelineError(
            f"output folder {str(self.folder)!r}: could not take its lock file {self.path.name}"
        )

    def release(self) -> None:
        """Give the lock back (delete the file if it is still this run's); never raises."""
        token, self._token = self._token, None
        if token is None:
            return
        with contextlib.suppress(OSError), _locked(self.path, create=False) as fd:
            if fd is not None and (_parse(_read(fd)) or {}).get("token") == token:
                self.path.unlink()

    def _in_use(self, holder: dict[str, Any]) -> str:
        where = f"process {holder.get('pid')} on {holder.get('host')}"
        if holder.get("started"):
            where += f", started {holder['started']}"
        message = f"output folder {str(self.folder)!r} is in use by another run ({where})"
        if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            message = f"output folder {str(self.folder)!r} is in use by another run of this process"
        message += "; wait for it to end or cancel it, or choose another output folder"
        if holder.get("host") != socket.gethostname():
            message += f" (if no run is going on there, delete {str(self.path)!r})"
        return message


@contextlib.contextmanager
def _locked(path: Path, *, create: bool = True) -> Iterator[int | None]:
    """An open descriptor of ``path`` under an exclusive ``flock``; None if the file was
    replaced or deleted while waiting for the lock (the caller looks again)."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        yield fd if same else None
    finally:
        os.close(fd)  # also releases the flock


def _read(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 4096, offset):
        chunks.append(chunk)
        offset += len(chunk)
        if offset > 65536:
            break
    return b"".join(chunks)


def _parse(data: bytes) -> dict[str, Any] | None:
    """The holder a lock file names; None for an empty or damaged file (a stale lock)."""
    try:
        holder = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return None
    return holder


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the holder may still be running (always, for another host)."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    except OSError:
        return False
    since = holder.get("since")
    now = _process_start(pid)
    # the pid taken by a new process since: the holder is gone
    return not (since is not None and now is not None and abs(now - since) > 1)


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), where the system tells:
    on Linux from ``/proc`` (what psutil reads too, without the tenth of a second its
    import costs a one-image run), elsewhere through psutil."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            # the fields after the command name (which may hold spaces and parentheses)
            fields = file.read().rpartition(")")[2].split()
        with open("/proc/stat", encoding="ascii") as file:
            boot = next(float(line.split()[1]) for line in file if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None
