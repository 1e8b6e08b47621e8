"""Model contracts (`contract: {enforced: true}` with column data_types) as expectations: they type
source columns the YAML leaves untyped (detection) and break when what reaches them no longer
matches (impact). Compiled SQL is given in the manifest: no dbt run here."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.schema_changes import detect
from orchestrator.schema_changes.impact import analyze
from orchestrator.schema_changes.lineage import build_lineage

SRC = "source.p.s.t"
CONTRACT = {"id": "varchar", "amount": "bigint", "note": "varchar", "created": "timestamp"}


def _model(name, sql, parents, contract=None):
    node = {"resource_type": "model", "name": name, "relation_name": f'"db"."m"."{name}"',
            "depends_on": {"nodes": parents}, "compiled_code": sql, "config": {}, "columns": {}}
    if contract is not None:
        node["config"]["contract"] = {"enforced": True}
        node["columns"] = {c: {"name": c, "data_type": t} for c, t in contract.items()}
    return node


def _manifest(contracts=True):
    cols = {"id": "varchar", "amount": None, "note": "varchar", "created": "timestamp"}  # amount untyped
    return {
        "metadata": {"adapter_type": "duckdb"},
        "sources": {SRC: {"unique_id": SRC, "source_name": "s", "name": "t", "relation_name": '"db"."s"."t"',
                          "columns": {c: {"name": c, "data_type": t} for c, t in cols.items()}}},
        "nodes": {
            "model.p.stg": _model("stg", 'select id, amount, note, created from "db"."s"."t"', [SRC],
                                  CONTRACT if contracts else None),
            "model.p.raw_copy": _model("raw_copy", 'select * from "db"."s"."t"', [SRC],
                                       CONTRACT if contracts else None),
            "model.p.mart": _model("mart", 'select id, created from "db"."m"."stg" where note is not null',
                                   ["model.p.stg"]),
            "model.p.audit": _model("audit", 'select id, amount from "db"."m"."raw_copy"', ["model.p.raw_copy"]),
        },
        "exposures": {"exposure.p.d": {"name": "d", "depends_on": {"nodes": ["model.p.mart"]}},
                      "exposure.p.e": {"name": "e", "depends_on": {"nodes": ["model.p.audit"]}}},
    }


def _impact(change, contracts=True):
    [found] = analyze(detect.TableDiff("s", "t", [change]), build_lineage(_manifest(contracts)))
    return found


def _delivered(**types):
    columns = {**CONTRACT, **types}
    return detect.TableSchema("s", "t", {n: detect.Column(n, t, None, i) for i, (n, t) in enumerate(columns.items())
                                         if t is not None})


def test_contracts_type_source_columns_the_yaml_leaves_untyped():
    manifest = _manifest()
    expected = detect.expected_from_manifest(manifest)
    delivered = _delivered(amount="string")
    # the source YAML has no type for amount: nothing to compare
    assert detect.diff(expected[("s", "t")], delivered).changes == []
    typed = detect.with_contract_types(expected, build_lineage(manifest))
    [change] = detect.diff(typed[("s", "t")], delivered).changes
    assert (change.kind, change.column, change.old_type) == ("type_changed", "amount", "bigint")
    assert "amount: bigint from the contract of raw_copy" in typed[("s", "t")].origin
    assert expected[("s", "t")].columns["amount"].type is None  # the input is not modified
    # without an enforced contract: no expectation
    plain = _manifest(contracts=False)
    assert detect.diff(detect.with_contract_types(detect.expected_from_manifest(plain), build_lineage(plain))[("s", "t")],
                       delivered).changes == []


def test_a_computed_column_gives_no_expectation():
    manifest = _manifest()
    manifest["nodes"]["model.p.stg"]["compiled_code"] = 'select id, amount + 0 as amount, note, created from "db"."s"."t"'
    manifest["nodes"]["model.p.raw_copy"]["config"] = {}
    lin = build_lineage(manifest)
    assert lin.passthrough_origin("model.p.stg", "amount") is None
    assert lin.passthrough_origin("model.p.stg", "note") == (SRC, "note")
    typed = detect.with_contract_types(detect.expected_from_manifest(manifest), lin)
    assert typed[("s", "t")].columns["amount"].type is None


def test_retyped_column_passed_unchanged_into_a_contract_breaks_it():
    change = detect.ColumnChange("type_changed", "created", old_type="timestamp", new_type="varchar")
    found = _impact(change)
    # stg and raw_copy pass `created` through unchanged into contracts that say timestamp
    assert found.breaking and found.broken_models == {"stg", "raw_copy"}
    assert found.blocked_models == {"mart", "audit"} and found.exposures == {"d", "e"}
    assert "enforced contract declares created timestamp, now string" in found.reason
    plain = _impact(change, contracts=False)
    assert not plain.breaking and plain.broken_models == set()  # no contract: it just flows through


def test_same_family_keeps_the_contract():
    found = _impact(detect.ColumnChange("type_changed", "created", old_type="timestamp", new_type="timestamp[us, tz=UTC]"))
    assert not found.breaking


def test_removed_column_copied_by_star_into_a_contract_breaks_it():
    change = detect.ColumnChange("removed", "amount", old_type="bigint")
    found = _impact(change)
    assert found.broken_models == {"stg", "raw_copy", "audit"}
    assert "enforced contract of raw_copy lists amount" in found.reason
    plain = _impact(change, contracts=False)
    assert plain.broken_models == {"stg", "audit"}  # raw_copy's '*' just drops it


def test_added_column_reaching_a_contract_through_star_breaks_it():
    found = _impact(detect.ColumnChange("added", "discount", new_type="bigint"))
    assert found.breaking and found.broken_models == {"raw_copy"}
    assert found.blocked_models == {"audit"} and found.exposures == {"e"}
    assert "which does not list it" in found.reason
    assert not _impact(detect.ColumnChange("added", "discount", new_type="bigint"), contracts=False).breaking


def test_the_sensor_scan_uses_contract_types(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orchestrator.schema_changes.scan import scan

    manifest = _manifest()
    manifest["sources"][SRC]["schema"] = "s"
    folder = tmp_path / "s" / "t"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a"], "amount": ["12"], "note": ["x"],
                             "created": pa.array([0], pa.timestamp("us"))}), folder / "f.parquet")
    lin = build_lineage(manifest)
    [report] = scan(manifest, tmp_path, lambda: lin)
    [found] = report.impacts
    assert found.change.kind == "type_changed" and found.broken_models == {"stg", "raw_copy"}
    assert report.handling == [(found.summary(), "patch")]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["id", "amount", "note", "created"]), st.booleans(), st.booleans())
def test_a_contract_only_ever_adds_broken_models(column, stg_contract, copy_contract):
    """Whatever the contracts, the models broken without them stay broken; the extra ones are
    exactly the contracted models the column reaches unchanged."""
    manifest = _manifest()
    if not stg_contract:
        manifest["nodes"]["model.p.stg"]["config"] = {}
    if not copy_contract:
        manifest["nodes"]["model.p.raw_copy"]["config"] = {}
    change = detect.ColumnChange("removed", column, old_type=CONTRACT[column])
    [with_c] = analyze(detect.TableDiff("s", "t", [change]), build_lineage(manifest))
    [without] = analyze(detect.TableDiff("s", "t", [change]), build_lineage(_manifest(contracts=False)))
    assert without.broken_models <= with_c.broken_models
    extra = with_c.broken_models - without.broken_models
    assert extra == ({"raw_copy"} if copy_contract else set())  # stg names every column: broken anyway


def test_lineage_records_contracts_and_star_parents():
    lin = build_lineage(copy.deepcopy(_manifest()))
    assert lin.contracts["model.p.stg"] == CONTRACT
    assert lin.star_parents == {"model.p.raw_copy": {SRC}}
    with pytest.raises(KeyError):
        _ = lin.contracts["model.p.mart"]


# --- with dbt: the contract fails the way the impact says, and the patch satisfies it ----------

CONTRACT_YAML = """
  - name: dim_customers
    config:
      contract: {enforced: true}
    columns:
      - {name: customer_id, data_type: varchar}
      - {name: email, data_type: varchar}
      - {name: country, data_type: varchar}
      - {name: signed_up_at, data_type: timestamp}
      - {name: orders, data_type: bigint}
      - {name: lifetime_value, data_type: "decimal(38,2)"}
