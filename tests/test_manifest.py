"""The npe2 manifest: valid, shipped inside the package, discoverable, claiming only run folders.

That the wheel and sdist carry it as a regular file is tested in ``test_packaging.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import npe2
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
