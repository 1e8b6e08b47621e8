"""Hostile YAML through every loader the project has: policy files, simulator scenarios, emulator
scenarios (the sandbox's, also read by the Airbyte resource) and the dbt files the schema-change
patcher reads. Prints the time to refusal and the error (file:line) per file and loader.

    .venv/bin/python benchmarks/bench_hostile_yaml.py

Target (issue 12): every hostile file refused in < 1 s with a named file and line.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_yaml_limits import HOSTILE  # noqa: E402

from orchestrator.emulators.scenario import load_scenario as load_emulator_scenario  # noqa: E402
from orchestrator.policies.model import load_policies  # noqa: E402
from orchestrator.schema_changes.patch import PatchError, rewrite_source_yaml  # noqa: E402
from orchestrator.simulator.scenario import ScenarioError, load_scenario  # noqa: E402


def policies(path: Path) -> str:
    errors = load_policies([path]).errors
    return str(errors[0]) if errors else "ACCEPTED"


def simulator(path: Path) -> str:
    try:
        load_scenario(str(path))
    except ScenarioError as exc:
        return " ".join(str(exc).split())
    return "ACCEPTED"


def emulator(path: Path) -> str:
    try:
        load_emulator_scenario(path)
    except Exception as exc:  # noqa: BLE001 - ScenarioError
        return str(exc).splitlines()[0]
    return "ACCEPTED"


def dbt_source(path: Path) -> str:
    try:
        rewrite_source_yaml(path.read_text(), "s", "t", "c", new_name="d")
    except PatchError as exc:
        return str(exc)
    return "ACCEPTED"


def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="hostile-yaml-"))
    worst = 0.0
    refused = total = 0
    for name, (text, _line, _words) in HOSTILE.items():
        path = out / (name.replace(" ", "-") + ".yaml")
        path.write_text(text)
        for loader in (policies, simulator, emulator, dbt_source):
            t0 = time.perf_counter()
            msg = loader(path)
            dt = time.perf_counter() - t0
            worst = max(worst, dt)
            total += 1
            refused += msg != "ACCEPTED"
            print(f"{name:32s} {loader.__name__:10s} {dt * 1000:8.1f} ms  {msg.replace(str(out) + '/', '')[:110]}",
                  flush=True)
    print(f"TOTAL {refused}/{total} hostile files refused; slowest refusal {worst * 1000:.0f} ms (target < 1000 ms)")


if __name__ == "__main__":
    main()
