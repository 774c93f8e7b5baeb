"""What run.json says of the libraries, and the memory a run budgets from: read the fast
way (an imported module's version, Linux's ``/proc/meminfo``), and the same as the slow
way (the installed distribution's metadata, psutil)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from napari_batch_pipeline.core.plan.estimate import available_memory, default_budget
from napari_batch_pipeline.core.run_folder.provenance import _VERSIONED, provenance_versions


def _installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def test_the_versions_are_those_of_the_installed_distributions() -> None:
    versions = provenance_versions()
    assert {package: versions[package] for package in _VERSIONED} == {p: _installed(p) for p in _VERSIONED}
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))


def test_a_library_not_imported_is_looked_up_not_imported() -> None:
    code = (
        "import sys; from napari_batch_pipeline.core.run_folder.provenance import provenance_versions; "
        "v = provenance_versions(); print(v['scikit-image'] != 'not installed', 'skimage' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/meminfo")
def test_available_memory_is_what_psutil_reports_without_importing_it() -> None:
    psutil = pytest.importorskip("psutil")
    here, there = available_memory(), psutil.virtual_memory().available
    assert abs(here - there) < 0.05 * psutil.virtual_memory().total  # read moments apart
    assert default_budget() == pytest.approx(available_memory() / 2, rel=0.05)
    code = (
        "import sys; from napari_batch_pipeline.core.plan.estimate import default_budget; "
        "print(default_budget() > 0, 'psutil' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]
