"""BigQuery cost from ``region-<r>.INFORMATION_SCHEMA.JOBS``: on-demand (USD per TiB of
``total_bytes_billed``) or editions (USD per slot-hour of ``total_slot_ms``).

The asset of a job comes from its labels (``dagster_asset``, ``dbt_model``/``dbt_node``, dbt's
``dbt_invocation_id`` is ignored) or its destination table (``dataset.table`` -> ``table``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import re

from dateutil.parser import isoparse

from orchestrator.core.records import CostRecord

UTC = timezone.utc
TIB = 2**40
_LABEL_UNSAFE = re.compile(r"[^a-z0-9_-]")
ON_DEMAND_USD_PER_TIB = 6.25
EDITION_USD_PER_SLOT_HOUR = {"standard": 0.04, "enterprise": 0.06, "enterprise_plus": 0.10}

JOBS_SQL = """\
select job_id, creation_time, start_time, end_time, job_type, statement_type, state, user_email,
       project_id, labels, reservation_id, cache_hit, total_bytes_processed, total_bytes_billed,
       total_slot_ms, destination_table, error_result
from `{project}`.`region-{region}`.INFORMATION_SCHEMA.JOBS
where creation_time >= @since and creation_time < @until
  and job_type = 'QUERY' and state = 'DONE'
order by creation_time"""


def _ts(value: Any) -> datetime:
    t = value if isinstance(value, datetime) else isoparse(str(value))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _labels(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {str(item["key"]): str(item.get("value")) for item in value}


def asset_from_job(row: Mapping[str, Any]) -> str | None:
    labels = _labels(row.get("labels"))
    if labels.get("dagster_asset"):
        return labels["dagster_asset"].replace("__", "/")
    for name in ("dbt_model", "dbt_node", "dbt_node_id"):
        if labels.get(name):
            return labels[name].split(".")[-1]
    dest = row.get("destination_table")
    if isinstance(dest, Mapping) and dest.get("table_id") and not str(dest.get("dataset_id", "")).startswith("_"):
        return str(dest["table_id"])
    return None


def _keyed(asset_of_job, key_of: Mapping[str, str]):
    # dbt-bigquery writes label values lower-cased, [a-z0-9_-] only, cut at 63 characters
    lookup = {}
    for name, key in key_of.items():
        lookup.setdefault(name, key)
        lookup.setdefault(_LABEL_UNSAFE.sub("_", name.strip().lower())[:63], key)

    def asset(row: Mapping[str, Any]) -> str | None:
        labels = _labels(row.get("labels"))
        for name in ("dbt_model", "dbt_node", "dbt_node_id"):
            value = labels.get(name)
            if value and value in lookup:
                return lookup[value]
        return asset_of_job(row)

    return asset


class BigQueryCostSource:
    name = "bigquery"

    def __init__(
        self,
        query: Callable[[str, Mapping[str, Any]], Sequence[Mapping[str, Any]]],
        *,
        project: str = "",
        region: str = "us",
        pricing: str = "on_demand",  # on_demand | standard | enterprise | enterprise_plus
        usd_per_tib: float = ON_DEMAND_USD_PER_TIB,
        asset_of_job: Callable[[Mapping[str, Any]], str | None] = asset_from_job,
        key_of: Mapping[str, str] | None = None,
    ):
        """``key_of``: dbt unique id or model name -> the project's asset key; the job's
        ``dbt_model`` label (dbt's query comment, see dbt_project/macros) is looked up in it."""
        if key_of:
            asset_of_job = _keyed(asset_of_job, key_of)
        if pricing != "on_demand" and pricing not in EDITION_USD_PER_SLOT_HOUR:
            raise ValueError(f"pricing must be on_demand or one of {sorted(EDITION_USD_PER_SLOT_HOUR)}")
        self.query, self.project, self.region = query, project, region
        self.pricing, self.usd_per_tib, self.asset_of_job = pricing, usd_per_tib, asset_of_job

    @property
    def sql(self) -> str:
        return JOBS_SQL.format(project=self.project, region=self.region)

    def costs(self, since: datetime, until: datetime) -> list[CostRecord]:
        return self.records(self.query(self.sql, {"since": since, "until": until}))

    def records(self, rows) -> list[CostRecord]:
        out = []
        for raw in rows:
            row = {str(k).lower(): v for k, v in raw.items()}
            if row.get("cache_hit"):
                billed = 0
            else:
                billed = int(row.get("total_bytes_billed") or 0)
            slot_ms = int(row.get("total_slot_ms") or 0)
            if self.pricing == "on_demand":
                usd = billed / TIB * self.usd_per_tib
            else:
                usd = slot_ms / 3.6e6 * EDITION_USD_PER_SLOT_HOUR[self.pricing]
            end = row.get("end_time") or row.get("creation_time")
            start = row.get("start_time")
            out.append(CostRecord(
                at=_ts(end), amount_usd=usd, source="query", asset_key=self.asset_of_job(row),
                compute_s=slot_ms / 1000.0,
                detail={"job_id": row.get("job_id"), "bytes_billed": billed, "slot_ms": slot_ms,
                        "statement_type": row.get("statement_type"),
                        "duration_s": (_ts(end) - _ts(start)).total_seconds() if start and end else None},
            ))
        return out
