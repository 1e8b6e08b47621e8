"""Detect, lineage and patch units: rename pairing under generated schemas (hypothesis), the
Airbyte catalog and Fivetran schema config through the emulators, SQL rewriting, the emulator's
rename_column fault through its control API."""

from __future__ import annotations

import string

import pyarrow.parquet as pq
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator_fixtures import PRODUCT, SALESFORCE, airbyte_workspace, emulators, fivetran_workspace, small_scenario  # noqa: F401
from orchestrator.schema_changes import detect
from orchestrator.schema_changes.lineage import build_lineage
from orchestrator.schema_changes.impact import analyze
from orchestrator.schema_changes.patch import rewrite_column, rewrite_source_yaml

TYPES = ["varchar", "bigint", "double", "timestamp", "date", "boolean"]
names = st.text(string.ascii_lowercase, min_size=3, max_size=10)


@st.composite
def table_and_change(draw):
    cols = draw(st.lists(names, min_size=3, max_size=9, unique=True))
    types = [draw(st.sampled_from(TYPES)) for _ in cols]
    expected = detect.TableSchema("s", "t", {c: detect.Column(c, t, None, i) for i, (c, t) in enumerate(zip(cols, types))})
    victim = draw(st.integers(0, len(cols) - 1))
    kind = draw(st.sampled_from(["renamed", "removed", "added", "type_changed"]))
    new_name = draw(names.filter(lambda n: n not in cols)) + "_x"
    delivered = dict(expected.columns)
    items = list(delivered.items())
    samples = {c: [f"{c}-{i}" for i in range(20)] for c in cols}
    if kind == "renamed":  # same position, same values, same type
        items[victim] = (new_name, detect.Column(new_name, types[victim], None, victim))
        samples[new_name] = samples[cols[victim]][:10]
    elif kind == "removed":
        items.pop(victim)
    elif kind == "added":
        items.append((new_name, detect.Column(new_name, "varchar", None, len(items))))
    else:
        other = next(t for t in TYPES if detect.Column("x", t).family != detect.Column("x", types[victim]).family)
        items[victim] = (cols[victim], detect.Column(cols[victim], other, None, victim))
    delivered_schema = detect.TableSchema("s", "t", {n: c for n, c in items}, samples)
    return expected, delivered_schema, kind, cols[victim], new_name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table_and_change())
def test_every_single_change_is_detected_as_what_it_is(case):
    expected, delivered, kind, column, new_name = case
    diff = detect.diff(expected, delivered)
    assert len(diff.changes) == 1, diff.changes
    change = diff.changes[0]
    assert change.kind == kind
    assert change.column == (new_name if kind == "added" else column)
    if kind == "renamed":
        assert change.new_column == new_name and dict(change.evidence)["score"] >= detect.RENAME_THRESHOLD


def test_a_drop_plus_an_unrelated_add_at_the_end_is_not_a_rename():
    cols = {n: detect.Column(n, t, None, i) for i, (n, t) in enumerate(
        [("id", "varchar"), ("amount", "bigint"), ("status", "varchar"), ("created", "timestamp")])}
    expected = detect.TableSchema("s", "t", cols)
    delivered = detect.TableSchema("s", "t", {
        "id": cols["id"], "status": detect.Column("status", "varchar", None, 1),
        "created": detect.Column("created", "timestamp", None, 2),
        "gift_note": detect.Column("gift_note", "varchar", None, 3)},
        {"amount": [1, 2, 3], "gift_note": ["a", "b"]})
    kinds = sorted((c.kind, c.column) for c in detect.diff(expected, delivered).changes)
    assert kinds == [("added", "gift_note"), ("removed", "amount")]


