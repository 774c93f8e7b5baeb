"""The ``screen:`` section of a pipeline file: the measurement a screen is about.

::

    screen:
      readout: nuclei.mean_intensity_mean

``readout`` names a per-image measurement as images.csv, normalized.csv and assay.csv
name it: ``<stage>.count`` (a table stage's number of rows) or
``<stage>.mean_<measurement>`` (the mean of one of its columns). The plate figures show
it and the demo prints its Z' (see DESIGN, "Screens"). It is checked when the pipeline
is built, before any image: a stage that is not a table stage, or a measurement a
built-in stage does not give, is refused naming the measurements it gives. Like the
quality rules, the readout judges results and changes none: it is not part of the
pipeline's hash. Without one, a screen's figures show the first measurement and say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import PipelineError
from .quality import COUNT, gives, known_measurements
from .stage_config import StageConfig

__all__ = ["READOUT", "SCREEN_KEY", "check_readout", "parse_screen", "readouts"]

#: the pipeline file's key of the screen's settings, and its one key
SCREEN_KEY = "screen"
READOUT = "readout"
_MEAN = "mean_"


def parse_screen(data: Any) -> str | None:
    """The readout of a ``screen:`` section (None: no section, or no readout in it).

    Raises
    ------
    PipelineError
        If the section is not a mapping, has another key, or a readout that is no text.
    """
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PipelineError(f"{SCREEN_KEY}: expected a mapping such as {{{READOUT}: stage.mean_measurement}}")
    unknown = sorted(set(map(str, data)) - {READOUT})
    if unknown:
        raise PipelineError(f"{SCREEN_KEY}: unknown key {unknown[0]!r}; expected {READOUT}")
    readout = data.get(READOUT)
    if readout is not None and (not isinstance(readout, str) or not readout.strip()):
        raise PipelineError(f"{SCREEN_KEY}: {READOUT}: expected a measurement name, got {readout!r}")
    return readout.strip() if readout else None


def check_readout(
    readout: str | None, stages: Sequence[StageConfig], where: str = "", options: tuple[str, ...] = ()
) -> str | None:
    """``readout`` if the pipeline's table stages can give it (None passes).

    Parameters
    ----------
    readout : str or None
        ``<stage>.count`` or ``<stage>.mean_<measurement>``.
    stages : sequence of StageConfig
        The pipeline's stages.
    where : str, optional
        What names the readout in a message (default ``screen: readout``).
    options : tuple of str, optional
        The batch options that gave it (``('readout',)``), for the message's hint.

    Raises
    ------
    PipelineError
        Naming the readout and the measurements the pipeline's table stages give (those
        of a user's stage are known once it ran: ``<stage>.*``).
    """
    if readout is None:
        return None
    stage, _, column = readout.partition(".")
    tables = {s.name: s for s in stages if s.returns == "table"}
    known = known_measurements(tables[stage]) if stage in tables else set()
    measurement = column.removeprefix(_MEAN) if column.startswith(_MEAN) else None
    if column == COUNT or (measurement and measurement != COUNT and gives(known, measurement)):
        return readout
    raise PipelineError(
        f"{where or f'{SCREEN_KEY}: {READOUT}'} {readout!r}: not a measurement of the pipeline; "
        f"expected one of {', '.join(readouts(stages)) or 'none (the pipeline has no table stage)'}",
        options=options,
    )


def readouts(stages: Sequence[StageConfig]) -> list[str]:
    """The per-image measurements the pipeline's table stages give, as a readout names
    them (``<stage>.*`` for a user's stage, whose columns are known once it ran)."""
    names = []
    for stage in stages:
        if stage.returns != "table":
            continue
        known = known_measurements(stage)
        names.append(f"{stage.name}.{COUNT}")
        if known is None:
            names.append(f"{stage.name}.*")
            continue
        names += [f"{stage.name}.{_MEAN}{m}" for m in sorted(known - {COUNT})]
    return names
