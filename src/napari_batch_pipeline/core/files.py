"""Writing files whole or not at all: a temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_text_atomic"]

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any error the temporary file is removed, so ``target`` is either the old file,
    absent, or the complete new one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.stem[:40]}.", suffix=".part" + target.suffix
    )
    os.close(handle)
    temporary = Path(name)
    os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_text_atomic(target: Path, text: str) -> Path:
    """Write ``text`` to ``target`` whole or not at all."""
    return _write(target, lambda path: path.write_text(text, encoding="utf-8"))


def _write(target: Path, writer: Callable[[Path], object]) -> Path:
    with atomic_path(target) as temporary:
        writer(temporary)
    return target