def test_airbyte_catalog_and_fivetran_schema_config_from_the_emulators(emulators, small_scenario):  # noqa: F811
    small_scenario["faults"] = [
        {"kind": "schema_change", "target": PRODUCT, "on_sync": 2, "table": "users",
         "change": "rename_column", "column": "plan", "to_column": "plan_tier"},
        {"kind": "schema_change", "target": SALESFORCE, "on_sync": 2, "table": "account",
         "change": "change_type", "column": "annual_revenue", "to_type": "string"},
    ]
    small_scenario["fivetran"]["column_types"] = True  # emulator extension: Fivetran's API has no column types
    handle = emulators(small_scenario)
    ab = airbyte_workspace(handle).get_client()
    ft = fivetran_workspace(handle).get_client()
    for _ in range(2):
        ab.sync_and_poll(PRODUCT)
        ft.sync_and_poll(SALESFORCE, poll_interval=0.1, poll_timeout=20)
    import httpx

    connection = httpx.post(f"{handle.airbyte_config_url}/connections/get", json={"connectionId": PRODUCT},
                            auth=(handle.airbyte_client_id, handle.airbyte_client_secret)).json()
    assert connection["breakingChange"] is True
    expected = detect.TableSchema("product", "users", {n: detect.Column(n, t, None, i) for i, (n, t) in enumerate(
        [("user_id", "varchar"), ("account_id", "varchar"), ("plan", "varchar"), ("signed_up_at", "timestamp")])})
    delivered = detect.delivered_from_airbyte(connection, "users", "product")
    [change] = detect.diff(expected, delivered).changes
    assert (change.kind, change.column, change.new_column) == ("renamed", "plan", "plan_tier")
    # from the landed files: the same rename, with the values as evidence
    folder = handle.landing_dir / "product" / "users"
    landed = detect.delivered_from_parquet(folder, "product", "users")
    newest = pq.read_table(sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)[-1])
    assert newest.column_names.index("plan_tier") == 2  # same position
    [change] = [c for c in detect.diff(expected, landed).changes if c.kind != "added"]
    assert change.kind == "renamed" and dict(change.evidence)["value_overlap"] == 1.0
    account = detect.TableSchema("salesforce", "account", {n: detect.Column(n, t, None, i) for i, (n, t) in enumerate(
        [("id", "varchar"), ("name", "varchar"), ("industry", "varchar"), ("owner_id", "varchar"),
         ("annual_revenue", "bigint"), ("created_date", "timestamp")])})
    config = ft.get_schema_config_for_connector(SALESFORCE)
    [change] = detect.diff(account, detect.delivered_from_fivetran(config, "salesforce", "account")).changes
    assert (change.kind, change.column, change.new_type) == ("type_changed", "annual_revenue", "string")


def test_rename_fault_needs_a_new_name_and_refuses_an_existing_one(emulators):  # noqa: F811
    import httpx

    handle = emulators()
    bad = httpx.post(f"{handle.fivetran_url}/_emulator/faults", json={
        "kind": "schema_change", "target": SALESFORCE, "next_syncs": 1, "table": "account",
        "change": "rename_column", "column": "name"})
    assert bad.status_code == 400 and "to_column" in bad.text
    clash = httpx.post(f"{handle.fivetran_url}/_emulator/faults", json={
        "kind": "schema_change", "target": SALESFORCE, "next_syncs": 1, "table": "account",
        "change": "rename_column", "column": "name", "to_column": "industry"})
    assert clash.status_code == 400 and "already exists" in clash.text


SQL = """with latest as (
    {{ fivetran_latest(source('shop', 'orders'), 'id') }}
)
select
    id as order_id,
    channel,
    o.channel as o_channel,
    cast(amount as bigint) amount_cents,
    {{ cents_to_dollars('amount') }} as amount,
    count(*) filter (where status = 'paid') as paid
from latest o
where amount > 0
group by channel, amount
"""


def test_rewrite_keeps_output_names_aliases_and_jinja():
    out = rewrite_column(SQL, "amount", "{qualifier}amount_total", macro_replacement="amount_total")
    assert "cast(amount_total as bigint) amount_cents" in out
    assert "{{ cents_to_dollars('amount_total') }} as amount," in out  # output name kept
    assert "where amount_total > 0" in out and "group by channel, amount_total" in out
    assert "source('shop', 'orders')" in out
    typed = rewrite_column(SQL, "channel", "cast({ref} as varchar)")
    assert "    cast(channel as varchar) as channel,\n" in typed  # bare projection keeps its name
    assert "cast(o.channel as varchar) as o_channel" in typed
    assert "group by cast(channel as varchar), amount" in typed
    # the rewritten SQL still parses once Jinja is rendered away
    sqlglot.parse_one(out.replace("{{ fivetran_latest(source('shop', 'orders'), 'id') }}", "select 1")
                      .replace("{{ cents_to_dollars('amount_total') }}", "1"), read="duckdb")


