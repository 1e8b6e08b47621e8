"""Project-wide fixtures: the sandbox (emulators on free ports, a temporary ORCHESTRATOR_HOME)
and the code location's Definitions built against it."""

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # shared fixture modules (emulator_fixtures.py)

from orchestrator.emulators.server import EmulatorHandle, start_emulators  # noqa: E402
from orchestrator.settings import Settings, get_settings  # noqa: E402


@dataclass
class Sandbox:
    emulators: EmulatorHandle
    settings: Settings
    home: Path


def start_sandbox(home: Path):
    """Emulators on free ports and ORCHESTRATOR_HOME=home for as long as the generator runs."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ORCHESTRATOR_HOME", str(home))
    get_settings.cache_clear()
    settings = get_settings()
    handle = start_emulators(
        settings.scenario,
        settings.emulator_state_dir,
        settings.landing_dir,
        time_scale=0.05,
        auto_sync=False,
    )
    for name, value in handle.env().items():
        patch.setenv(name, value)
    for name, value in {
        "FIVETRAN_POLL_INTERVAL": "0.2",
        "FIVETRAN_POLL_TIMEOUT": "30",
        "AIRBYTE_POLL_INTERVAL": "0.2",
        "AIRBYTE_POLL_TIMEOUT": "30",
        "ORCHESTRATOR_DUCKDB_PATH": str(settings.duckdb_path),
    }.items():
        patch.setenv(name, value)
    get_settings.cache_clear()
    try:
        yield Sandbox(handle, get_settings(), home)
    finally:
        handle.stop()
        patch.undo()
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Sandbox:
    yield from start_sandbox(tmp_path_factory.mktemp("orchestrator_home"))


@pytest.fixture(scope="session")
def project_defs(sandbox):
    from orchestrator.definitions import build_definitions

    return build_definitions()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright (no browser download)."""
    if not CHROMIUM:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"],
        )
        yield launched
        launched.close()


# Under pytest-xdist (dev.py test runs one worker per core), tests that share state inside the repository
# (the dbt project's target/ and logs/, the session sandbox's emulators and warehouse, the artifacts/ folder)
# all run on one worker, in order; everything else spreads over the others.
_SHARED_STATE_MARKERS = ("build_definitions", "project_defs", "sandbox", "dbt_project", "dbt_cli", "DbtCli",
                         '"dbt"', "'dbt'", "dbt_manifest", "defs.py", "schema_change_world", "ARTIFACTS",
                         "artifacts")
_module_shares_state: dict[str, bool] = {}


def _shares_repository_state(item) -> bool:
    path = str(item.fspath)
    if path not in _module_shares_state:
        try:
            source = Path(path).read_text()
        except OSError:
            source = ""
        _module_shares_state[path] = any(marker in source for marker in _SHARED_STATE_MARKERS)
    return _module_shares_state[path] or bool({"sandbox", "project_defs"} & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(wrapper=True)  # marks set before any plain hook runs, xdist's (which reads the group) included
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _shares_repository_state(item):
            item.add_marker(pytest.mark.xdist_group("repository"))
    return (yield)
