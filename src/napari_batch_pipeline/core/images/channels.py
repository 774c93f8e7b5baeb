"""The ``channels:`` section of a pipeline: which channel of a file (or which file) each
name means, checked when the pipeline loads and resolved against each file.

```yaml
channels:
  dna: 0                     # by index in the file
  cyto: "Alexa 568"          # by the name the file stores
  actin: {file: "*_actin.tif"}   # or one file per channel, matched by a pattern
```
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PipelineError

__all__ = ["Channel", "channel_lines", "match_channel_file", "parse_channels", "resolve_channels"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Channel:
    """One named channel of a pipeline's inputs: exactly one of index, stored or file."""

    name: str
    index: int | None = None
    stored: str | None = None
    file: str | None = None

    def to_yaml(self) -> Any:
        if self.file is not None:
            return {"file": self.file}
        return self.index if self.index is not None else self.stored


def parse_channels(data: Any, reserved: Sequence[str] = ()) -> tuple[Channel, ...]:
    """Check the ``channels:`` mapping of a pipeline file.

    Raises
    ------
    PipelineError
        Naming the channel and what was expected.
    """
    if data is None:
        return ()
    if not isinstance(data, Mapping) or not data:
        raise PipelineError(
            f"channels: expected a mapping of names to a channel index, a stored channel name or "
            f"{{file: PATTERN}}, got {data!r}"
        )
    channels = []
    for name, value in data.items():
        where = f"channels.{name}"
        if not isinstance(name, str) or not _NAME.match(name) or name in reserved:
            raise PipelineError(
                f"{where}: expected a name of letters, digits, '_' or '-' that is not "
                f"{', '.join(map(repr, reserved))}, got {name!r}"
            )
        channels.append(_channel(name, value, where))
    kinds = {channel.file is not None for channel in channels}
    if len(kinds) > 1:
        raise PipelineError(
            "channels: either every channel is a file pattern ({file: ...}) or none is; "
            "channels of one file and channels in separate files cannot be mixed"
        )
    return tuple(channels)


def _channel(name: str, value: Any, where: str) -> Channel:
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if value >= 0:
            return Channel(name, index=value)
    elif isinstance(value, str):
        if value.strip():
            return Channel(name, stored=value)
    elif isinstance(value, Mapping) and set(value) == {"file"}:
        pattern = value["file"]
        if isinstance(pattern, str) and pattern.count("*") == 1 and "**" not in pattern:
            return Channel(name, file=pattern)
        raise PipelineError(
            f"{where}.file: expected a file name pattern with exactly one '*' (the part that "
            f"names the field, as in '*_nuclei.tif'), got {pattern!r}"
        )
    raise PipelineError(
        f"{where}: expected a channel index (0, 1, ...), the channel name the file stores, "
        f"or {{file: PATTERN}}, got {value!r}"
    )


def resolve_channels(
    channels: Sequence[Channel], stored: Sequence[str], count: int, file: str
) -> dict[str, int]:
    """The index in one file of each named channel.

    Raises
    ------
    PipelineError
        Naming the file, the channel and the channels the file has.
    """
    indices = {}
    for channel in channels:
        if channel.index is not None:
            if channel.index >= count:
                raise PipelineError(
                    f"{file}: channel {channel.name!r} is index {channel.index}, but the file has "
                    f"{count} channel(s): {_listing(stored, count)}"
                )
            indices[channel.name] = channel.index
        elif channel.stored is not None:
            if channel.stored not in stored:
                raise PipelineError(
                    f"{file}: channel {channel.name!r} is {channel.stored!r}, which the file does not "
                    f"store; its channels are {_listing(stored, count)}"
                )
            indices[channel.name] = list(stored).index(channel.stored)
    return indices


def _listing(stored: Sequence[str], count: int) -> str:
    if len(stored) == count:
        return ", ".join(f"{i}: {name!r}" for i, name in enumerate(stored))
    return ", ".join(str(i) for i in range(count)) + " (the file stores no channel names)"


def channel_lines(stored: Sequence[str], count: int) -> str:
    """The ``channels:`` lines a user can add for a file with these channels."""
    lines = ["channels:"]
    for index in range(count):
        name = stored[index] if len(stored) == count else ""
        key = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower()
        if not key or len(key) > 16:  # a long stored name (often a file name) makes a poor key
            key = f"channel{index}"
        elif not key[0].isalpha():
            key = f"c{key}"
        lines.append(f"  {key}: {index}" + (f"        # {name!r}" if name else ""))
    return "\n".join(lines)


def match_channel_file(pattern: str, name: str) -> str | None:
    """The text in place of ``*`` when file ``name`` matches ``pattern``, else None."""
    if not fnmatch.fnmatchcase(name, pattern):
        return None
    head, _, tail = pattern.partition("*")
    if len(name) < len(head) + len(tail):
        return None
    return name[len(head) : len(name) - len(tail)]
