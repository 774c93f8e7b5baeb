"""summary.png drawn by the figure process: the same pixels as drawn here, and drawn here
whenever that process cannot (not started, dead, failing)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from napari_batch_pipeline.core.results import figure_process
from napari_batch_pipeline.core.results.summary_plot import SummaryPlot

PLOT = SummaryPlot(
    names=("plate 1", "plate 2", "plate 3"),
    values=(np.array([1.0, 2.5, 2.0]), np.array([]), np.array([4.0])),
    xlabel="folder",
    ylabel="nuclei.area (mean per image)",
    title="nuclei.area: 4 images in 3 group(s)",
)


def _pixels(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(path)


def _request(plot: SummaryPlot, path: Path) -> bytes:
    import pickle

    data = pickle.dumps((plot, str(path)))
    return struct.pack("<Q", len(data)) + data


def test_the_server_draws_each_request_and_says_so(tmp_path) -> None:
    requests = io.BytesIO(
        _request(PLOT, tmp_path / "a.png") + _request(SummaryPlot(empty=True), tmp_path / "b.png")
    )
    replies = io.BytesIO()
    figure_process.serve(requests, replies)  # returns when the input ends
    assert [json.loads(line) for line in replies.getvalue().splitlines()] == [{"drawn": True}] * 2
    PLOT.save(tmp_path / "here.png")
    assert np.array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "here.png"))
    assert (tmp_path / "b.png").stat().st_size > 0


def test_a_request_that_fails_is_answered_not_raised(tmp_path) -> None:
    (tmp_path / "file").write_text("not a folder")
    replies = io.BytesIO()
    figure_process.serve(io.BytesIO(_request(PLOT, tmp_path / "file" / "x.png")), replies)
    (reply,) = [json.loads(line) for line in replies.getvalue().splitlines()]
    assert reply["drawn"] is False and reply["error"]


SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    from napari_batch_pipeline.core.results import figure_process
    from napari_batch_pipeline.core.results.summary_plot import SummaryPlot

    out = Path(sys.argv[1])
    plot = SummaryPlot(names=("a", "b"), values=(np.array([1.0, 2.0]), np.array([3.0])),
                       xlabel="folder", ylabel="y", title="t")
    assert "matplotlib" not in sys.modules
    figure_process.start()
    process = figure_process._process
    assert process is not None and process.poll() is None
    figure_process.draw(plot, out / "by_process.png")
    assert "matplotlib" not in sys.modules, "drawn here, not by the process"
    assert figure_process._process is process  # it serves the next run too
    process.kill()
    process.wait()
    figure_process.draw(plot, out / "after_death.png")  # drawn here instead
    assert figure_process._process is None and "matplotlib" in sys.modules
    figure_process.start()  # matplotlib imported here now: no process needed
    assert figure_process._process is None
    plot.save(out / "here.png")
    print("ok")
    """
)


def test_a_fresh_process_draws_by_the_figure_process_and_here_after_it_died(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    here = _pixels(tmp_path / "here.png")
    assert np.array_equal(_pixels(tmp_path / "by_process.png"), here)
    assert np.array_equal(_pixels(tmp_path / "after_death.png"), here)


def test_a_failure_in_the_process_is_raised_as_drawing_here_raises_it(tmp_path, monkeypatch) -> None:
    class Failing:  # a process that answers that it could not draw
        stdin = io.BytesIO()
        stdout = io.BytesIO(b'{"drawn": false, "error": "OSError: no room"}\n')

        def poll(self) -> None:
            return None

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr(figure_process, "_process", Failing())
    (tmp_path / "run").write_text("a file where the run folder should be")
    with pytest.raises(OSError):  # drawing here fails too, and says why
        figure_process.draw(PLOT, tmp_path / "run" / "summary.png")
    assert figure_process._process is None  # the failing process is not asked again
    target = tmp_path / "summary.png"
    figure_process.draw(PLOT, target)
    assert _pixels(target).shape[2] == 4


def test_drawing_later_gives_the_file_or_the_error_to_whoever_waits(tmp_path) -> None:
    # the run writes its other tables meanwhile; it waits on the future before run.json
    target = tmp_path / "summary.png"
    drawing = figure_process.draw_later(PLOT, target)
    assert drawing.result(timeout=60) == target
    assert _pixels(target).shape[2] == 4
    (tmp_path / "run").write_text("a file where the run folder should be")
    failing = figure_process.draw_later(PLOT, tmp_path / "run" / "summary.png")
    with pytest.raises(OSError):
        failing.result(timeout=60)


THREADED_RUN = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path

    import numpy as np
    import tifffile
    from napari_batch_pipeline import Pipeline, run_batch
    from napari_batch_pipeline.core.results import figure_process

    root = Path(sys.argv[1])
    (root / "images").mkdir()
    tifffile.imwrite(root / "images" / "a.tif", (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint16))
    pipeline = Pipeline.from_dict({"version": 1, "name": "t", "stages": [
        {"name": "mask", "function": "threshold"},
        {"name": "labels", "function": "label"},
        {"name": "nuclei", "function": "measure", "inputs": {"labels": "labels", "intensity": "input"}},
    ]})
    run = lambda: run_batch(pipeline, root / "images", root / "out", executor="processes", workers=1)
    thread = threading.Thread(target=run) if sys.argv[2] == "thread" else None
    if thread is None:
        run()
    else:
        thread.start()
        thread.join()
    assert (root / "out" / "summary.png").is_file()
    print(figure_process.running(), "matplotlib" in sys.modules)
    """
)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("main", "False True"),  # a script: its process idles while the worker computes
        ("thread", "True False"),  # beside a GUI (the viewer): no import held up its loop
    ],
)
def test_a_run_on_worker_processes_imports_matplotlib_only_in_the_main_thread(
    tmp_path, where, expected
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", THREADED_RUN, str(tmp_path), where],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == expected.split()