"""


@pytest.mark.slow
def test_dbt_enforces_the_contract_the_impact_predicts_and_the_patch_satisfies_it(tmp_path):
    import shutil
    from pathlib import Path

    from schema_llm_fixtures import land_change, shop_compiled, write_shop_landing

    from orchestrator.schema_changes import patch
    from orchestrator.schema_changes.scan import scan

    shop = Path(__file__).parent / "projects" / "shop"
    project = tmp_path / "shop"
    shutil.copytree(shop, project, ignore=shutil.ignore_patterns("target", "*.duckdb"))
    models_yml = project / "models" / "_shop__models.yml"
    models_yml.write_text(models_yml.read_text() + CONTRACT_YAML)
    landing = write_shop_landing(tmp_path / "landing")
    manifest = copy.deepcopy(shop_compiled(landing))  # the same SQL: the contract only adds config
    dim = manifest["nodes"]["model.shop.dim_customers"]
    dim["config"]["contract"] = {"enforced": True}
    dim["columns"] = {c: {"name": c, "data_type": t} for c, t in [
        ("customer_id", "varchar"), ("email", "varchar"), ("country", "varchar"), ("signed_up_at", "timestamp"),
        ("orders", "bigint"), ("lifetime_value", "decimal(38,2)")]}
    lin = build_lineage(manifest)
    # the connector now delivers signed_up_at as a string; only the history under the new type
    for old in (landing / "shop" / "customers").glob("*.parquet"):
        land_change(landing, "customers", "type_changed", "signed_up_at")
        old.unlink()
    [report] = [r for r in scan(manifest, landing, lambda: lin) if r.key == "shop/customers"]
    [found] = report.breaking
    assert found.broken_models == {"dim_customers"} and found.exposures == {"customer_dashboard"}
    assert "enforced contract declares signed_up_at timestamp" in found.reason
    # as predicted: dbt refuses to build dim_customers on the new data ...
    unpatched = patch.verify(project, patch.Patch(models={"dim_customers"}), landing, models=["dim_customers"],
                             compile_first=False)
    assert not unpatched.ok
    failed = {uid.split(".")[-1]: r for uid, r in unpatched.nodes.items() if r["status"] == "error"}
    assert "dim_customers" in failed and "contract" in failed["dim_customers"]["message"].lower()
    # ... and the rule-based patch (cast back where the source column is read) satisfies it
    the_patch = patch.build_patch(project, manifest, [found])
    assert "cast(signed_up_at as timestamp) as signed_up_at" in the_patch.files[
        "models/staging/stg_shop__customers.sql"][1]
    verified = patch.verify(project, the_patch, landing)
    assert verified.ok, verified.log_tail[-1500:]
    assert verified.passed("dim_customers")
