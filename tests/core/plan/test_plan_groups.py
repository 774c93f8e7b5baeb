"""The groups of a plan: by key columns and swept parameters, checked before any image is read."""

from __future__ import annotations

import pytest

from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.plan.batch_plan import plan_batch

PIPELINE = {
    "version": 1,
    "stages": [
        {"name": "blurred", "function": "gaussian"},
        {"name": "illum", "function": "illumination", "group_by": ["plate"]},
        {
            "name": "flat",
            "function": "correct_illumination",
            "inputs": {"image": "input", "illumination": "illum"},
        },
        {"name": "mask", "function": "threshold"},
    ],
}
METADATA = r"(?P<plate>p\d)_(?P<site>\d)"


@pytest.fixture
def unreadable(tmp_path):
    """Files named like images that no reader could open: planning must not try."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("p1_0.tif", "p1_1.tif", "p2_0.tif"):
        (folder / name).write_bytes(b"never read")
    return folder


def _plan(folder, pipeline=PIPELINE, **options):
    return plan_batch(Pipeline.from_dict(pipeline), folder, metadata=METADATA, **options)


def test_groups_follow_the_key_columns_in_image_order(unreadable):
    groups = _plan(unreadable).groups
    assert [(g.stage, g.name, g.columns) for g in groups] == [
        ("illum", "p1", {"plate": "p1"}),
        ("illum", "p2", {"plate": "p2"}),
    ]
    assert [t.image for t in groups[0].members] == ["p1_0.tif", "p1_1.tif"]


def test_one_group_of_every_image_is_all(unreadable):
    pipeline = {
        **PIPELINE,
        "stages": [{**s, "group_by": []} if s["name"] == "illum" else s for s in PIPELINE["stages"]],
    }
    (group,) = _plan(unreadable, pipeline).groups
    assert group.name == "all" and len(group.members) == 3


def test_without_group_by_a_run_of_one_folder_is_one_group_and_a_recursive_one_a_group_per_folder(
    unreadable,
):
    pipeline = {
        **PIPELINE,
        "stages": [
            {k: v for k, v in s.items() if k != "group_by"}
            for s in PIPELINE["stages"]  # DESIGN's default
        ],
    }
    (group,) = _plan(unreadable, pipeline).groups
    assert group.name == "all" and len(group.members) == 3
    (unreadable / "sub").mkdir()
    (unreadable / "sub" / "p3_0.tif").write_bytes(b"never read")
    groups = _plan(unreadable, pipeline, recursive=True).groups
    assert [(g.name, g.columns, len(g.members)) for g in groups] == [
        ("top", {"folder": "."}, 3),
        ("sub", {"folder": "sub"}, 1),
    ]


def test_a_sweep_upstream_splits_groups_a_sweep_downstream_does_not(unreadable):
    plan = _plan(unreadable, sweep={"blurred.sigma": [1, 2], "mask.method": ["otsu", "li"]})
    names = sorted(g.name for g in plan.groups)
    assert names == [
        "p1__blurred.sigma=1.0",
        "p1__blurred.sigma=2.0",
        "p2__blurred.sigma=1.0",
        "p2__blurred.sigma=2.0",
    ]
    first = next(g for g in plan.groups if g.name == "p1__blurred.sigma=1.0")
    assert len(first.tasks) == 4 and len(first.members) == 2  # two thresholds share the group


def test_a_parameter_table_may_not_split_one_group(unreadable, tmp_path):
    table = tmp_path / "params.csv"
    table.write_text("plate,illum.smoothing\np1,10\np2,20\n")
    assert len(_plan(unreadable, params=table).groups) == 2
    table.write_text("image,illum.smoothing\np1_0.tif,10\np1_1.tif,20\n")
    with pytest.raises(
        PipelineError, match=r"stage 'illum', params: the parameter table gives one group different"
    ):
        _plan(unreadable, params=table)


def test_a_missing_group_column_names_the_columns_there_are(unreadable):
    pipeline = {
        **PIPELINE,
        "stages": [{**s, "group_by": ["well"]} if s["name"] == "illum" else s for s in PIPELINE["stages"]],
    }
    with pytest.raises(PipelineError, match=r"group_by names 'well'.*folder, image, .*plate, .*site"):
        _plan(unreadable, pipeline)
