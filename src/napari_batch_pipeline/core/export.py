"""Export a pipeline as a plain, standalone Python script that writes the same tables.

The script imports scikit-image, numpy, pandas and tifffile (scipy comes with
scikit-image), plus the user's own modules where the pipeline names them. Built-in stage
functions are copied from their source, so the script computes exactly what the engine
computes; each pipeline stage becomes one function, its parameters named constants.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from .files import write_text_atomic
from .pipeline import INPUT, Pipeline
from .run import provenance_versions
from .stages import STAGES
from .stages.measure import DEFAULT_PROPERTIES

__all__ = ["export_script", "script_text"]

_PRELUDE = """\
import argparse
import re
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage as ndi
from skimage import exposure, feature, filters, measure, morphology, segmentation
from skimage import measure as sk_measure

ThresholdMethod = Literal["otsu", "li", "yen", "triangle", "mean", "isodata", "minimum", "local"]
THRESHOLD_METHODS = ThresholdMethod.__args__
DEFAULT_PROPERTIES = {default_properties!r}
"""

_RUNNER = """
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def natural_key(text):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\\d+)", text)]


def find_images(folder, pattern=None, output=None):
    walker = folder.glob(pattern or "*")
    found = []
    for path in walker:
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if pattern is None and path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if output is not None and path.resolve().is_relative_to(output):
            continue
        found.append(relative.as_posix())
    return sorted(found, key=natural_key)


def read_image(path):
    if path.suffix.lower() in (".tif", ".tiff"):
        image = tifffile.imread(path)
    else:
        from skimage import io

        image = io.imread(path)
    image = np.squeeze(np.asarray(image))
    if image.ndim != 2:
        raise ValueError(f"{path.name} has shape {image.shape}; 2D images are expected")
    return image


def summarize(stage, table):
    summary = {f"{stage}.count": len(table)}
    for column in table.columns:
        if column == "label" or not pd.api.types.is_numeric_dtype(table[column]):
            continue
        summary[f"{stage}.mean_{column}"] = float(table[column].mean()) if len(table) else float("nan")
    return summary


def save_tiff(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data.astype(np.uint8) if data.dtype == bool else data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="folder of input images")
    parser.add_argument("output", type=Path, help="folder for the tables and saved outputs")
    parser.add_argument("--pattern", default=None, help="file name pattern (default: image files)")
    args = parser.parse_args(argv)
    folder, output = args.input.resolve(), args.output.resolve()
    images = find_images(folder, args.pattern, output)
    if not images:
        sys.exit(f"no images in {folder}")
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    tables = {stage: output / f"{stage}.csv.part" for stage in TABLE_STAGES}
    headers = {}
    for relative in images:
        start = time.perf_counter()
        row = {"image": relative}
        try:
            outputs = process(read_image(folder / relative))
            stem = relative.rsplit(".", 1)[0] if "." in Path(relative).name else relative
            for stage in SAVED_STAGES:
                save_tiff(output / stage / f"{stem}.tif", outputs[stage])
            summary = {}
            for stage in TABLE_STAGES:
                table = outputs[stage].copy()
                table.insert(0, "image", [relative] * len(table))
                with open(tables[stage], "a", encoding="utf-8") as handle:
                    if stage not in headers:
                        headers[stage] = True
                        handle.write(table.to_csv(index=False))
                    else:
                        handle.write(table.to_csv(index=False, header=False))
                summary.update(summarize(stage, outputs[stage]))
            row.update(status="done", error="")
        except Exception as error:
            row.update(status="failed", error=f"{type(error).__name__}: {error}")
            summary = {}
        row["seconds"] = round(time.perf_counter() - start, 4)
        row.update(summary)
        rows.append(row)
        print(f"{row['status']}: {relative}", file=sys.stderr)
    pd.DataFrame(rows).to_csv(output / "images.csv", index=False)
    for stage, part in tables.items():
        if not part.exists():
            part.write_text("image,label\\n", encoding="utf-8")
        part.replace(output / f"{stage}.csv")
    failed = sum(row["status"] == "failed" for row in rows)
    print(f"{len(rows) - failed} done, {failed} failed; tables in {output}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
"""


def script_text(pipeline: Pipeline) -> str:
    """The source of a standalone script that runs ``pipeline`` over a folder."""
    versions = provenance_versions()
    header = [
        "#!/usr/bin/env python3",
        f'"""Run the pipeline {pipeline.name!r} over a folder of images; write its tables.',
        "",
        "Exported by napari-batch-pipeline; needs only scikit-image, numpy, pandas and tifffile.",
        "Usage: python this_script.py INPUT_DIR OUTPUT_DIR [--pattern GLOB]",
        '"""',
        f"# pipeline hash: {pipeline.hash}",
        "# made with: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "platform"),
        "",
    ]
    constants, wrappers, imports, copied = [], [], [], {}
    for stage in pipeline.stages:
        spec = stage.spec
        if stage.function in STAGES and ":" not in stage.function:
            callee = f"stage_{stage.function}"
            copied[stage.function] = _builtin_source(stage.function)
        else:
            module, _, attribute = stage.function.partition(":")
            callee = f"user_{_identifier(stage.function)}"
            imports.append(f"from {module} import {attribute} as {callee}")
        arguments = [f"{arg}=outputs[{src!r}]" for arg, src in stage.inputs.items()]
        for name, value in stage.params.items():
            constant = _identifier(f"{stage.name}_{name}").upper()
            constants.append(f"{constant} = {_literal(value, spec.params[name].default)}")
            arguments.append(f"{name}={constant}")
        wrappers.append(
            f"def {_identifier(stage.name)}(outputs):\n"
            f'    """Stage {stage.name!r}: {stage.function}."""\n'
            f"    return {callee}({', '.join(arguments)})\n"
        )
    process = [
        "def process(image):",
        '    """Every stage on one image: {stage name: output}."""',
        f"    outputs = {{{INPUT!r}: image}}",
        *(f"    outputs[{s.name!r}] = {_identifier(s.name)}(outputs)" for s in pipeline.stages),
        f"    del outputs[{INPUT!r}]",
        "    return outputs",
        "",
    ]
    parts = [
        "\n".join(header),
        _PRELUDE.format(default_properties=DEFAULT_PROPERTIES),
        "\n".join(imports) + ("\n" if imports else ""),
        "# -- parameters " + "-" * 60,
        "\n".join(constants),
        f"SAVED_STAGES = {pipeline.saved_stages!r}",
        f"TABLE_STAGES = {pipeline.table_stages!r}",
        "",
        "# -- stage functions (as in napari-batch-pipeline) " + "-" * 24,
        "\n\n".join(copied.values()),
        "# -- the pipeline: one function per stage " + "-" * 33,
        "\n\n".join(wrappers),
        "\n".join(process),
        _RUNNER,
    ]
    return "\n".join(parts)


def export_script(pipeline: Pipeline, path: str | Path) -> Path:
    """Write the standalone script of ``pipeline`` to ``path``."""
    return write_text_atomic(Path(path), script_text(pipeline))


def _builtin_source(name: str) -> str:
    source = inspect.getsource(STAGES[name].function)
    lines = [line for line in source.splitlines() if not line.startswith("@stage(")]
    text = "\n".join(lines) + "\n"
    return re.sub(rf"^def {name}\(", f"def stage_{name}(", text, count=1, flags=re.M)


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return f"_{name}" if name[0].isdigit() else name


def _literal(value: Any, default: Any) -> str:
    if isinstance(default, tuple) and isinstance(value, list):
        return repr(tuple(value))
    return repr(value)