@given(st.sampled_from(["id", "amount", "channel", "status", "order_id", "o"]), names)
def test_rewrite_is_a_no_op_for_absent_columns_and_idempotent_names(column, new):
    absent = f"zz{new}"
    assert rewrite_column(SQL, absent, f"{{qualifier}}{new}") == SQL
    once = rewrite_column(SQL, column, f"{{qualifier}}{column}")
    assert once == SQL or column in ("channel",)  # renaming to itself changes nothing but `x` -> `x as x`


def test_source_yaml_rewrite_touches_only_that_column():
    text = open("tests/projects/shop/models/staging/_shop__sources.yml").read()
    out = rewrite_source_yaml(text, "shop", "refunds", "amount", new_name="refund_amount_cents")
    changed = [(a, b) for a, b in zip(text.splitlines(), out.splitlines()) if a != b]
    assert changed == [("          - name: amount", "          - name: refund_amount_cents")]
    retyped = rewrite_source_yaml(text, "shop", "orders", "discount", new_type="varchar")
    changed = [(a, b) for a, b in zip(text.splitlines(), retyped.splitlines()) if a != b]
    assert changed == [("            data_type: bigint", "            data_type: varchar")]
    with pytest.raises(Exception, match="not declared"):
        rewrite_source_yaml(text, "shop", "orders", "nope", new_name="x")


def test_lineage_through_ctes_stars_and_unions():
    manifest = {
        "metadata": {"adapter_type": "duckdb"},
        "sources": {"source.p.s.t": {"unique_id": "source.p.s.t", "source_name": "s", "name": "t",
                                     "relation_name": '"db"."s"."t"',
                                     "columns": {c: {"name": c} for c in ["id", "a", "b", "c"]}}},
        "nodes": {
            "model.p.stg": {"resource_type": "model", "name": "stg", "relation_name": '"db"."m"."stg"',
                            "depends_on": {"nodes": ["source.p.s.t"]},
                            "compiled_code": 'with x as (select * from "db"."s"."t") select * from x'},
            "model.p.mart": {"resource_type": "model", "name": "mart", "relation_name": '"db"."m"."mart"',
                             "depends_on": {"nodes": ["model.p.stg"]},
                             "compiled_code": 'select id, a + 1 as a1 from "db"."m"."stg" where b > 0 '
                                              'union all select id, c from "db"."m"."stg"'},
        },
        "exposures": {"exposure.p.d": {"name": "d", "depends_on": {"nodes": ["model.p.mart"]}}},
    }
    lin = build_lineage(manifest)
    assert lin.models["model.p.stg"].passthrough["a"] == ("source.p.s.t", "a")
    assert ("source.p.s.t", "a") not in lin.models["model.p.stg"].reads  # '*' only passes it
    assert lin.models["model.p.mart"].outputs["a1"] == {("model.p.stg", "a"), ("model.p.stg", "c")}
    diff = detect.TableDiff("s", "t", [detect.ColumnChange("removed", "b"), detect.ColumnChange("removed", "a")])
    by_col = {i.change.column: i for i in analyze(diff, lin)}
    # b is read only in mart's filter: mart breaks, no output column derives from it
    assert by_col["b"].broken_models == {"mart"} and by_col["b"].columns == {("stg", "b")}
    assert by_col["a"].broken_models == {"mart"} and by_col["a"].exposures == {"d"}
    assert by_col["a"].columns == {("stg", "a"), ("mart", "a1")}


