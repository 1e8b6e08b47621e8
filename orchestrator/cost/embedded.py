"""The embedded cost model: compute seconds x configured rates.

* Dagster runs: (ended or now) - started, priced at ``run_usd_per_hour``, split evenly over the
  run's assets;
* connector syncs: (ended or now) - started, priced per system (``sync_usd_per_hour``), on the
  connector (the cost assessment spreads it over the connector's tables);
* dbt ``run_results.json``: each node's ``execution_time`` priced at ``dbt_usd_per_hour``
  (warehouse time), on the node's asset key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from dateutil.parser import isoparse

from orchestrator.core.records import CostRecord, RunRecord, SyncRecord

UTC = timezone.utc


def _overlap_s(start: datetime | None, end: datetime | None, since: datetime, until: datetime) -> float:
    if start is None:
        return 0.0
    end = end or until
    lo, hi = max(start, since), min(end, until)
    return max(0.0, (hi - lo).total_seconds())


def dbt_run_results_costs(
    run_results: Mapping | str | Path,
    usd_per_hour: float,
    key_of: Callable[[str], str | None] | Mapping[str, str] | None = None,
) -> list[CostRecord]:
    """One CostRecord per executed dbt node; ``key_of`` maps a dbt unique_id to an asset key
    (default: the model name, dagster-dbt's default key)."""
    if not isinstance(run_results, Mapping):
        run_results = json.loads(Path(run_results).read_text(encoding="utf-8"))
    generated = (run_results.get("metadata") or {}).get("generated_at")
    default_at = isoparse(generated) if generated else datetime.now(UTC)
    lookup = key_of.get if isinstance(key_of, Mapping) else key_of
    out = []
    for result in run_results.get("results") or []:
        uid = result.get("unique_id") or ""
        seconds = float(result.get("execution_time") or 0.0)
        at = default_at
        for timing in result.get("timing") or []:
            if timing.get("name") == "execute" and timing.get("completed_at"):
                at = isoparse(timing["completed_at"])
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        key = lookup(uid) if lookup else None
        if key is None and uid.count(".") >= 2 and uid.startswith(("model.", "snapshot.", "seed.")):
            key = uid.split(".")[-1]
        out.append(CostRecord(
            at=at, amount_usd=seconds / 3600 * usd_per_hour, source="query", asset_key=key,
            compute_s=seconds,
            detail={"dbt_unique_id": uid, "status": result.get("status"), "origin": "dbt_run_results"},
        ))
    return out


class EmbeddedCostSource:
    name = "embedded"

    def __init__(
        self,
        runs: Callable[[], Iterable[RunRecord]] | Iterable[RunRecord] = (),
        syncs: Callable[[], Iterable[SyncRecord]] | Iterable[SyncRecord] = (),
        run_results: Iterable[str | Path | Mapping] = (),
        rates=None,
        key_of: Callable[[str], str | None] | Mapping[str, str] | None = None,
    ):
        from orchestrator.assessment.cost import CostRates

        self._runs, self._syncs = runs, syncs
        self.run_results = list(run_results)
        self.rates = rates or CostRates()
        self.key_of = key_of

    @staticmethod
    def _items(src):
        return list(src() if callable(src) else src)

    def costs(self, since: datetime, until: datetime) -> list[CostRecord]:
        rates = self.rates
        out: list[CostRecord] = []
        for run in self._items(self._runs):
            seconds = _overlap_s(run.started_at, run.ended_at, since, until)
            if seconds <= 0:
                continue
            at = min(run.ended_at or until, until)
            usd = seconds / 3600 * rates.run_usd_per_hour
            keys = run.asset_keys or (None,)
            for key in keys:
                out.append(CostRecord(
                    at=at, amount_usd=usd / len(keys), source="run", asset_key=key,
                    compute_s=seconds / len(keys), detail={"run_id": run.run_id},
                ))
        for sync in self._items(self._syncs):
            seconds = _overlap_s(sync.started_at, sync.ended_at, since, until)
            if seconds <= 0:
                continue
            out.append(CostRecord(
                at=min(sync.ended_at or until, until),
                amount_usd=seconds / 3600 * rates.sync_rate(sync.connector), source="sync",
                connector=sync.connector, compute_s=seconds,
                detail={"sync_id": sync.sync_id, "status": sync.status, "triggered_by": sync.triggered_by},
            ))
        for item in self.run_results:
            if isinstance(item, (str, Path)) and not Path(item).exists():
                continue
            for rec in dbt_run_results_costs(item, rates.dbt_usd_per_hour, self.key_of):
                if since <= rec.at <= until:
                    out.append(rec)
        return out
