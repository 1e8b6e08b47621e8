"""Snowflake cost: ``WAREHOUSE_METERING_HISTORY`` (what was billed per warehouse-hour) and
``QUERY_ATTRIBUTION_HISTORY`` (which query, hence which dbt model via ``query_tag``, used it).

Records do not double count: each attributed query is a ``query`` record on its asset; each
warehouse-hour adds one ``warehouse`` record for what queries do not explain (idle time, the
60 s minimum, cloud services) = ``CREDITS_USED - CREDITS_ATTRIBUTED_COMPUTE_QUERIES``. So the
sum of records is the metered total. Attribution lags metering by up to ~6 h; hours without any
attribution yet are kept whole as ``warehouse``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from dateutil.parser import parse as parse_time

from orchestrator.core.records import CostRecord

UTC = timezone.utc
QueryFn = Callable[[str, Mapping[str, Any]], Sequence[Mapping[str, Any]]]

WAREHOUSE_METERING_SQL = """\
select start_time, end_time, warehouse_name, credits_used, credits_used_compute,
       credits_used_cloud_services, credits_attributed_compute_queries
from snowflake.account_usage.warehouse_metering_history
where start_time >= %(since)s and start_time < %(until)s{warehouse_filter}
order by start_time, warehouse_name"""

QUERY_ATTRIBUTION_SQL = """\
select query_id, root_query_id, warehouse_name, query_tag, user_name, start_time, end_time,
       credits_attributed_compute, coalesce(credits_used_query_acceleration, 0) as credits_used_query_acceleration
from snowflake.account_usage.query_attribution_history
where start_time >= %(since)s and start_time < %(until)s{warehouse_filter}
order by start_time"""


def _row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in row.items()}


def _ts(value: Any) -> datetime:
    t = value if isinstance(value, datetime) else parse_time(str(value))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def asset_from_query_tag(tag: str | None) -> str | None:
    """dbt's query tag: JSON with ``dagster_asset``/``asset_key``/``node_id``/``model``, or
    ``dbt:<model>``, or a bare ``<model>``. Model unique ids become the model name."""
    if not tag:
        return None
    tag = tag.strip()
    if tag.startswith("{"):
        try:
            data = json.loads(tag)
        except ValueError:
            return None
        for field in ("dagster_asset", "asset_key"):
            if data.get(field):
                value = data[field]
                return "/".join(value) if isinstance(value, list) else str(value)
        node = data.get("node_id") or data.get("model") or data.get("dbt_model")
        return str(node).split(".")[-1] if node else None
    if tag.startswith("dbt:"):
        return tag[4:].split(".")[-1] or None
    return tag if "/" in tag or tag.replace("_", "").isalnum() else None


def dbt_node_from_query_tag(tag: str | None) -> tuple[str | None, str | None]:
    """(dbt unique id, model name) named by a query tag (JSON ``node_id``/``dbt_model``, or
    ``dbt:<name>``); (None, None) when it names no dbt node."""
    if not tag:
        return None, None
    tag = tag.strip()
    if tag.startswith("{"):
        try:
            data = json.loads(tag)
        except ValueError:
            return None, None
        if not isinstance(data, dict):
            return None, None
        node = data.get("node_id")
        name = data.get("dbt_model") or data.get("model") or (str(node).split(".")[-1] if node else None)
        return (str(node) if node else None), (str(name) if name else None)
    if tag.startswith("dbt:"):
        return None, tag[4:].split(".")[-1] or None
    return None, None


def keyed_asset(asset_of_tag: Callable[[str | None], str | None], key_of: Mapping[str, str] | None):
    """``asset_of_tag`` that first maps the tag's dbt node to the project's asset key."""
    if not key_of:
        return asset_of_tag

    def asset(tag: str | None) -> str | None:
        node, name = dbt_node_from_query_tag(tag)
        for candidate in (node, name):
            if candidate and candidate in key_of:
                return key_of[candidate]
        return asset_of_tag(tag)

    return asset


class SnowflakeCostSource:
    name = "snowflake"

    def __init__(
        self,
        query: QueryFn,
        usd_per_credit: float = 3.0,
        *,
        warehouses: Sequence[str] = (),
        asset_of_tag: Callable[[str | None], str | None] = asset_from_query_tag,
        key_of: Mapping[str, str] | None = None,
    ):
        """``key_of``: dbt unique id or model name -> the project's asset key (the asset graph's
        ``dbt_name``); without it the tag's ``dagster_asset`` / model name is the key."""
        self.query = query
        self.usd_per_credit = usd_per_credit
        self.warehouses = tuple(warehouses)
        self.asset_of_tag = keyed_asset(asset_of_tag, key_of)

    def _sql(self, template: str) -> str:
        flt = ""
        if self.warehouses:
            flt = " and warehouse_name in (" + ", ".join(f"%(wh{i})s" for i in range(len(self.warehouses))) + ")"
        return template.format(warehouse_filter=flt)

    def _params(self, since: datetime, until: datetime) -> dict[str, Any]:
        params: dict[str, Any] = {"since": since, "until": until}
        params.update({f"wh{i}": w for i, w in enumerate(self.warehouses)})
        return params

    def costs(self, since: datetime, until: datetime) -> list[CostRecord]:
        params = self._params(since, until)
        metering = [_row(r) for r in self.query(self._sql(WAREHOUSE_METERING_SQL), params)]
        attribution = [_row(r) for r in self.query(self._sql(QUERY_ATTRIBUTION_SQL), params)]
        return self.records(metering, attribution)

    def records(self, metering, attribution) -> list[CostRecord]:
        """Parse result rows (column names in any case) into CostRecords."""
        price = self.usd_per_credit
        out: list[CostRecord] = []
        attributed: dict[tuple[str, datetime], float] = {}
        for row in map(_row, attribution):
            credits = float(row.get("credits_attributed_compute") or 0) + float(
                row.get("credits_used_query_acceleration") or 0
            )
            start = _ts(row["start_time"])
            end = _ts(row.get("end_time") or row["start_time"])
            hour = start.replace(minute=0, second=0, microsecond=0)
            attributed[(row.get("warehouse_name"), hour)] = attributed.get((row.get("warehouse_name"), hour), 0) + credits
            out.append(CostRecord(
                at=end, amount_usd=credits * price, source="query",
                asset_key=self.asset_of_tag(row.get("query_tag")),
                detail={"query_id": row.get("query_id"), "warehouse": row.get("warehouse_name"),
                        "credits": credits, "query_tag": row.get("query_tag"),
                        "user": row.get("user_name")},
            ))
        for row in map(_row, metering):
            start = _ts(row["start_time"])
            end = _ts(row.get("end_time") or row["start_time"])
            total = float(row.get("credits_used") or 0)
            seen = attributed.get((row.get("warehouse_name"), start.replace(minute=0, second=0, microsecond=0)))
            if seen is None:
                rest = total  # attribution not in yet: the whole hour stays on the warehouse
            else:
                rest = max(0.0, total - seen)
            out.append(CostRecord(
                at=end, amount_usd=rest * price, source="warehouse",
                detail={"warehouse": row.get("warehouse_name"), "credits_used": total,
                        "credits_unattributed": rest,
                        "credits_cloud_services": float(row.get("credits_used_cloud_services") or 0),
                        "credits_attributed_compute_queries": float(row.get("credits_attributed_compute_queries") or 0)},
            ))
        return out
