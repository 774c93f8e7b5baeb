"""How each stage runs tile by tile: its kind, and for a local stage its radius.

- **pointwise / local**: the output at a pixel depends on the input within ``radius``
  pixels; a tile computed with a halo of at least the chain's summed radii has an exact
  core.
- **global**: a threshold learnt from the whole image's histogram (a first pass over the
  tiles), then applied pixel by pixel.
- **component**: objects that may cross tiles (``label``; ``remove_small_objects`` on
  labels): labelled per tile, then joined across seams (:mod:`.seams`).
- **table**: measurements of the joined objects (:mod:`.objects`).

:func:`tiled_chain` sorts a pipeline's stages into these kinds, or refuses the pipeline
before anything runs, naming the first stage that cannot run tiled and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PipelineError
from ..pipeline.stage_config import StageConfig
from ..stages.forests import feature_settings

__all__ = ["EXACT_THRESHOLDS", "TiledChain", "local_radius", "tiled_chain"]

POINTWISE, LOCAL, GLOBAL, COMPONENT, TABLE = "pointwise", "local", "global", "component", "table"
#: global threshold methods computed from the whole image's histogram, exactly
EXACT_THRESHOLDS = ("otsu", "yen", "isodata", "minimum")

#: radius of a local built-in stage from its parameters
_RADII: dict[str, Callable[[Mapping[str, Any]], int]] = {
    # scipy's Gaussian kernel reaches int(truncate * sigma + 0.5) pixels, truncate = 4
    "gaussian": lambda p: int(4.0 * float(p["sigma"]) + 0.5),
    "median": lambda p: int(p["radius"]),
    # an opening is an erosion then a dilation: twice the footprint's radius
    "white_tophat": lambda p: 2 * int(p["radius"]),
    "binary_opening": lambda p: 2 * int(p["radius"]),
}
_COMPONENTS = ("label", "remove_small_objects")
_TABLES = ("measure",)


def local_radius(stage: StageConfig) -> int | None:
    """How far a local stage reaches (pixels), or None if ``stage`` is not local."""
    declared = stage.spec.radius  # a user's stage: ``@stage(radius=...)``
    if declared is not None:
        return int(declared(stage.params) if callable(declared) else declared)
    if stage.function in _RADII:
        return _RADII[stage.function](stage.params)
    if stage.function == "threshold" and stage.params.get("method") == "local":
        return int(stage.params["block_size"])  # a Gaussian of sigma (block - 1) / 6 reaches less
    if stage.function == "pixel_classifier":
        # multiscale_basic_features: a Gaussian of its largest sigma, then a Sobel filter (1
        # pixel) or the Hessian's two gradients (2); one more against the sigmas' rounding
        largest = feature_settings(stage.params.get("features") or {})["sigma_max"]
        return int(4.0 * largest + 0.5) + 3
    return None


def _untileable_classifier(stage: StageConfig) -> str | None:
    """Why a pixel classifier cannot run tiled exactly, or None if it can."""
    if stage.params.get("normalize", "percentile") != "none":
        return (
            "normalize: percentile scales each image by its own percentiles, which one tile "
            "does not see; set normalize: none to run it tiled"
        )
    if stage.params.get("channel_axis") is not None:
        return "a pixel classifier of a multi-channel image cannot run tiled yet"
    return None


@dataclass(frozen=True)
class TiledChain:
    """A pipeline's stages sorted by how they run tiled (see the module docstring).

    Attributes
    ----------
    pixel : tuple of StageConfig
        Stages of images and masks (pointwise, local, global), in pipeline order.
    thresholds : tuple of str
        The global ones among them (a histogram pass each).
    components : tuple of StageConfig
        ``label`` and ``remove_small_objects`` on its labels, in order.
    tables : tuple of StageConfig
        Measurements of the components' objects.
    radius : int
        The pixel stages' summed radii: the least halo that keeps every core exact.
    """

    pixel: tuple[StageConfig, ...]
    thresholds: tuple[str, ...]
    components: tuple[StageConfig, ...]
    tables: tuple[StageConfig, ...]
    radius: int

    def kind(self, name: str) -> str:
        if name in {s.name for s in self.components}:
            return COMPONENT
        if name in {s.name for s in self.tables}:
            return TABLE
        return GLOBAL if name in self.thresholds else LOCAL


def tiled_chain(pipeline: Any) -> TiledChain:
    """Sort ``pipeline``'s stages by how they run tiled.

    Raises
    ------
    PipelineError
        Naming the stage that cannot run tiled (a stage of another kind, a threshold
        method that needs every pixel at once, a user's stage, a stage reading objects'
        outputs back into pixels) and what to do instead.
    """
    if len(pipeline.input_names) > 1:
        raise _refuse(None, "a pipeline with named channels cannot run tiled yet")
    pixel: list[StageConfig] = []
    thresholds: list[str] = []
    components: list[StageConfig] = []
    tables: list[StageConfig] = []
    images = {"input"}  # names whose outputs are images or masks
    objects: set[str] = set()
    radius = 0
    for stage in pipeline.stages:
        sources = set(stage.inputs.values())
        if stage.spec.group:
            raise _refuse(stage, "a group stage cannot run tiled yet")
        if stage.function in _COMPONENTS:
            if stage.function == "label" and not sources <= images:
                raise _refuse(stage, "label runs tiled on a mask made by earlier image stages only")
            if stage.function == "remove_small_objects" and not sources <= objects:
                raise _refuse(
                    stage, "remove_small_objects runs tiled on labels only: put it after the label stage"
                )
            components.append(stage)
            objects.add(stage.name)
        elif stage.function in _TABLES:
            labels = stage.inputs.get("labels")
            others = sources - {labels}
            if labels not in objects or not others <= images:
                raise _refuse(stage, "a tiled measurement takes the labels of a label stage")
            if stage.params.get("units") == "physical":
                raise _refuse(stage, "a tiled measurement is in pixels; set units: pixels")
            tables.append(stage)
        else:
            if not sources <= images:
                raise _refuse(stage, "an image stage after the labels cannot run tiled yet")
            if stage.function == "threshold" and stage.params.get("method") != "local":
                method = stage.params.get("method")
                if method not in EXACT_THRESHOLDS:
                    raise _refuse(
                        stage,
                        f"threshold method {method!r} cannot be computed exactly tile by tile; "
                        f"choose one of {', '.join(EXACT_THRESHOLDS)}",
                    )
                thresholds.append(stage.name)
            elif stage.function == "pixel_classifier" and (why := _untileable_classifier(stage)):
                raise _refuse(stage, why)
            elif (reach := local_radius(stage)) is not None:
                radius += reach
            elif ":" in stage.function:  # a user's function
                raise _refuse(
                    stage,
                    "a user's stage runs tiled when it declares how far it reaches: decorate it "
                    "with @stage(radius=N) from napari_batch_pipeline",
                )
            else:
                raise _refuse(stage, f"{stage.function} does not run tiled yet")
            pixel.append(stage)
            images.add(stage.name)
    return TiledChain(tuple(pixel), tuple(thresholds), tuple(components), tuple(tables), radius)


def _refuse(stage: StageConfig | None, why: str) -> PipelineError:
    where = f"stage {stage.name!r} ({stage.function}): " if stage is not None else ""
    return PipelineError(
        f"{where}{why}; run this image whole (tile: none) or change the stage",
        stage=stage.name if stage is not None else None,
        options=("tile",),
    )
