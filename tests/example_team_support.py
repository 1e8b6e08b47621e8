"""Fixtures' machinery for tests/test_example_team.py: the example team's project copied out of the
repository, its dbt manifest parsed, its Airbyte emulator started and its code location loaded the
way `dagster dev` loads a team's project (``<project>/src`` on sys.path, ``example_team.definitions``).

Kept apart from the test module: everything here runs on a copy in a temporary folder and on
emulators of its own, nothing touches this repository's dbt project or the session's sandbox.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent / "example_team"


def copy_project(dest: Path) -> Path:
    project = dest / "example_team"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("target", "logs", "__pycache__", "*.duckdb"))
    return project


def parse_dbt(project: Path) -> None:
    """``dbt parse`` (no warehouse needed): the manifest the team's dbt assets read."""
    dbt = Path(sys.executable).with_name("dbt")
    dbt_dir = project / "dbt"
    out = subprocess.run([str(dbt), "parse", "--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir)],
                         capture_output=True, text=True, cwd=dbt_dir, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def team_environment(project: Path, home: Path):
    """The emulators for the team (Airbyte only, its own scenario) and its environment, for as long
    as the generator runs. Yields the conftest Sandbox."""
    from conftest import start_sandbox

    patch = pytest.MonkeyPatch()
    patch.setenv("ORCHESTRATOR_SCENARIO", str(project / "scenario.yaml"))
    patch.setenv("ORCHESTRATOR_STORE_URL", f"sqlite:///{home}/store.db")
    patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # `dbt`, as in the team's venv
    patch.setenv("ORCHESTRATOR_BACKOFF_SCALE", "0")  # a retry due at once: launched in the same tick
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ORCHESTRATOR_CONNECTORS", "ORCHESTRATOR_POLICIES_DIR",
                 "ORCHESTRATOR_DBT_PROJECT_DIR", "ORCHESTRATOR_AUTOMATION"):
        patch.delenv(name, raising=False)
    try:
        yield from start_sandbox(home)
    finally:
        patch.undo()


def load_team_definitions(project: Path):
    """What `dagster dev` does in the team's project folder: its src/ on sys.path, its
    definitions module imported, the lazy @definitions called."""
    import dagster as dg

    src = str(project / "src")
    sys.path.insert(0, src)
    for name in [m for m in sys.modules if m == "example_team" or m.startswith("example_team.")]:
        del sys.modules[name]
    try:
        module = importlib.import_module("example_team.definitions")
        loaded = module.defs
        return loaded() if not isinstance(loaded, dg.Definitions) else loaded
    finally:
        sys.path.remove(src)


def restore_environment(before: dict[str, str]) -> None:
    """The component sets ORCHESTRATOR_* variables for the process: put the test process back."""
    for name in set(os.environ) - set(before):
        del os.environ[name]
    os.environ.update(before)
