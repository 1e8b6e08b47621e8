"""Issue 14 item 2: the warehouse cost source chosen by configuration, and the dbt macro that tags
every model's queries so those sources price each model.

No SaaS account here: only the connection is replaced (a DB-API connection for Snowflake, the
client module for BigQuery). The rows they return have the documented column shapes
(connector-apis.md §3.1/§3.2: Snowflake upper-case columns, NUMBER as Decimal, TIMESTAMP_LTZ as
aware datetimes; BigQuery labels as [{key, value}], destination_table as a struct), and the tags
in them are the ones the shipped macro produced in a real dbt run on DuckDB.
"""

import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from orchestrator.cost import BigQueryCostSource, CombinedCostSource, SnowflakeCostSource
from orchestrator.cost.configured import CostSourceConfigError, warehouse_cost_source
from orchestrator.cost.snowflake import asset_from_query_tag, dbt_node_from_query_tag
from orchestrator.settings import Settings

ROOT = Path(__file__).parents[1]
MACRO = ROOT / "dbt_project" / "macros" / "orchestrator_query_tag.sql"
SINCE, UNTIL = datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC)


# --- the macro, compiled and run by dbt on DuckDB (a no-op for the session there) -----------

@pytest.fixture(scope="module")
def dbt_tags(tmp_path_factory):
    """A tiny dbt project holding the shipped macro file and the query-comment block the README
    tells a team to add; `dbt run` on DuckDB. Returns {model: query_tag} and {model: comment}."""
    import duckdb

    proj = tmp_path_factory.mktemp("tagproj")
    (proj / "macros").mkdir()
    (proj / "models" / "marts").mkdir(parents=True)
    shutil.copy(MACRO, proj / "macros" / MACRO.name)
    (proj / "dbt_project.yml").write_text(
        "name: tagcheck\nversion: '1.0.0'\nconfig-version: 2\nprofile: tagcheck\n"
        "query-comment:\n  comment: \"{{ orchestrator_query_comment(node) }}\"\n  job-label: true\n")
    (proj / "profiles.yml").write_text(
        f"tagcheck:\n  target: dev\n  outputs:\n    dev: {{type: duckdb, path: '{proj / 'w.duckdb'}', threads: 1}}\n")
    body = "select '{{ orchestrator_query_tag() | replace(\"'\", \"''\") }}' as query_tag\n"
    (proj / "models" / "marts" / "fct_revenue_daily.sql").write_text(body)
    (proj / "models" / "marts" / "Fct_Keyed.sql").write_text(
        "{{ config(materialized='table', meta={'dagster': {'asset_key': ['finance', 'revenue']}}) }}\n" + body)
    done = subprocess.run([str(Path(sys.executable).with_name("dbt")), "run", "--profiles-dir", str(proj)],
                          cwd=proj, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    con = duckdb.connect(str(proj / "w.duckdb"), read_only=True)
    tags = {m: con.execute(f'select query_tag from "{m}"').fetchone()[0] for m in ("fct_revenue_daily", "Fct_Keyed")}
    con.close()
    log = (proj / "logs" / "dbt.log").read_text()
    comments = {}
    for raw in re.findall(r"/\* (\{[^*]*\}) \*/", log):
        data = json.loads(raw)
        if data.get("dbt_model"):
            comments[data["dbt_model"]] = data
    return tags, comments


def bigquery_labels(comment: dict) -> list[dict]:
    """What dbt-bigquery does with `job-label: true`: every key and value of the comment's JSON
    becomes a label, lower-cased, [a-z0-9_-] only, at most 63 characters."""
    def clean(v):
        return re.sub(r"[^a-z0-9_-]", "_", str(v).strip().lower())[:63]
    return [{"key": clean(k), "value": clean(v)} for k, v in comment.items()]


def test_the_macro_runs_on_duckdb_and_tags_each_model(dbt_tags):
    tags, comments = dbt_tags
    plain = json.loads(tags["fct_revenue_daily"])
    assert plain["app"] == "dbt" and plain["node_id"] == "model.tagcheck.fct_revenue_daily"
    assert asset_from_query_tag(tags["fct_revenue_daily"]) == "fct_revenue_daily"
    # meta.dagster.asset_key wins, as it does in dagster-dbt's default translator
    assert asset_from_query_tag(tags["Fct_Keyed"]) == "finance/revenue"
    assert dbt_node_from_query_tag(tags["Fct_Keyed"]) == ("model.tagcheck.Fct_Keyed", "Fct_Keyed")
    # every model query carried its comment (BigQuery job labels), on DuckDB a plain SQL comment
    assert comments["fct_revenue_daily"]["dbt_resource"] == "model"
    assert set(comments) >= {"fct_revenue_daily", "Fct_Keyed"}


def test_the_shipped_project_sets_query_tags_only_through_snowflake_dispatch():
    text = MACRO.read_text()
    # dbt-snowflake's materializations call set_query_tag()/unset_query_tag(), which dispatch to
    # snowflake__*; the root project's versions are found first. Nothing else is overridden, so
    # DuckDB/BigQuery/Postgres runs are untouched.
    defined = set(re.findall(r"{%-?\s*macro\s+(\w+)\(", text))
    assert defined == {"orchestrator_query_tag", "orchestrator_query_comment",
                       "snowflake__set_query_tag", "snowflake__unset_query_tag"}
    assert "orchestrator_query_comment(node)" in (ROOT / "dbt_project" / "dbt_project.yml").read_text()


# --- Snowflake: the connection is the only thing replaced -------------------------------------

class FakeSnowflakeCursor:
    def __init__(self, conn):
        self.conn, self.description, self._rows = conn, None, []

    def execute(self, sql, params):
        self.conn.executed.append((sql, params))
        # the paramstyle the connector uses by default (pyformat): %(name)s with a dict
        assert re.findall(r"%\((\w+)\)s", sql) and all(k in params for k in re.findall(r"%\((\w+)\)s", sql))
        table = self.conn.metering if "warehouse_metering_history" in sql else self.conn.attribution
        cols = list(table[0])
        self.description = [(c, None, None, None, None, None, True) for c in cols]
        self._rows = [tuple(r[c] for c in cols) for r in table]

    def fetchall(self):
        return self._rows

    def close(self):
        self.conn.closed_cursors += 1


class FakeSnowflakeConnection:
    def __init__(self, metering, attribution):
        self.metering, self.attribution = metering, attribution
        self.executed, self.closed_cursors = [], 0

    def cursor(self):
        return FakeSnowflakeCursor(self)


def ts(h, m=0):
    return datetime(2026, 3, 10, h, m, tzinfo=UTC)


def snowflake_rows(tags):
    metering = [  # WAREHOUSE_METERING_HISTORY (hourly)
        {"START_TIME": ts(5), "END_TIME": ts(6), "WAREHOUSE_ID": 7, "WAREHOUSE_NAME": "TRANSFORMING",
         "CREDITS_USED": Decimal("1.350000000"), "CREDITS_USED_COMPUTE": Decimal("1.250000000"),
         "CREDITS_USED_CLOUD_SERVICES": Decimal("0.100000000"),
         "CREDITS_ATTRIBUTED_COMPUTE_QUERIES": Decimal("0.900000000")},
    ]
    attribution = [  # QUERY_ATTRIBUTION_HISTORY (per query, no idle)
        {"QUERY_ID": "01b2-0001", "ROOT_QUERY_ID": None, "WAREHOUSE_NAME": "TRANSFORMING",
         "QUERY_TAG": tags["fct_revenue_daily"], "USER_NAME": "DBT", "START_TIME": ts(5, 10), "END_TIME": ts(5, 14),
         "CREDITS_ATTRIBUTED_COMPUTE": Decimal("0.600000000"), "CREDITS_USED_QUERY_ACCELERATION": Decimal("0")},
        {"QUERY_ID": "01b2-0002", "ROOT_QUERY_ID": None, "WAREHOUSE_NAME": "TRANSFORMING",
         "QUERY_TAG": tags["Fct_Keyed"], "USER_NAME": "DBT", "START_TIME": ts(5, 20), "END_TIME": ts(5, 21),
         "CREDITS_ATTRIBUTED_COMPUTE": Decimal("0.250000000"), "CREDITS_USED_QUERY_ACCELERATION": Decimal("0.050000000")},
        {"QUERY_ID": "01b2-0003", "ROOT_QUERY_ID": None, "WAREHOUSE_NAME": "TRANSFORMING",
         "QUERY_TAG": "", "USER_NAME": "ANALYST", "START_TIME": ts(5, 40), "END_TIME": ts(5, 41),
         "CREDITS_ATTRIBUTED_COMPUTE": Decimal("0"), "CREDITS_USED_QUERY_ACCELERATION": Decimal("0")},
    ]
    return metering, attribution


def sf_settings(**extra):
    return Settings(cost_source="snowflake", snowflake_account="acme-xy12345", snowflake_user="ORCH_COST",
                    snowflake_password="hunter2-not-logged", snowflake_role="COST_READER",
                    snowflake_warehouse="ADMIN_XS", snowflake_warehouses="TRANSFORMING", **extra)


def test_snowflake_chosen_by_configuration_prices_each_model_from_its_query_tag(dbt_tags):
    tags, _ = dbt_tags
    metering, attribution = snowflake_rows(tags)
    conn = FakeSnowflakeConnection(metering, attribution)
    made = []
    connector = SimpleNamespace(connect=lambda **kw: made.append(kw) or conn)
    key_of = {"model.tagcheck.fct_revenue_daily": "finance/fct_revenue_daily"}  # the project's own key
    src = warehouse_cost_source(sf_settings(), key_of=key_of, connector=connector)
    assert isinstance(src, SnowflakeCostSource)
    recs = src.costs(SINCE, UNTIL)
    (kw,) = made  # one connection, reused for both views
    assert kw["account"] == "acme-xy12345" and kw["role"] == "COST_READER" and kw["warehouse"] == "ADMIN_XS"
    assert kw["password"] == "hunter2-not-logged" and kw["session_parameters"]["TIMEZONE"] == "UTC"
    assert conn.closed_cursors == 2
    sqls = [sql for sql, _ in conn.executed]
    assert "snowflake.account_usage.warehouse_metering_history" in sqls[0]
    assert "snowflake.account_usage.query_attribution_history" in sqls[1]
    assert conn.executed[0][1] == {"since": SINCE, "until": UNTIL, "wh0": "TRANSFORMING"}
    by_key = {r.asset_key: r for r in recs if r.source == "query"}
    assert by_key["finance/fct_revenue_daily"].amount_usd == pytest.approx(0.6 * 3)  # via key_of
    assert by_key["finance/revenue"].amount_usd == pytest.approx(0.3 * 3)  # the tag's dagster_asset
    assert None in by_key  # the analyst's untagged query stays unattributed
    assert sum(r.amount_usd for r in recs) == pytest.approx(1.35 * 3)  # = the metered bill
    assert "hunter2" not in repr(sf_settings())  # SecretStr


def test_bigquery_chosen_by_configuration_prices_each_model_from_its_job_labels(dbt_tags):
    _, comments = dbt_tags
    seen = {}

    class Job:
        def result(self):
            return [SimpleNamespace(items=lambda r=r: r.items()) for r in rows]

    class Client:
        def __init__(self, project):
            seen["project"] = project

        def query(self, sql, job_config):
            seen["sql"], seen["config"] = sql, job_config
            return Job()

    module = SimpleNamespace(
        Client=Client,
        QueryJobConfig=lambda **kw: SimpleNamespace(**kw),
        ScalarQueryParameter=lambda name, kind, value: (name, kind, value),
    )
    rows = [  # INFORMATION_SCHEMA.JOBS rows as the client returns them
        {"job_id": "bquxjob_1", "creation_time": ts(5), "start_time": ts(5), "end_time": ts(5, 1),
         "job_type": "QUERY", "statement_type": "CREATE_TABLE_AS_SELECT", "state": "DONE",
         "labels": bigquery_labels(comments["fct_revenue_daily"]), "cache_hit": False,
         "total_bytes_processed": 2**40, "total_bytes_billed": 2**40, "total_slot_ms": 7_200_000,
         "destination_table": {"project_id": "proj", "dataset_id": "marts", "table_id": "fct_revenue_daily"}},
        {"job_id": "bquxjob_2", "creation_time": ts(5, 5), "start_time": ts(5, 5), "end_time": ts(5, 6),
         "job_type": "QUERY", "statement_type": "CREATE_TABLE_AS_SELECT", "state": "DONE",
         "labels": bigquery_labels(comments["Fct_Keyed"]), "cache_hit": False,
         "total_bytes_processed": 2**38, "total_bytes_billed": 2**38, "total_slot_ms": 1_800_000,
         "destination_table": {"project_id": "proj", "dataset_id": "marts", "table_id": "Fct_Keyed"}},
    ]
    settings = Settings(cost_source="bigquery", bigquery_project="acme-analytics", bigquery_region="eu")
    key_of = {"fct_revenue_daily": "fct_revenue_daily", "Fct_Keyed": "finance/revenue"}
    src = warehouse_cost_source(settings, key_of=key_of, bigquery=module)
    assert isinstance(src, BigQueryCostSource)
    recs = src.costs(SINCE, UNTIL)
    assert seen["project"] == "acme-analytics"
    assert "`acme-analytics`.`region-eu`.INFORMATION_SCHEMA.JOBS" in seen["sql"]
    assert ("since", "TIMESTAMP", SINCE) in seen["config"].query_parameters
    assert [r.asset_key for r in recs] == ["fct_revenue_daily", "finance/revenue"]  # lower-cased label found
    assert recs[0].amount_usd == pytest.approx(6.25) and recs[1].amount_usd == pytest.approx(6.25 / 4)


def test_missing_settings_and_drivers_are_named():
    with pytest.raises(CostSourceConfigError, match="ORCHESTRATOR_SNOWFLAKE_ACCOUNT"):
        warehouse_cost_source(Settings(cost_source="snowflake"))
    with pytest.raises(CostSourceConfigError, match="PASSWORD or ORCHESTRATOR_SNOWFLAKE_PRIVATE_KEY_PATH"):
        warehouse_cost_source(Settings(cost_source="snowflake", snowflake_account="a", snowflake_user="u"))
    with pytest.raises(CostSourceConfigError, match="ORCHESTRATOR_BIGQUERY_PROJECT"):
        warehouse_cost_source(Settings(cost_source="bigquery"))
    try:
        import snowflake.connector  # noqa: F401
    except ImportError:
        with pytest.raises(CostSourceConfigError, match="pip install 'snowflake-connector-python"):
            warehouse_cost_source(sf_settings())
    assert warehouse_cost_source(Settings()) is None  # embedded: no warehouse source


def test_the_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_COST_SOURCE", "bigquery")
    monkeypatch.setenv("ORCHESTRATOR_BIGQUERY_PROJECT", "p1")
    monkeypatch.setenv("ORCHESTRATOR_BIGQUERY_PRICING", "enterprise")
    s = Settings()
    assert (s.cost_source, s.bigquery_project, s.bigquery_pricing) == ("bigquery", "p1", "enterprise")
    monkeypatch.setenv("ORCHESTRATOR_COST_SOURCE", "redshift")
    with pytest.raises(ValueError, match="cost_source"):
        Settings()


def test_the_cost_sensor_combines_run_and_sync_costs_with_the_warehouse(dbt_tags):
    from sensors.cost import configured_source, dbt_keys

    tags, _ = dbt_tags
    conn = FakeSnowflakeConnection(*snowflake_rows(tags))
    graph = [SimpleNamespace(key="finance/fct_revenue_daily", dbt_name="model.tagcheck.fct_revenue_daily"),
             SimpleNamespace(key="dashboard/revenue", dbt_name="revenue")]
    ctx = SimpleNamespace(graph=graph)
    assert dbt_keys(ctx) == {"model.tagcheck.fct_revenue_daily": "finance/fct_revenue_daily",
                             "fct_revenue_daily": "finance/fct_revenue_daily"}
    src = configured_source(sf_settings(), None, ctx, None, connector=SimpleNamespace(connect=lambda **k: conn))
    assert isinstance(src, CombinedCostSource)
    kinds = [type(s).__name__ for s in src.sources]
    assert kinds == ["EmbeddedCostSource", "SnowflakeCostSource"]
    assert src.sources[0].run_results == []  # dbt's run results are not priced twice


# --- generated tags: whatever the model is called, the tag finds it back ---------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,80}", fullmatch=True)


@hsettings(max_examples=200, deadline=None)
@given(name=names, package=st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True),
       schema=st.one_of(st.none(), st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)))
