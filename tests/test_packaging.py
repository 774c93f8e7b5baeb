"""The distributions a release would upload: they build, pass ``twine check``, and carry
the manifest, the license and metadata that say what the package is and where it lives.

One sdist and one wheel are built per test session from a copy of the working tree
(``python -m build --no-isolation``: the testing extra installs setuptools and build, so
no network is needed), as a release would build them: the wheel from the sdist.
"""

from __future__ import annotations

import configparser
import email
import email.message
import importlib.metadata
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import napari_batch_pipeline

if sys.version_info >= (3, 11):
    import tomllib
else:  # build needs tomli on Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.slow  # about half a minute for the build; part of the normal suite

ROOT = Path(__file__).resolve().parents[1]
ROOT_MANIFEST = ROOT / "napari.yaml"
PLUGIN = "napari-batch-pipeline"
PACKAGE = "napari_batch_pipeline"


@pytest.fixture(scope="module")
def built_distributions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sdist and wheel built from a copy of the working tree (the checkout stays clean)."""
    tmp = tmp_path_factory.mktemp("build")
    source = tmp / "source"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "out*"
    )
    shutil.copytree(ROOT, source, symlinks=True, ignore=ignore)
    assert (source / "src" / PACKAGE / "napari.yaml").is_symlink()
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(source)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("*.whl")
    (sdist,) = (tmp / "dist").glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def wheel_metadata(built_distributions: dict[str, Path]) -> email.message.Message:
    with zipfile.ZipFile(built_distributions["wheel"]) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(wheel.read(name))


def test_twine_check_passes(built_distributions):
    files = [str(built_distributions["sdist"]), str(built_distributions["wheel"])]
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_holds_the_manifest_as_a_regular_file(built_distributions):
    with zipfile.ZipFile(built_distributions["wheel"]) as wheel:
        info = wheel.getinfo(f"{PACKAGE}/napari.yaml")
        mode = info.external_attr >> 16
        assert not stat.S_ISLNK(mode), "napari.yaml is stored as a symbolic link"
        assert wheel.read(info).decode() == ROOT_MANIFEST.read_text()
        (entry_points_name,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(entry_points_name).decode())
    assert entry_points["napari.manifest"][PLUGIN] == f"{PACKAGE}:napari.yaml"
    assert entry_points["console_scripts"][PLUGIN] == f"{PACKAGE}.cli:run"


def test_wheel_holds_the_license(built_distributions, wheel_metadata):
    with zipfile.ZipFile(built_distributions["wheel"]) as wheel:
        (license_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        text = wheel.read(license_name).decode()
    assert text == (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "napari-batch-pipeline developers" in text
    assert wheel_metadata["License-Expression"] == "BSD-3-Clause"
    assert wheel_metadata.get_all("License-File") == ["LICENSE"]


def test_sdist_holds_the_manifest_and_the_license_as_regular_files(built_distributions):
    with tarfile.open(built_distributions["sdist"]) as sdist:
        members = {m.name.split("/", 1)[1]: m for m in sdist.getmembers() if "/" in m.name}
        for name, expected in (
            (f"src/{PACKAGE}/napari.yaml", ROOT_MANIFEST),
            ("LICENSE", ROOT / "LICENSE"),
        ):
            member = members[name]
            assert member.isfile(), f"{name} is not a regular file in the sdist"
            content = sdist.extractfile(member)
            assert content is not None
            assert content.read().decode() == expected.read_text()


def test_metadata_says_what_the_package_is_and_where_it_lives(wheel_metadata):
    assert wheel_metadata["Name"] == PLUGIN
    assert wheel_metadata["Version"] == napari_batch_pipeline.__version__
    urls = dict(url.split(", ", 1) for url in wheel_metadata.get_all("Project-URL") or [])
    home = "https://github.com/napari-batch-pipeline/napari-batch-pipeline"
    assert urls["Homepage"] == urls["Source"] == home
    assert urls["Issues"] == f"{home}/issues"
    classifiers = set(wheel_metadata.get_all("Classifier") or [])
    assert {
        "Framework :: napari",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        *(
            f"Programming Language :: Python :: 3.{minor}" for minor in range(11, 14)
        ),  # 3.11: skimage 0.26, zarr 3
    } <= classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert wheel_metadata["Description-Content-Type"] == "text/markdown"


def test_the_all_extra_brings_napari_with_qt6_not_qt5(wheel_metadata):
    requirements = wheel_metadata.get_all("Requires-Dist") or []
    all_extra = [r for r in requirements if 'extra == "all"' in r]
    assert any(r.startswith("napari[pyqt6]") for r in all_extra), all_extra
    assert not [r for r in requirements if "pyqt5" in r.lower()]


def test_the_version_is_written_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert project["dynamic"] == ["version"]
    assert importlib.metadata.version(PLUGIN) == napari_batch_pipeline.__version__
