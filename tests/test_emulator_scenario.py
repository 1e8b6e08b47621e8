"""Scenario validation, deterministic data generation, the default scenario, and the sandbox CLI."""

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import yaml
from emulator_fixtures import SALESFORCE, SMALL_SCENARIO, emulators, fivetran_workspace, airbyte_workspace  # noqa: F401

from orchestrator.emulators.datagen import RowGenerator, TableLedger
from orchestrator.emulators.scenario import ScenarioError, load_scenario, parse_scenario
from orchestrator.settings import PROJECT_ROOT

DEFAULT_SCENARIO = PROJECT_ROOT / "orchestrator" / "emulators" / "scenarios" / "default.yaml"


def _broken(mutate) -> str:
    raw = copy.deepcopy(SMALL_SCENARIO)
    mutate(raw)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw)
    return str(info.value)


def test_default_scenario_is_valid():
    scenario = load_scenario(DEFAULT_SCENARIO)
    assert {c.id for c in scenario.fivetran.connectors} == {"crimson_notebook", "dapper_ledger", "quiet_harbor"}


def test_unknown_reference_names_connector_table_and_column():
    def mutate(raw):
        raw["fivetran"]["connectors"][0]["tables"]["account"]["columns"]["owner_id"]["references"] = "salesforce.usr.id"

    message = _broken(mutate)
    assert "fivetran.connectors[sf_conn].tables.account.columns.owner_id.references" in message
    assert "unknown table 'salesforce.usr'" in message


def test_unknown_fault_kind_is_rejected():
    message = _broken(lambda raw: raw.update(faults=[{"kind": "meteor", "target": SALESFORCE, "on_sync": 1}]))
    assert "faults[0]" in message and "unknown fault kind 'meteor'" in message


def test_bad_column_type_names_the_field():
    def mutate(raw):
        raw["fivetran"]["connectors"][0]["tables"]["user"]["columns"]["email"]["type"] = "varchar"

    message = _broken(mutate)
    assert "connectors[sf_conn].tables.user.columns.email.type" in message and "bad type 'varchar'" in message


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"kind": "sync_failure", "target": "nope", "on_sync": 1}, "unknown connector/connection 'nope'"),
        ({"kind": "hang", "target": SALESFORCE}, "exactly one of on_sync or next_syncs"),
        ({"kind": "schema_change", "target": SALESFORCE, "on_sync": 1, "table": "account",
          "change": "drop_column", "column": "id"}, "cannot drop_column the primary key"),
        ({"kind": "rate_limit", "requests": 3}, "give api (fivetran or airbyte)"),
        ({"kind": "rescheduled", "target": SMALL_SCENARIO["airbyte"]["connections"][0]["id"], "on_sync": 1},
         "only for Fivetran"),
    ],
)
def test_bad_faults_are_explained(fault, expected):
    assert expected in _broken(lambda raw: raw.update(faults=[fault]))


def test_other_structural_problems():
    assert "unknown group 'ghost'" in _broken(lambda raw: raw["fivetran"]["connectors"][0].update(group="ghost"))
    assert "needs exactly one primary_key" in _broken(
        lambda raw: raw["fivetran"]["connectors"][0]["tables"]["user"]["columns"]["id"].update(primary_key=False))
    assert "sync_frequency" in _broken(lambda raw: raw["fivetran"]["connectors"][0].update(sync_frequency=7))
    assert "typo_field" in _broken(lambda raw: raw.update(typo_field=1))


def test_load_scenario_reports_missing_file_and_bad_yaml(tmp_path: Path):
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("fivetran: [unclosed", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)


def test_generation_is_deterministic_and_resync_matches_incremental():
    scenario = parse_scenario(copy.deepcopy(SMALL_SCENARIO))
    spec = scenario.fivetran.connectors[0].tables["account"]
    generator = RowGenerator(scenario.seed, scenario.table_registry())

    def window(versions):
        return np.full(versions.size, 0.0), np.full(versions.size, 1e15)

    ledger = TableLedger()
    first = generator.generate("salesforce.account", spec.columns, ledger.plan_sync(spec, 1, 7, "salesforce.account"), window)
    again = generator.generate("salesforce.account", spec.columns, TableLedger().plan_sync(spec, 1, 7, "salesforce.account"), window)
    assert first.equals(again)
    update = generator.generate("salesforce.account", spec.columns, ledger.plan_sync(spec, 2, 7, "salesforce.account"), window)
    full = generator.generate("salesforce.account", spec.columns, ledger.current_state(), window).to_pylist()
    by_id = {row["id"]: row for row in full}
    for row in update.to_pylist():  # a resync re-lands exactly what the incremental sync landed
        assert by_id[row["id"]] == row


def test_default_scenario_end_to_end_foreign_keys(emulators):
    handle = emulators(DEFAULT_SCENARIO, time_scale=0.02)
    fivetran = fivetran_workspace(handle).get_client()
    for connector in handle.scenario.fivetran.connectors:
        fivetran.sync_and_poll(connector.id, poll_interval=0.1, poll_timeout=30)
    airbyte = airbyte_workspace(handle).get_client()
    for connection in handle.scenario.airbyte.connections:
        airbyte.sync_and_poll(connection.id)

    landing = handle.landing_dir
    registry = handle.scenario.table_registry()
    checked = 0
    for ref, table in registry.items():
        schema, name = ref.split(".")
        for column_name, column in table.columns.items():
            if not column.references:
                continue
            target_schema, target_table, target_column = column.references.split(".")
            orphans = duckdb.sql(f"""
                select count(*) from read_parquet('{landing}/{schema}/{name}/*.parquet')
                where {column_name} is not null and {column_name} not in (
                    select {target_column} from read_parquet('{landing}/{target_schema}/{target_table}/*.parquet'))
            """).fetchall()[0][0]
            assert orphans == 0, f"{ref}.{column_name} has {orphans} dangling references"
            checked += 1
    assert checked >= 12
    created = duckdb.sql(f"select min(created_date), max(created_date) from read_parquet('{landing}/salesforce/account/*.parquet')").fetchall()[0]
    assert (created[1] - created[0]).days >= 25  # spread across the 30-day history window


def test_sandbox_command_prints_env_and_stops_on_ctrl_c(tmp_path: Path):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(SMALL_SCENARIO, sort_keys=False), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-c", "from orchestrator.cli import main; main()", "sandbox", "--scenario", str(scenario),
         "--state-dir", str(tmp_path / "state"), "--landing-dir", str(tmp_path / "landing"),
         "--fivetran-port", "0", "--airbyte-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=20)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "export FIVETRAN_API_BASE_URL=http://127.0.0.1:" in output
    assert "export AIRBYTE_REST_API_BASE_URL=" in output and "Emulators stopped" in output
    assert (tmp_path / "state" / "fivetran.json").exists()
