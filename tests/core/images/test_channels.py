"""The pipeline's ``channels:`` section: checked when the pipeline loads, resolved per file."""

from __future__ import annotations

import numpy as np
import pytest

from napari_batch_pipeline import Pipeline
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.images.channels import channel_lines, parse_channels, resolve_channels

STAGES = """
stages:
  - {name: blurred, function: gaussian, inputs: {image: dna}}
  - {name: mask, function: threshold}
  - {name: labels, function: label}
  - {name: cells, function: measure, inputs: {labels: labels, intensity: cyto}}
"""


def load(channels: str, stages: str = STAGES) -> Pipeline:
    return Pipeline.from_text(f"version: 1\n{channels}\n{stages}")


def test_channels_round_trip_and_take_part_in_the_hash() -> None:
    pipeline = load('channels: {dna: 0, cyto: "Alexa 568"}')
    again = Pipeline.from_text(pipeline.to_yaml())
    assert again == pipeline and again.hash == pipeline.hash
    assert pipeline.input_names == ("input", "dna", "cyto")
    assert load("channels: {dna: 1, cyto: 0}").hash != pipeline.hash


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ("channels: {dna: -1, cyto: 2}", "channels.dna: expected a channel index"),
        ("channels: {dna: true, cyto: 2}", "channels.dna: expected a channel index"),
        ("channels: {dna: '', cyto: 2}", "channels.dna: expected a channel index"),
        ("channels: {input: 0, cyto: 2}", "'input'"),
        ("channels: {dna: {file: nuclei.tif}, cyto: {file: '*_a.tif'}}", "exactly one '*'"),
        ("channels: {dna: 0, cyto: {file: '*_a.tif'}}", "cannot be mixed"),
        ("channels: [dna, cyto]", "expected a mapping"),
        ("channels: {dna: 0}", "refers to 'cyto', which does not exist"),
    ],
)
def test_bad_channels_are_refused_when_the_pipeline_loads(channels: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        load(channels)


def test_a_stage_cannot_take_a_channel_name() -> None:
    with pytest.raises(PipelineError, match="those name the images"):
        load("channels: {dna: 0, cyto: 1}", STAGES.replace("name: mask", "name: cyto"))


def test_run_takes_one_image_per_channel_and_input_is_the_first() -> None:
    pipeline = load("channels: {dna: 0, cyto: 1}")
    dna = np.zeros((20, 20))
    dna[5:10, 5:10] = 1
    cyto = np.full((20, 20), 3.0)
    outputs = pipeline.run({"dna": dna, "cyto": cyto})
    assert outputs["cells"]["intensity_mean"].tolist() == [3.0]
    assert pipeline.images_of({"dna": dna, "cyto": cyto})["input"] is dna
    with pytest.raises(PipelineError, match="one image per channel"):
        pipeline.run(dna)
    with pytest.raises(PipelineError, match="cyto"):
        pipeline.run({"dna": dna})


def test_channels_resolve_by_index_and_stored_name_or_name_the_file() -> None:
    channels = parse_channels({"dna": 0, "cyto": "Alexa 568"})
    assert resolve_channels(channels, ("DAPI", "Alexa 568"), 2, "a.tif") == {"dna": 0, "cyto": 1}
    with pytest.raises(PipelineError, match=r"a\.tif: channel 'cyto' is 'Alexa 568'.*0: 'DAPI'"):
        resolve_channels(channels, ("DAPI", "GFP"), 2, "a.tif")
    with pytest.raises(PipelineError, match=r"b\.tif: channel 'dna' is index 0, but the file has 0"):
        resolve_channels(channels, (), 0, "b.tif")


def test_the_lines_to_add_are_valid_channels() -> None:
    lines = channel_lines(("DAPI", "Alexa 568", "a_very_long_file_name_c3.tif"), 3)
    parsed = Pipeline.from_text(f"version: 1\n{lines}\nstages:\n  - {{name: b, function: gaussian}}\n")
    assert [c.name for c in parsed.channels] == ["dapi", "alexa_568", "channel2"]
