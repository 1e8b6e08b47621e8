"""Hostile emulator scenario files are refused quickly with file:line (issue 12: bounded YAML)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.emulators.scenario import ScenarioError, load_scenario

BOMB = """a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
connectors: [*g]
"""


@pytest.mark.parametrize("text, what", [
    (BOMB, "expands to more than"),
    ("a: &a [*a]\n", "refused"),
    ("x: " + "[" * 200 + "]" * 200 + "\n", "nested more than"),
    ("# " + "x" * 2_100_000 + "\n", "larger than"),
])
def test_hostile_scenario_files_are_refused_with_file_and_line(tmp_path: Path, text: str, what: str):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert f"{path}:" in msg and what in msg


def test_shipped_scenarios_still_load():
    shipped = sorted((Path(__file__).resolve().parents[1] / "orchestrator" / "emulators" / "scenarios").glob("*.yaml"))
    assert shipped
    for path in shipped:
        assert load_scenario(path).fivetran is not None
