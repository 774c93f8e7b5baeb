"""The npe2 manifest: valid, shipped inside the package (as a file, in the wheel), discoverable,
claiming only run folders."""

from __future__ import annotations

import configparser
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import npe2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROOT_MANIFEST = ROOT / "napari.yaml"
PACKAGE_MANIFEST = ROOT / "src" / "napari_batch_pipeline" / "napari.yaml"
PLUGIN = "napari-batch-pipeline"


def test_package_manifest_links_to_root_manifest():
    assert PACKAGE_MANIFEST.is_symlink()
    assert PACKAGE_MANIFEST.resolve() == ROOT_MANIFEST
    assert yaml.safe_load(ROOT_MANIFEST.read_text())["name"] == PLUGIN


def _npe2_validate(*args: str) -> subprocess.CompletedProcess[str]:
    npe2_cli = shutil.which("npe2", path=str(Path(sys.executable).parent))
    command = [npe2_cli] if npe2_cli else [sys.executable, "-m", "npe2"]
    return subprocess.run([*command, "validate", *args], capture_output=True, text=True)


def test_npe2_validate_passes_on_the_installed_plugin():
    # --imports: every python_name of every command imports and resolves
    result = _npe2_validate("--imports", PLUGIN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_npe2_validate_passes_on_the_manifest_file():
    result = _npe2_validate(str(ROOT_MANIFEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_reader_is_declared_for_folders_only():
    # no file name pattern: napari never offers this reader for an ordinary file (not even
    # "*"), and asks it only about folders; tests/test_reader.py checks the matching itself
    (reader,) = npe2.PluginManifest.from_file(ROOT_MANIFEST).contributions.readers or []
    assert reader.filename_patterns == []
    assert reader.accepts_directories


def test_installed_plugin_is_discovered_with_its_contributions():
    manager = npe2.PluginManager()
    manager.discover()
    manifest = manager.get_manifest(PLUGIN)
    assert manifest.display_name == "Batch Pipeline"
    # what npe2 found is the file shipped in the package, i.e. the root manifest
    root = npe2.PluginManifest.from_file(ROOT_MANIFEST)
    assert manifest.contributions == root.contributions
    widgets = {w.display_name: w for w in manager.iter_widgets() if w.plugin_name == PLUGIN}
    assert "Gaussian" in widgets
    filter_menu = [item.command for item in manager.iter_menu("napari/layers/filter")]
    assert widgets["Gaussian"].command in filter_menu
    samples = dict(manager.iter_sample_data())[PLUGIN]
    assert [(s.key, s.display_name) for s in samples] == [("nuclei", "Synthetic nuclei")]


@pytest.fixture(scope="module")
def built_distributions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sdist and wheel built from a copy of the working tree, as a release would be."""
    tmp = tmp_path_factory.mktemp("build")
    source = tmp / "source"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "out*"
    )
    shutil.copytree(ROOT, source, symlinks=True, ignore=ignore)
    assert (source / "src" / "napari_batch_pipeline" / "napari.yaml").is_symlink()
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(source)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("*.whl")
    (sdist,) = (tmp / "dist").glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_wheel_holds_the_manifest_as_a_regular_file(built_distributions):
    with zipfile.ZipFile(built_distributions["wheel"]) as wheel:
        info = wheel.getinfo("napari_batch_pipeline/napari.yaml")
        mode = info.external_attr >> 16
        assert not stat.S_ISLNK(mode), "napari.yaml is stored as a symbolic link"
        assert wheel.read(info).decode() == ROOT_MANIFEST.read_text()
        (entry_points_name,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(entry_points_name).decode())
    assert entry_points["napari.manifest"][PLUGIN] == "napari_batch_pipeline:napari.yaml"


def test_sdist_holds_the_manifest_as_a_regular_file(built_distributions):
    with tarfile.open(built_distributions["sdist"]) as sdist:
        (member,) = [m for m in sdist.getmembers() if m.name.endswith("/napari.yaml")]
        assert member.isfile()
        content = sdist.extractfile(member)
        assert content is not None
        assert content.read().decode() == ROOT_MANIFEST.read_text()
