"""The pipeline model: a validated, versioned chain of stages, loaded from safe YAML.

A pipeline file (version 1) lists stages; each names its output, a function, its
parameters, which earlier outputs feed its data arguments, and whether its output is
saved. Everything is checked when the pipeline is built, before any image is touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import PipelineError, StageError, listening_for_ctrl_c
from ..images.channels import Channel, parse_channels
from ..stages.forests import trained_forest, training_key
from ..stages.registry import BUILT_IN_MODULES, SPACING_ARG
from .code_identity import code_identity
from .quality import QUALITY_KEY, QualityRule, parse_quality
from .readout import READOUT, SCREEN_KEY, check_readout, parse_screen
from .stage_config import INPUT, StageConfig, check_output, upstream, validate_stages
from .yaml_file import load_yaml, read_pipeline_text

__all__ = ["INPUT", "VERSION", "Pipeline", "StageConfig"]

VERSION = 1
_TOP_KEYS = {"version", "name", "channels", "stages", QUALITY_KEY, SCREEN_KEY}


class Pipeline:
    """A validated chain of stages.

    Parameters
    ----------
    stages : iterable of StageConfig or mapping
        The stages in order, as :class:`StageConfig` or as the mappings of a file.
    name : str
        A name for people; it does not change results.
    channels : mapping, optional
        The ``channels:`` section: names for the channels of the inputs, which stages
        take like ``input`` (see :mod:`.images.channels`). ``input`` is then the first
        of them.
    quality : list of mapping or QualityRule, optional
        The ``quality:`` section: rules that flag images by a per-image measurement
        (see :mod:`.quality`). They are not part of :attr:`hash`.
    folder : path, optional
        Where the files the pipeline names by a relative path are (a classifier's
        ``training``): the pipeline file's folder; None for the working folder. It is
        not part of :attr:`hash` (the files' hashes are).
    readout : str, optional
        The ``screen:`` section's readout (see :mod:`.readout`); not part of :attr:`hash`.

    Raises
    ------
    PipelineError
        Naming the stage, the key and what was expected, for the first problem found.
    """

    def __init__(
        self,
        stages: Iterable[StageConfig | Mapping[str, Any]],
        name: str = "pipeline",
        channels: Mapping[str, Any] | Iterable[Channel] | None = None,
        quality: Iterable[Mapping[str, Any] | QualityRule] | None = None,
        folder: str | Path | None = None,
        readout: str | None = None,
    ):
        if not isinstance(name, str) or not name.strip():
            raise PipelineError(f"name: expected a non-empty string, got {name!r}")
        self.name = name
        if isinstance(channels, tuple) and all(isinstance(c, Channel) for c in channels):
            channels = {c.name: c.to_yaml() for c in channels} or None
        self.channels: tuple[Channel, ...] = parse_channels(channels, reserved=(INPUT,))
        self.stages: tuple[StageConfig, ...] = validate_stages(list(stages), self.input_names)
        self._by_name = {s.name: s for s in self.stages}
        rules: Any = quality  # anything but a list or tuple is refused by parse_quality
        if isinstance(quality, (list, tuple)):
            rules = [r.to_dict() if isinstance(r, QualityRule) else r for r in quality]
        self.quality: tuple[QualityRule, ...] = parse_quality(rules, self.stages)
        self.folder: Path | None = None if folder is None else Path(folder)
        self.readout: str | None = check_readout(readout, self.stages)

    # -- loading and saving -------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path) -> Pipeline:
        """Load a pipeline file (safe YAML only)."""
        path = Path(path)
        pipeline = cls.from_text(read_pipeline_text(path), source=str(path))
        pipeline.folder = path.expanduser().resolve().parent
        return pipeline

    @classmethod
    def from_text(cls, text: str, source: str = "pipeline") -> Pipeline:
        """Build a pipeline from the YAML text of a pipeline file (see :mod:`.pipeline_yaml`
        for what the text may hold)."""
        return cls.from_dict(load_yaml(text, source), source=source)

    @classmethod
    def from_dict(cls, data: Any, source: str = "pipeline") -> Pipeline:
        """Build a pipeline from the mapping of a pipeline file."""
        if not isinstance(data, Mapping):
            raise PipelineError(
                f"{source}: expected a mapping with keys version, name, stages; got {type(data).__name__}"
            )
        unknown = sorted(set(map(str, data)) - _TOP_KEYS)
        if unknown:
            raise PipelineError(
                f"{source}: unknown key {unknown[0]!r}; expected {', '.join(sorted(_TOP_KEYS))}"
            )
        version = data.get("version")
        if version != VERSION or isinstance(version, bool):  # True == 1
            raise PipelineError(
                f"{source}: version: expected {VERSION}, got {version!r}"
                + (" (missing)" if version is None else " (unsupported version)")
            )
        stages = data.get("stages")
        if not isinstance(stages, list) or not stages:
            raise PipelineError(f"{source}: stages: expected a non-empty list of stages, got {stages!r}")
        return cls(
            stages,
            name=data.get("name", "pipeline"),
            channels=data.get("channels"),
            quality=data.get(QUALITY_KEY),
            readout=parse_screen(data.get(SCREEN_KEY)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The pipeline as a file mapping, every default filled in."""
        data: dict[str, Any] = {"version": VERSION, "name": self.name}
        if self.channels:
            data["channels"] = {c.name: c.to_yaml() for c in self.channels}
        data["stages"] = [s.to_dict() for s in self.stages]
        if self.quality:
            data[QUALITY_KEY] = [rule.to_dict() for rule in self.quality]
        if self.readout:
            data[SCREEN_KEY] = {READOUT: self.readout}
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def save(self, path: str | Path) -> Path:
        """Write the pipeline file whole or not at all."""
        from ..files import write_text_atomic

        return write_text_atomic(Path(path), self.to_yaml())

    # -- identity -----------------------------------------------------------------------

    def with_quality(self, quality: Iterable[Mapping[str, Any] | QualityRule] | None) -> Pipeline:
        """The same pipeline judged by other quality rules (None: none)."""
        return self._copy(self.stages, quality)

    @property
    def hash(self) -> str:
        """A stable content hash of what the pipeline computes (its name and quality
        rules aside: they judge images, they do not change them)."""
        stages = [s.to_dict() for s in self.stages]
        if not self.channels:
            return _digest(stages)
        return _digest({"channels": self.to_dict()["channels"], "stages": stages})

    def stage_key(self, name: str) -> str:
        """A hash of one stage's output: its own config and code, and those of everything
        upstream (a stage whose code changed gives another key, as a changed parameter)."""
        stage = self[name]
        upstream = {arg: self._source_key(src) for arg, src in stage.inputs.items()}
        return _digest([stage.function, stage.params, upstream, code_identity(stage.spec.function)])

    def source_key(self, source: str) -> str:
        """The key of what ``source`` names: a stage's :meth:`stage_key`, or a loaded image's."""
        return self._source_key(source)

    def _source_key(self, source: str) -> str:
        if source in self._by_name:
            return self.stage_key(source)
        channel = self.channel_of(source)
        return INPUT if channel is None else _digest(["channel", channel.name, channel.to_yaml()])

    # -- images ---------------------------------------------------------------------------

    @property
    def input_names(self) -> tuple[str, ...]:
        """The names of the loaded images stages may take: ``input`` and the channels."""
        return (INPUT, *(c.name for c in self.channels))

    def channel_of(self, source: str) -> Channel | None:
        """The channel ``source`` names (``input``: the first channel); None without channels."""
        if not self.channels:
            return None
        if source == INPUT:
            return self.channels[0]
        return next((c for c in self.channels if c.name == source), None)

    def images_of(self, image: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The loaded images by name, from one array or a mapping of channel names.

        Raises
        ------
        PipelineError
            If the pipeline names channels and one is missing, or it gets one array.
        """
        if not isinstance(image, Mapping):
            if self.channels:
                names = ", ".join(c.name for c in self.channels)
                raise PipelineError(
                    f"the pipeline names its channels ({names}); give one image per channel, by name"
                )
            return {INPUT: image}
        images = dict(image)
        missing = [c.name for c in self.channels if c.name not in images]
        if missing:
            raise PipelineError(f"no image for channel(s) {', '.join(missing)}")
        if INPUT not in images:
            if not self.channels:
                raise PipelineError(f"no image named {INPUT!r}")
            images[INPUT] = images[self.channels[0].name]
        return images

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, stages=[{', '.join(s.name for s in self.stages)}])"

    # -- access -------------------------------------------------------------------------

    def __getitem__(self, name: str) -> StageConfig:
        try:
            return self._by_name[name]
        except KeyError:
            raise PipelineError(f"no stage named {name!r}; stages are {', '.join(self._by_name)}") from None

    def __iter__(self) -> Iterator[StageConfig]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    @property
    def modules(self) -> list[str]:
        """The modules that hold this pipeline's stage functions (a worker imports them)."""
        return sorted({getattr(s.spec.function, "__module__", None) or "builtins" for s in self.stages})

    @property
    def user_code(self) -> tuple[str, ...]:
        """What the code of the user's own stages is: ``module:function=identity`` of each
        stage function outside the built-in stages (:func:`.code_identity`), sorted; empty
        for built-in stages only. A warm worker that imported other code cannot run it."""
        functions = {s.spec.function for s in self.stages if _users(s.spec.function)}
        return tuple(
            sorted(
                f"{getattr(f, '__module__', '')}:{getattr(f, '__qualname__', '')}={code_identity(f)}"
                for f in functions
            )
        )

    @property
    def session_functions(self) -> list[str]:
        """The user's stage functions a new process could not find: registered in this
        session under a plain name, or defined in ``__main__`` (a script, a notebook)."""
        return sorted(
            {
                s.function
                for s in self.stages
                if _users(s.spec.function) and (":" not in s.function or s.function.startswith("__main__:"))
            }
        )

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    @property
    def table_stages(self) -> list[str]:
        return [s.name for s in self.stages if s.returns == "table"]

    @property
    def group_stages(self) -> list[str]:
        """The group stages (see DESIGN, "Group stages"), in order."""
        return [s.name for s in self.stages if s.group_by is not None]

    def upstream(self, name: str) -> set[str]:
        """The stages ``name`` depends on, directly or not (itself excluded)."""
        return upstream({s.name: s.inputs for s in self.stages}, self[name].name)

    @property
    def saved_stages(self) -> list[str]:
        return [s.name for s in self.stages if s.save and s.returns != "table"]

    def with_params(self, overrides: Mapping[str, Any]) -> Pipeline:
        """A copy with some parameters changed, keyed ``'stage.param'``; validated."""
        stages = {s.name: s for s in self.stages}
        for key, value in overrides.items():
            stage_name, _, param = key.partition(".")
            if stage_name not in stages or not param:
                raise PipelineError(
                    f"parameter {key!r}: expected 'stage.param' with a stage among {', '.join(stages)}"
                )
            stage = stages[stage_name]
            stages[stage_name] = replace(stage, params={**stage.params, param: value})
        return self._copy(stages.values(), self.quality)

    def _copy(
        self, stages: Iterable[StageConfig], quality: Iterable[Mapping[str, Any] | QualityRule] | None
    ) -> Pipeline:
        copied = Pipeline(stages, name=self.name, channels=self.channels, quality=quality, folder=self.folder)
        copied.readout = check_readout(self.readout, copied.stages)
        return copied

    # -- running ------------------------------------------------------------------------

    @property
    def classifier_stages(self) -> list[str]:
        """The stages that need a trained forest (``pixel_classifier``, ``object_classifier``)."""
        return [s.name for s in self.stages if s.spec.trains is not None]

    def train(self) -> dict[str, Any]:
        """Train the forests of the classifier stages (those not trained in this process
        yet), from their training files relative to :attr:`folder`.

        Returns
        -------
        dict of str to forest
            Each classifier stage's forest by its training key (:func:`.forests.training_key`),
            for workers that run this pipeline elsewhere (:func:`.forests.remember`).

        Raises
        ------
        PipelineError
            Naming the stage, when its training file is missing, malformed or not the one
            its hash names, or holds nothing to learn from.
        """
        trained: dict[str, Any] = {}
        for name in self.classifier_stages:
            stage = self[name]
            kind = stage.spec.trains or ""
            try:
                trained[training_key(kind, stage.params)] = trained_forest(kind, stage.params, self.folder)
            except ValueError as error:
                raise PipelineError(str(error), stage=name, key="params.training") from None
        return trained

    def run(
        self,
        image: np.ndarray | Mapping[str, np.ndarray],
        *,
        spacing: tuple[float, ...] | None = None,
        until: str | None = None,
        on_stage: Callable[[str, Any], None] | None = None,
        given: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run the chain on one image.

        Parameters
        ----------
        image : ndarray or mapping
            The loaded image (``input``), or with channels one image per channel name.
        spacing : tuple of float, optional
            The pixel size, for stages that take it (``measure`` with physical units).
        until : str, optional
            Stop after this stage.
        on_stage : callable, optional
            Called as ``on_stage(name, output)`` after each stage.
        given : mapping, optional
            Outputs of some stages already known, by stage name (a group stage's result
            for the image's group): those stages are not run. A group stage not given
            runs on a group of this one image.

        Returns
        -------
        dict of str to output
            Every stage's output by stage name, in order.

        Raises
        ------
        StageError
            If a stage raises or returns something of the wrong kind.
        """
        outputs: dict[str, Any] = {}
        available = self.images_of(image)
        for stage in self.stages:
            if given is not None and stage.name in given:
                result = given[stage.name]
            else:
                result = self.run_stage(stage.name, available, spacing=spacing)
            outputs[stage.name] = available[stage.name] = result
            if on_stage is not None:
                on_stage(stage.name, result)
            if stage.name == until:
                break
        return outputs

    def run_stage(
        self, name: str, available: Mapping[str, Any], *, spacing: tuple[float, ...] | None = None
    ) -> Any:
        """Run one stage with its inputs taken from ``available`` (the images and outputs)."""
        stage = self[name]
        kwargs = {arg: available[src] for arg, src in stage.inputs.items()}
        if stage.spec.group:  # one image: a group of one
            kwargs = {arg: iter([value]) for arg, value in kwargs.items()}
        return self._call(stage, kwargs, spacing)

    def run_group(self, name: str, images: Iterable[Any]) -> Any:
        """Run the group stage ``name`` on a group's images (an iterable, in image order)."""
        stage = self[name]
        return self._call(stage, {stage.spec.main_arg: images}, None)

    def _call(self, stage: StageConfig, kwargs: dict[str, Any], spacing: tuple[float, ...] | None) -> Any:
        spec = stage.spec
        if spec.takes_spacing:
            kwargs[SPACING_ARG] = spacing
        try:
            if spec.trains is not None:  # its forest, from its training file beside the pipeline file
                trained_forest(spec.trains, stage.params, self.folder)
            result = spec.function(**kwargs, **stage.params)
        except (Exception, SystemExit) as error:  # sys.exit in a stage fails one image
            raise StageError(stage.name, stage.function, error) from error
        except KeyboardInterrupt as error:
            if listening_for_ctrl_c():
                raise  # Ctrl-C at the terminal: the whole run stops
            raise StageError(stage.name, stage.function, error) from error
        return check_output(stage, stage.returns, result)


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _users(function: Callable[..., Any]) -> bool:
    """Whether ``function`` is a user's, not one of the built-in stages."""
    return not (getattr(function, "__module__", "") or "").startswith(BUILT_IN_MODULES)