def test_any_model_name_round_trips_through_tag_and_labels(name, package, schema):
    uid = f"model.{package}.{name}"
    key = f"{schema}/{name}" if schema else name
    tag = json.dumps({"app": "dbt", "node_id": uid, "dbt_model": name, "dagster_asset": key,
                      "dbt_invocation_id": "x"})
    assert asset_from_query_tag(tag) == key
    assert dbt_node_from_query_tag(tag) == (uid, name)
    src = SnowflakeCostSource(lambda *a: [], key_of={uid: "k/" + name})
    assert src.asset_of_tag(tag) == "k/" + name
    labels = bigquery_labels({"app": "dbt", "dbt_model": name, "dbt_resource": "model"})
    bq = BigQueryCostSource(lambda *a: [], key_of={name: "k/" + name})
    assert bq.asset_of_job({"labels": labels}) == "k/" + name


# --- contract: the cost queries read only the documented columns (connector-apis.md §3.1/§3.2) --

SF_DOCUMENTED = {
    "warehouse_metering_history": {"start_time", "end_time", "warehouse_id", "warehouse_name", "credits_used",
                                   "credits_used_compute", "credits_used_cloud_services",
                                   "credits_attributed_compute_queries"},
    "query_attribution_history": {"query_id", "parent_query_id", "root_query_id", "warehouse_name", "query_hash",
                                  "query_tag", "user_name", "start_time", "end_time", "credits_attributed_compute",
                                  "credits_used_query_acceleration"},
}
BQ_JOBS_DOCUMENTED = {"job_id", "creation_time", "start_time", "end_time", "job_type", "statement_type", "state",
                      "priority", "user_email", "project_id", "query", "labels", "reservation_id", "cache_hit",
                      "total_bytes_processed", "total_bytes_billed", "total_slot_ms", "error_result",
                      "destination_table", "referenced_tables", "parent_job_id", "job_stages"}


def _columns(sql, dialect):
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(re.sub(r"%\((\w+)\)s", r"'\1'", sql), read=dialect)
    return {c.name.lower() for c in tree.find_all(exp.Column)}


def test_the_cost_queries_read_only_documented_columns():
    from orchestrator.cost.bigquery import JOBS_SQL
    from orchestrator.cost.snowflake import QUERY_ATTRIBUTION_SQL, WAREHOUSE_METERING_SQL

    flt = " and warehouse_name in (%(wh0)s)"
    assert _columns(WAREHOUSE_METERING_SQL.format(warehouse_filter=flt), "snowflake") <= \
        SF_DOCUMENTED["warehouse_metering_history"]
    assert _columns(QUERY_ATTRIBUTION_SQL.format(warehouse_filter=flt), "snowflake") <= \
        SF_DOCUMENTED["query_attribution_history"]
    assert _columns(JOBS_SQL.format(project="p", region="us"), "bigquery") <= BQ_JOBS_DOCUMENTED
