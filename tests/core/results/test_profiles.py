"""wells.parquet as pycytominer reads it: the README's lines, run as they are written."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[3] / "README.md"


def _readme_block(word: str) -> str:
    """The README's Python block that uses ``word``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    (block,) = [b for b in blocks if word in b]
    return block


def test_the_readme_s_feature_select_runs_on_wells_parquet(tmp_path: Path, run_screen) -> None:
    pytest.importorskip("pycytominer")
    run = tmp_path / "screen"
    assert run_screen(run, table_format="parquet").failed == 0
    code = _readme_block("feature_select").replace('"screen/wells.parquet"', repr(str(run / "wells.parquet")))
    names: dict = {}
    exec(compile(code, "README.md", "exec"), names)
    wells, features, selected = names["wells"], names["features"], names["selected"]
    assert len(wells) == 16 and "nuclei.mean_area" in features and "quality.count" not in features
    metadata = [c for c in wells.columns if c not in features and not c.startswith("quality.")]
    assert metadata[:2] == ["plate", "well"] and {"fields", "fields_flagged", "control"} <= set(metadata)
    assert set(metadata) <= set(selected.columns)  # the metadata are kept as they are
    kept = [c for c in selected.columns if c in features]
    assert kept and set(kept) <= set(features)
    pd.testing.assert_frame_equal(selected[kept], wells[kept])
