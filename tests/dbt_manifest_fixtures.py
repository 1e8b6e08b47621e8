"""A dbt project directory around one of the real shared manifests, as the code location reads it
with ``ORCHESTRATOR_DBT_PROJECT_DIR``: dbt_project.yml, profiles.yml and target/manifest.json
(newer than every project file, so no ``dbt parse`` runs)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

SHARED = Path(os.environ.get("ORCHESTRATOR_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MANIFESTS = SHARED / "dbt_manifests"
REAL_MANIFESTS = ("mitodl_ol_dbt", "teamster_kipptaf")


def manifest_path(name: str) -> Path:
    return MANIFESTS / f"{name}.manifest.json.gz"


def make_dbt_project(name: str, root: Path) -> Path:
    """Project dir for a shared manifest under ``root``; returns the project dir."""
    project = root / name
    target = project / "target"
    target.mkdir(parents=True, exist_ok=True)
    manifest = target / "manifest.json"
    with gzip.open(manifest_path(name), "rb") as src, manifest.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    project_name = json.loads(manifest.read_text())["metadata"].get("project_name") or name
    (project / "dbt_project.yml").write_text(
        f"name: {project_name}\nversion: '1.0'\nprofile: {project_name}\n"
    )
    (project / "profiles.yml").write_text(
        f"{project_name}:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {project / 'warehouse.duckdb'}\n"
    )
    old = 946684800  # 2000-01-01: older than the manifest, so ensure_manifest never re-parses
    for path in (project / "dbt_project.yml", project / "profiles.yml"):
        os.utime(path, (old, old))
    return project


def build_location(project: Path, policies: Path, prepare=None):
    """The code location's Definitions over ``project`` and ``policies`` (the settings caches cleared
    before and after); ``prepare(monkeypatch)`` may patch more for the duration of the build."""
    import pytest

    from orchestrator.definitions import build_definitions
    from orchestrator.resources import dbt_project
    from orchestrator.settings import get_settings

    patch = pytest.MonkeyPatch()
    patch.setenv("ORCHESTRATOR_DBT_PROJECT_DIR", str(project))
    patch.setenv("ORCHESTRATOR_POLICIES_DIR", str(policies))
    if prepare is not None:
        prepare(patch)
    get_settings.cache_clear()
    dbt_project.cache_clear()
    try:
        return build_definitions()
    finally:
        patch.undo()
        get_settings.cache_clear()
        dbt_project.cache_clear()
