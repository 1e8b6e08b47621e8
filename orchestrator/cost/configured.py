"""The warehouse cost source chosen by configuration (``ORCHESTRATOR_COST_SOURCE``).

* ``embedded`` (default): no warehouse source; the embedded model (compute seconds x rates, plus
  dbt's run results) prices runs, syncs and dbt nodes.
* ``snowflake``: ``SnowflakeCostSource`` over a ``snowflake-connector-python`` connection
  (``ORCHESTRATOR_SNOWFLAKE_ACCOUNT`` / ``_USER`` / ``_PASSWORD`` or ``_PRIVATE_KEY_PATH`` /
  ``_ROLE`` / ``_WAREHOUSE``; ``_WAREHOUSES`` filters the metered warehouses,
  ``_USD_PER_CREDIT`` prices a credit). Reads ``SNOWFLAKE.ACCOUNT_USAGE``: the role needs
  ``IMPORTED PRIVILEGES`` on the SNOWFLAKE database (or the USAGE_VIEWER database role).
* ``bigquery``: ``BigQueryCostSource`` over a ``google-cloud-bigquery`` client
  (``ORCHESTRATOR_BIGQUERY_PROJECT`` / ``_REGION`` / ``_PRICING`` / ``_USD_PER_TIB``; credentials
  from Application Default Credentials, e.g. ``GOOGLE_APPLICATION_CREDENTIALS``). Needs
  ``bigquery.jobs.listAll`` on the project (``roles/bigquery.resourceViewer``).

Per-model attribution comes from dbt's tags (``dbt_project/macros/orchestrator_query_tag.sql``):
a Snowflake ``query_tag`` / BigQuery job labels naming the dbt node, mapped to the project's asset
keys with ``key_of`` (dbt unique id or model name -> asset key) when the asset graph is known.

The drivers are imported only when a warehouse source is configured; a missing driver or
setting is a ``CostSourceConfigError`` naming what to install or set. No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrator.cost.bigquery import BigQueryCostSource
from orchestrator.cost.snowflake import QueryFn, SnowflakeCostSource


class CostSourceConfigError(ValueError):
    """The configured cost source cannot be built (missing setting or driver)."""


def _require(settings, *names: str) -> None:
    missing = [n for n in names if not getattr(settings, n, None)]
    if missing:
        env = ", ".join(f"ORCHESTRATOR_{n.upper()}" for n in missing)
        raise CostSourceConfigError(f"ORCHESTRATOR_COST_SOURCE={settings.cost_source} needs {env}")


def dbapi_query(connect: Callable[[], Any]) -> QueryFn:
    """``query(sql, params) -> [dict]`` over a DB-API connection made by ``connect()`` (opened on
    first use, reused; one cursor per query; column names as the driver reports them)."""
    state: dict[str, Any] = {}

    def query(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        if "conn" not in state:
            state["conn"] = connect()
        cur = state["conn"].cursor()
        try:
            cur.execute(sql, dict(params))
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        finally:
            cur.close()

    return query


def snowflake_connect(settings, connector=None) -> Callable[[], Any]:
    """A ``connect()`` for ``snowflake.connector`` (``connector``: the module, for tests)."""
    _require(settings, "snowflake_account", "snowflake_user")
    if not settings.snowflake_password and not settings.snowflake_private_key_path:
        raise CostSourceConfigError(
            "ORCHESTRATOR_COST_SOURCE=snowflake needs ORCHESTRATOR_SNOWFLAKE_PASSWORD or "
            "ORCHESTRATOR_SNOWFLAKE_PRIVATE_KEY_PATH")
    if connector is None:
        try:
            import snowflake.connector as connector  # type: ignore[import-not-found, no-redef]
        except ImportError as exc:
            raise CostSourceConfigError(
                "ORCHESTRATOR_COST_SOURCE=snowflake needs the Snowflake driver: "
                "pip install 'snowflake-connector-python>=3'") from exc

    def connect():
        kwargs: dict[str, Any] = {
            "account": settings.snowflake_account,
            "user": settings.snowflake_user,
            "application": "sla-orchestrator",
            "session_parameters": {"QUERY_TAG": '{"app": "sla-orchestrator", "purpose": "cost"}',
                                   "TIMEZONE": "UTC"},
        }
        if settings.snowflake_password:
            kwargs["password"] = settings.snowflake_password.get_secret_value()
        if settings.snowflake_private_key_path:
            kwargs["private_key_file"] = str(settings.snowflake_private_key_path)
        if settings.snowflake_role:
            kwargs["role"] = settings.snowflake_role
        if settings.snowflake_warehouse:
            kwargs["warehouse"] = settings.snowflake_warehouse
        return connector.connect(**kwargs)

    return connect


def bigquery_query(settings, bigquery=None) -> QueryFn:
    """``query(sql, params)`` over ``google.cloud.bigquery`` (``bigquery``: the module, for
    tests): ``@since``/``@until`` become TIMESTAMP query parameters; rows come back as dicts
    (``labels`` as the documented ``[{key, value}]``, ``destination_table`` as a dict)."""
    _require(settings, "bigquery_project")
    if bigquery is None:
        try:
            from google.cloud import bigquery  # type: ignore[import-not-found, no-redef]
        except ImportError as exc:
            raise CostSourceConfigError(
                "ORCHESTRATOR_COST_SOURCE=bigquery needs the BigQuery client: "
                "pip install 'google-cloud-bigquery>=3'") from exc
    state: dict[str, Any] = {}

    def query(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        if "client" not in state:
            state["client"] = bigquery.Client(project=settings.bigquery_project)
        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter(k, "TIMESTAMP", v) for k, v in params.items()],
            labels={"app": "sla-orchestrator", "purpose": "cost"},
        )
        job = state["client"].query(sql, job_config=config)
        return [dict(row.items()) for row in job.result()]

    return query


def warehouse_cost_source(
    settings,
    *,
    key_of: Mapping[str, str] | None = None,
    query: QueryFn | None = None,
    connector=None,
    bigquery=None,
):
    """The warehouse cost source the settings choose, or None for ``embedded``. ``query``
    replaces the driver (tests, or a team's own connection); ``connector``/``bigquery`` replace
    the driver module only."""
    kind = settings.cost_source
    if kind == "embedded":
        return None
    if kind == "snowflake":
        warehouses: Sequence[str] = [w.strip() for w in settings.snowflake_warehouses.split(",") if w.strip()]
        return SnowflakeCostSource(
            query or dbapi_query(snowflake_connect(settings, connector)),
            usd_per_credit=settings.snowflake_usd_per_credit, warehouses=warehouses, key_of=key_of)
    if kind == "bigquery":
        if not query:
            _require(settings, "bigquery_project")
        return BigQueryCostSource(
            query or bigquery_query(settings, bigquery),
            project=settings.bigquery_project or "", region=settings.bigquery_region,
            pricing=settings.bigquery_pricing, usd_per_tib=settings.bigquery_usd_per_tib, key_of=key_of)
    raise CostSourceConfigError(f"ORCHESTRATOR_COST_SOURCE={kind!r}: use embedded, snowflake or bigquery")