def test_warehouse_information_schema_as_the_delivered_side():
    import duckdb

    con = duckdb.connect()
    con.execute("create schema stripe")
    con.execute("create table stripe.invoice (id varchar not null, amount_due_total bigint, status varchar, "
                "created varchar)")
    expected = detect.TableSchema("stripe", "invoice", {n: detect.Column(n, t, nl, i) for i, (n, t, nl) in enumerate(
        [("id", "varchar", False), ("amount_due", "bigint", None), ("status", "varchar", False),
         ("created", "timestamp", None)])})
    delivered = detect.delivered_from_duckdb(con, "stripe", "invoice")
    changes = {(c.kind, c.column) for c in detect.diff(expected, delivered).changes}
    assert changes == {("renamed", "amount_due"), ("nullability_changed", "status"), ("type_changed", "created")}


@st.composite
def model_chain(draw):
    """A source and a chain of models, each `select *` or explicit (subset, renames, wraps, a filter)."""
    source_cols = draw(st.lists(names.map(lambda n: f"c_{n}"), min_size=2, max_size=6, unique=True))  # no keywords
    chain, cols = [], list(source_cols)
    for i in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            chain.append(("star", None, None))
            continue
        picked = draw(st.lists(st.sampled_from(cols), min_size=1, max_size=len(cols), unique=True))
        outs = []
        for j, col in enumerate(picked):
            form = draw(st.sampled_from(["plain", "rename", "wrap"]))
            outs.append((col, f"{col}_{i}{j}" if form == "rename" else col, form))
        filt = draw(st.one_of(st.none(), st.sampled_from(cols)))
        chain.append(("explicit", outs, filt))
        cols = [o for _, o, _ in outs]
    return source_cols, chain, draw(st.sampled_from(source_cols))


def _oracle(source_cols, chain, victim):
    """Impact of removing `victim`, by following the column by hand along the chain."""
    copies, derived = {victim}, set()  # names in the current model that are copies / derived values
    columns, models, broken = set(), set(), set()
    for i, (kind, outs, filt) in enumerate(chain):
        name = f"m{i}"
        if kind == "star":
            columns |= {(name, c) for c in copies | derived}
            if copies | derived:
                models.add(name)
            continue
        reads = {c for c, _, _ in outs} | ({filt} if filt else set())
        if reads & copies:
            broken.add(name)
        if reads & (copies | derived):
            models.add(name)
        new = {o for c, o, _ in outs if c in copies | derived}
        columns |= {(name, o) for o in new}
        copies, derived = set(), new
    return columns, models, broken


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_chain())
def test_lineage_impact_matches_following_the_column_by_hand(case):
    source_cols, chain, victim = case
    nodes, parent = {}, "source.p.s.t"
    relation = '"db"."s"."t"'
    for i, (kind, outs, filt) in enumerate(chain):
        if kind == "star":
            sql = f"select * from {relation}"
        else:
            items = [c if form == "plain" else (f"{c} as {o}" if form == "rename" else f"upper({c}) as {o}")
                     for c, o, form in outs]
            sql = f"select {', '.join(items)} from {relation}" + (f" where {filt} is not null" if filt else "")
        uid = f"model.p.m{i}"
        nodes[uid] = {"resource_type": "model", "name": f"m{i}", "relation_name": f'"db"."m"."m{i}"',
                      "depends_on": {"nodes": [parent]}, "compiled_code": sql}
        parent, relation = uid, f'"db"."m"."m{i}"'
    manifest = {"metadata": {"adapter_type": "duckdb"}, "nodes": nodes, "exposures": {},
                "sources": {"source.p.s.t": {"unique_id": "source.p.s.t", "source_name": "s", "name": "t",
                                             "relation_name": '"db"."s"."t"',
                                             "columns": {c: {"name": c} for c in source_cols}}}}
    lin = build_lineage(manifest)
    assert not lin.errors
    [found] = analyze(detect.TableDiff("s", "t", [detect.ColumnChange("removed", victim)]), lin)
    columns, models, broken = _oracle(source_cols, chain, victim)
    assert found.columns == columns
    assert found.models == models
    assert found.broken_models == broken
