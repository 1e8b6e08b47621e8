"""Static checks of the dbt project against the connector scenario and the Dagster contract.

Runs `dbt parse` (no warehouse, no landing data needed) into a temporary target path and asserts
on the manifest: every scenario table has a dbt source wired to its connector, every exposure
has an owner email and reads models, and the daily-partitioned model honours the split Dagster
relies on (`tag:partitioned_daily` vs `--exclude tag:partitioned_daily`).
The end-to-end run of dbt on emulator-produced data lives in the integration tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT = ROOT / "dbt_project"
SCENARIO = ROOT / "orchestrator" / "emulators" / "scenarios" / "default.yaml"
PARTITION_TAG = "partitioned_daily"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

EXPECTED_EXPOSURE_OWNERS = {
    "executive_revenue": "finance-data@example.com",
    "sales_pipeline": "revops@example.com",
    "support_health": "support-ops@example.com",
    "product_engagement": "product-analytics@example.com",
    "marketing_performance": "marketing-ops@example.com",
}


def _dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def _run_dbt(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ORCHESTRATOR_DUCKDB_PATH": str(tmp / "analytics.duckdb"),
        "ORCHESTRATOR_LANDING_DIR": str(tmp / "landing"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    cmd = [
        _dbt_executable(),
        *args,
        "--profiles-dir",
        str(DBT_PROJECT),
        "--project-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(tmp / "target"),
        "--log-path",
        str(tmp / "logs"),
    ]
    result = subprocess.run(cmd, cwd=DBT_PROJECT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dbt_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dbt")


@pytest.fixture(scope="module")
def manifest(dbt_tmp: Path) -> dict:
    _run_dbt(["parse", "--no-partial-parse"], dbt_tmp)
    path = dbt_tmp / "target" / "manifest.json"
    assert path.exists(), "dbt parse did not write manifest.json"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def scenario() -> dict:
    return yaml.safe_load(SCENARIO.read_text())


def _scenario_tables(scenario: dict) -> dict[tuple[str, str], dict]:
    """(schema, table) -> {loader, connector, columns} for every table the emulators land."""
    tables = {}
    for connector in scenario["fivetran"]["connectors"]:
        for table, cfg in connector["tables"].items():
            tables[(connector["schema"], table)] = {
                "loader": "fivetran",
                "connector": connector["id"],
                "columns": set(cfg["columns"]),
            }
    for connection in scenario["airbyte"]["connections"]:
        for table, cfg in connection["streams"].items():
            tables[(connection["schema"], table)] = {
                "loader": "airbyte",
                "connector": connection["id"],
                "columns": set(cfg["columns"]),
            }
    return tables


def _meta(entry: dict) -> dict:
    return (entry.get("config") or {}).get("meta") or entry.get("meta") or {}


def _models(manifest: dict) -> dict[str, dict]:
    return {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}


def _partitioned(manifest: dict) -> set[str]:
    return {uid for uid, n in _models(manifest).items() if PARTITION_TAG in (n["config"].get("tags") or n["tags"])}


# -- sources ------------------------------------------------------------------------------------
def test_every_scenario_table_has_a_source(manifest, scenario):
    sources = {(s["source_name"], s["name"]): s for s in manifest["sources"].values()}
    expected = _scenario_tables(scenario)
    missing = sorted(set(expected) - set(sources))
    assert not missing, f"scenario tables without a dbt source: {missing}"
    extra = sorted(set(sources) - set(expected))
    assert not extra, f"dbt sources the scenario does not land: {extra}"

    for key, contract in expected.items():
        source = sources[key]
        schema, table = key
        assert source["schema"] == schema
        assert source["loader"] == contract["loader"], key
        assert _meta(source).get("connector") == contract["connector"], key
        loaded_at = "_fivetran_synced" if contract["loader"] == "fivetran" else "_airbyte_extracted_at"
        assert source.get("loaded_at_field") == loaded_at, key
        assert source["description"] and source["source_description"], key
        # The source reads the landed Parquet files, tolerant of columns added by later syncs.
        relation = source["relation_name"]
        assert relation.startswith("read_parquet("), relation
        assert f"/{schema}/{table}/*.parquet" in relation, relation
        assert "union_by_name=true" in relation, relation
        declared = set(source["columns"])
        assert contract["columns"] <= declared, f"{key}: columns missing {contract['columns'] - declared}"


def test_every_source_table_feeds_a_staging_model(manifest):
    used = {d for n in _models(manifest).values() for d in n["depends_on"]["nodes"] if d.startswith("source.")}
    unused = sorted(set(manifest["sources"]) - used)
    assert not unused, f"sources no model reads: {unused}"
    for uid, node in _models(manifest).items():
        if any(d.startswith("source.") for d in node["depends_on"]["nodes"]):
            assert node["fqn"][1] == "staging", f"{uid} reads a source outside staging/"
            assert node["config"]["materialized"] == "view", uid


# -- exposures ----------------------------------------------------------------------------------
def test_exposures_have_owner_email_and_read_models(manifest):
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert len(exposures) >= 5
    assert set(EXPECTED_EXPOSURE_OWNERS) <= set(exposures)
    for name, exposure in exposures.items():
        email = (exposure.get("owner") or {}).get("email") or ""
        assert EMAIL.match(email), f"exposure {name} has no owner email"
        assert (exposure.get("owner") or {}).get("name"), f"exposure {name} has no owner name"
        models = [d for d in exposure["depends_on"]["nodes"] if d.startswith("model.")]
        assert models, f"exposure {name} depends on no model"
        assert exposure["type"] == "dashboard"
        assert exposure.get("url"), name
        for uid in models:
            assert manifest["nodes"][uid]["fqn"][1] == "marts", f"{name} reads non-mart {uid}"
    for name, owner in EXPECTED_EXPOSURE_OWNERS.items():
        assert exposures[name]["owner"]["email"] == owner


# -- partitioning -------------------------------------------------------------------------------
def test_partitioned_daily_incremental_model(manifest):
    partitioned = _partitioned(manifest)
    assert "model.analytics.fct_product_events_daily" in partitioned
    for uid in partitioned:
        config = manifest["nodes"][uid]["config"]
        assert config["materialized"] == "incremental", uid
        assert config.get("event_time"), f"{uid} needs event_time"
        unique_key = config.get("unique_key")
        assert unique_key and "event_date" in (unique_key if isinstance(unique_key, list) else [unique_key])
        raw = manifest["nodes"][uid]["raw_code"]
        assert "partition_window_filter" in raw, f"{uid} must filter on vars min_date / max_date"


def test_unpartitioned_split_never_depends_on_partitioned_models(manifest):
    """Dagster builds `--exclude tag:partitioned_daily` without partition vars: nothing in it
    may read a partitioned model (tests included), or it would wait on / race with partitions."""
    partitioned = _partitioned(manifest)
    for uid, node in manifest["nodes"].items():
        if uid in partitioned or node["resource_type"] not in ("model", "test", "snapshot", "seed"):
            continue
        parents = set(node["depends_on"]["nodes"])
        if node["resource_type"] == "test" and parents and parents <= partitioned:
            continue  # a test of the partitioned model itself runs with it
        assert not parents & partitioned, f"{uid} depends on partitioned {parents & partitioned}"


def test_dbt_ls_selection_split(dbt_tmp, manifest):
    def ls(*args: str) -> set[str]:
        out = _run_dbt(["ls", "--quiet", "--output", "json", "--output-keys", "unique_id", *args], dbt_tmp)
        return {json.loads(line)["unique_id"] for line in out.stdout.splitlines() if line.startswith("{")}

    partitioned_sel = ls("--select", f"tag:{PARTITION_TAG}", "--resource-type", "model")
    unpartitioned_sel = ls("--exclude", f"tag:{PARTITION_TAG}", "--resource-type", "model")
    assert partitioned_sel == _partitioned(manifest)
    assert not partitioned_sel & unpartitioned_sel
    assert partitioned_sel | unpartitioned_sel == set(_models(manifest))


# -- documentation and ownership ----------------------------------------------------------------
def test_models_documented_and_marts_owned(manifest):
    for uid, node in _models(manifest).items():
        assert node.get("description"), f"{uid} has no description"
        # A configured schema would prefix dagster-dbt's asset key (marts/fct_mrr); the asset
        # graph and SLA policies use bare model names. The layer schema comes from the folder.
        assert node["config"].get("schema") is None, f"{uid}: use the folder, not +schema"
        assert node["schema"] == node["fqn"][1], uid
        if node["fqn"][1] == "marts":
            owner = _meta(node).get("owner") or ""
            assert EMAIL.match(owner), f"mart {uid} needs config.meta.owner (an email)"
            assert node["config"]["materialized"] in ("table", "incremental"), uid


def test_marts_have_tests(manifest):
    tested = {
        parent
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        for parent in node["depends_on"]["nodes"]
    }
    for uid, node in _models(manifest).items():
        if node["fqn"][1] in ("staging", "marts"):
            assert uid in tested, f"{uid} has no data tests"
    singular = [n for n in manifest["nodes"].values() if n["resource_type"] == "test" and "test_metadata" not in n]
    assert singular, "expected at least one singular test"
