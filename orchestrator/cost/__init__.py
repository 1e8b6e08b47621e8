"""Cost sources behind one interface: ``CostSource.costs(since, until) -> list[CostRecord]``.

* ``EmbeddedCostSource``: compute seconds of runs and syncs x configured rates, plus the
  execution time of every node in dbt ``run_results.json`` files (the embedded default).
* ``SnowflakeCostSource``: ``WAREHOUSE_METERING_HISTORY`` + ``QUERY_ATTRIBUTION_HISTORY``.
* ``BigQueryCostSource``: ``INFORMATION_SCHEMA.JOBS`` (bytes billed or slot-ms).

Warehouse sources take a ``query(sql, params) -> list[dict]`` callable (any DB-API cursor
wrapped in two lines), so they are tested on recorded result rows and need no driver here.
No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, runtime_checkable

from orchestrator.core.records import CostRecord
from orchestrator.cost.bigquery import BigQueryCostSource
from orchestrator.cost.embedded import EmbeddedCostSource, dbt_run_results_costs
from orchestrator.cost.snowflake import SnowflakeCostSource


@runtime_checkable
class CostSource(Protocol):
    name: str

    def costs(self, since: datetime, until: datetime) -> list[CostRecord]: ...


class CombinedCostSource:
    """Several sources as one (e.g. embedded run compute + Snowflake warehouse)."""

    name = "combined"

    def __init__(self, sources: Iterable[CostSource]):
        self.sources = list(sources)

    def costs(self, since: datetime, until: datetime) -> list[CostRecord]:
        out: list[CostRecord] = []
        for source in self.sources:
            out.extend(source.costs(since, until))
        return out


__all__ = [
    "BigQueryCostSource", "CombinedCostSource", "CostSource", "EmbeddedCostSource",
    "SnowflakeCostSource", "dbt_run_results_costs",
]
