"""Fixtures' machinery for tests/test_example_team.py: the example team's project copied out of the
repository, its dbt manifest parsed, its Airbyte emulator started and its code location loaded the
way `dagster dev` loads a team's project (``<project>/src`` on sys.path, ``example_team.definitions``).

Kept apart from the test module: everything here runs on a copy in a temporary folder and on
emulators of its own, nothing touches this repository's dbt project or the session's sandbox.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent / "example_team"
# `dbt parse` of tests/example_team/dbt, done once and kept (gzip, ~70 kB) with the key of what it
# parsed: the dbt version and every file of the dbt project. Regenerate after editing the team's
# dbt project: `.venv/bin/python tests/example_team_support.py --prepare`
PREPARED = Path(__file__).parent / "data" / "example_team_manifest.json.gz"
PROJECT_PLACEHOLDER = "@EXAMPLE_TEAM_DBT@"
_SKIP = {"target", "logs", "dbt_packages", ".user.yml", "__pycache__"}


def copy_project(dest: Path) -> Path:
    project = dest / "example_team"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("target", "logs", "__pycache__", "*.duckdb"))
    return project


def dbt_project_key(dbt_dir: Path) -> str:
    """What a manifest of ``dbt_dir`` depends on: dbt's version and the project's files."""
    from dbt.version import __version__ as dbt_version

    h = hashlib.sha256(f"dbt {dbt_version}\n".encode())
    for path in sorted(dbt_dir.rglob("*")):
        rel = path.relative_to(dbt_dir)
        if path.is_file() and not _SKIP.intersection(rel.parts):
            h.update(f"{rel.as_posix()}\n".encode() + path.read_bytes() + b"\n")
    return h.hexdigest()


def prepared_manifest_key() -> str | None:
    if not PREPARED.exists():
        return None
    with gzip.open(PREPARED, "rt", encoding="utf-8") as f:
        return json.loads(f.readline())["key"]


def run_dbt_parse(dbt_dir: Path) -> None:
    """``dbt parse`` (no warehouse needed): the manifest the team's dbt assets read."""
    dbt = Path(sys.executable).with_name("dbt")
    out = subprocess.run([str(dbt), "parse", "--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir)],
                         capture_output=True, text=True, cwd=dbt_dir, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def parse_dbt(project: Path) -> str:
    """The team's ``target/manifest.json``: the prepared one when it was parsed from exactly these
    dbt files with this dbt version ("prepared"), else ``dbt parse`` ("parsed")."""
    dbt_dir = project / "dbt"
    if prepared_manifest_key() == dbt_project_key(dbt_dir):
        with gzip.open(PREPARED, "rt", encoding="utf-8") as f:
            f.readline()
            text = f.read()
        (dbt_dir / "target").mkdir(exist_ok=True)
        (dbt_dir / "target" / "manifest.json").write_text(
            text.replace(PROJECT_PLACEHOLDER, json.dumps(str(dbt_dir))[1:-1]), encoding="utf-8")
        return "prepared"
    run_dbt_parse(dbt_dir)
    return "parsed"


def prepare_manifest(scratch: Path) -> Path:
    """Parse a copy of the team's dbt project and keep its manifest as ``PREPARED``."""
    dbt_dir = copy_project(scratch) / "dbt"
    run_dbt_parse(dbt_dir)
    text = (dbt_dir / "target" / "manifest.json").read_text(encoding="utf-8")
    text = text.replace(json.dumps(str(dbt_dir))[1:-1], PROJECT_PLACEHOLDER)
    PREPARED.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(PREPARED, "wb", mtime=0) as raw:
        raw.write((json.dumps({"key": dbt_project_key(EXAMPLE / "dbt")}) + "\n" + text).encode())
    return PREPARED


def team_environment(project: Path, home: Path):
    """The emulators for the team (Airbyte only, its own scenario) and its environment, for as long
    as the generator runs. Yields the conftest Sandbox."""
    from conftest import start_sandbox

    patch = pytest.MonkeyPatch()
    patch.setenv("ORCHESTRATOR_SCENARIO", str(project / "scenario.yaml"))
    patch.setenv("ORCHESTRATOR_STORE_URL", f"sqlite:///{home}/store.db")
    patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # `dbt`, as in the team's venv
    patch.setenv("ORCHESTRATOR_BACKOFF_SCALE", "0")  # a retry due at once: launched in the same tick
    patch.setenv("AIRBYTE_POLL_INTERVAL", "0.2")  # the emulator's syncs take ~0.3 s
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


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--prepare"]:
        sys.exit("usage: tests/example_team_support.py --prepare   (re-parse tests/example_team/dbt)")
    with tempfile.TemporaryDirectory() as tmp:
        print(prepare_manifest(Path(tmp)), prepared_manifest_key())
