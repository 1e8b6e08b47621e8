"""What a connector sync will cost, priced from the backlog it will load (no Dagster imports).

An incremental sync loads (and the vendor bills) the rows that arrived since the data its tables
hold: a sync after a long outage loads the whole outage's backlog, so the mean of past syncs -- a
few hours' rows each, on the connector's own schedule -- underprices it many times over (a generated
world's retry after a day-long outage cost 8x its connector's mean sync and took a policy over its
budget). A budget (the gate, validation, work in flight) therefore prices a sync from:

* the **gap** it will load: from the oldest data time of its tables (``Snapshot.data_time``; else
  the start of the connector's last good sync) to when it starts;
* the connector's **cost per hour of gap** over its recent good syncs (each priced by its cost
  record, its gap from the start of the good sync before it): ``sum(usd) / sum(gap)``;
* a **margin** from the estimate's observed error: the worst ratio of a past sync's actual cost to
  what this rule would have priced it at from the others (leave-one-out), within
  [1, :data:`MAX_MARGIN`]; at least :data:`EXTRAPOLATION_MARGIN` for a gap longer than any it was
  learned from.

``estimate = max(mean past sync, rate x gap) x margin``. A gap no longer than usual prices as the
mean (what the budget used before). A connector with no history of its own borrows the dearest
fit of the others; with no sync history at all there is no price here (0: the callers keep their
own floor).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from orchestrator.core.records import Action, Snapshot
from orchestrator.core.vocab import ActionType

UTC = timezone.utc
HISTORY = 20  # recent good syncs per connector that the rate is learned from
MAX_MARGIN = 2.0
EXTRAPOLATION_MARGIN = 1.25  # at least this margin for a gap longer than any priced sync's


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class SyncPricer:
    """Prices of syncs from one snapshot's sync and cost records (built once per cycle)."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self._built = False
        self._fit: dict[str, tuple[float, float, float] | None] = {}
        self.pairs: dict[str, list[tuple[float, float]]] = {}
        self.last_good: dict[str, datetime] = {}

    def _build(self) -> None:
        """One pass over the snapshot's records, on the first price asked (most cycles ask none)."""
        self._built = True
        snapshot = self.snapshot
        costs: dict[tuple[str, datetime], float] = {}
        for c in snapshot.costs:
            if c.source == "sync" and c.connector is not None and c.asset_key is None:
                key = (c.connector, _aware(c.at))
                costs[key] = costs.get(key, 0.0) + c.amount_usd
        good: dict[str, list] = {}
        for s in snapshot.syncs:
            if s.status == "succeeded" and s.ended_at is not None:
                good.setdefault(s.connector, []).append(s)
        # connector -> [(gap hours, usd)] of its recent good syncs, and the start of its last good one
        for conn, syncs in good.items():
            syncs.sort(key=lambda s: _aware(s.started_at))
            self.last_good[conn] = _aware(syncs[-1].started_at)
            pairs = []
            for prev, cur in zip(syncs, syncs[1:]):
                usd = costs.get((conn, _aware(cur.ended_at)))
                gap = (_aware(cur.started_at) - _aware(prev.started_at)).total_seconds() / 3600
                if usd is not None and usd > 0 and gap > 0:
                    pairs.append((gap, usd))
            self.pairs[conn] = pairs[-HISTORY:]

    @staticmethod
    def _rule(pairs: list[tuple[float, float]], gap: float) -> float:
        mean = sum(u for _, u in pairs) / len(pairs)
        rate = sum(u for _, u in pairs) / sum(g for g, _ in pairs)
        return max(mean, rate * gap)

    def fit(self, connector: str) -> tuple[float, float, float] | None:
        """(mean usd, usd per hour of gap, margin) of a connector, None without history."""
        if not self._built:
            self._build()
        if connector not in self._fit:
            pairs = self.pairs.get(connector) or []
            out = None
            if pairs:
                mean = sum(u for _, u in pairs) / len(pairs)
                rate = sum(u for _, u in pairs) / sum(g for g, _ in pairs)
                margin = 1.0
                if len(pairs) >= 3:
                    for i, (g, u) in enumerate(pairs):
                        rest = pairs[:i] + pairs[i + 1:]
                        margin = max(margin, u / self._rule(rest, g))
                out = (mean, rate, min(MAX_MARGIN, margin))
            self._fit[connector] = out
        return self._fit[connector]

    def model_means(self) -> dict[str, float]:
        """asset -> the mean spend of its past runs."""
        if getattr(self, "_means", None) is None:
            sums: dict[str, list[float]] = {}
            for c in self.snapshot.costs:
                if c.asset_key:
                    s = sums.setdefault(c.asset_key, [0.0, 0])
                    s[0] += c.amount_usd
                    s[1] += 1
            self._means = {k: v[0] / v[1] for k, v in sums.items()}
        return self._means

    def gap_hours(self, connector: str, start: datetime) -> float | None:
        """Hours of data a sync of ``connector`` starting at ``start`` will load."""
        tables = self.snapshot.graph.connectors.get(connector, ())
        times = [_aware(t) for k in tables if (t := (self.snapshot.data_time or {}).get(k)) is not None]
        since = min(times) if times else self.last_good.get(connector)
        if since is None:
            return None
        return max(0.0, (_aware(start) - since).total_seconds() / 3600)

    def borrowed(self) -> tuple[float, float, float] | None:
        """For a connector with no history of its own: the dearest fit of the others (a budget
        must not read "no history" as "free")."""
        if not self._built:
            self._build()
        fits = [f for c in self.pairs if (f := self.fit(c)) is not None]
        if not fits:
            return None
        return max(f[0] for f in fits), max(f[1] for f in fits), max(f[2] for f in fits)

    def estimate(self, connector: str, start: datetime) -> float:
        """What a sync of ``connector`` starting at ``start`` will cost (0: no sync history at all
        to go by; a connector without its own is priced as the dearest of the others)."""
        fit = self.fit(connector) or self.borrowed()
        if fit is None:
            return 0.0
        mean, rate, margin = fit
        gap = self.gap_hours(connector, start)
        if gap is not None and gap > self.longest(connector):
            margin = max(margin, EXTRAPOLATION_MARGIN)  # a backlog longer than any seen: less certain
        return (mean if gap is None else max(mean, rate * gap)) * margin

    def longest(self, connector: str) -> float:
        """The longest gap (hours) among the connector's priced syncs (0 with none)."""
        return max((g for g, _ in self.pairs.get(connector) or ()), default=0.0)


def synced_connectors(action: Action, graph) -> list[str]:
    """The connectors whose sync an action starts: its connector (a retry of a sync) and those of
    the connector tables a run of its assets lands. Resyncs are priced by their own floor."""
    t = ActionType.parse(action.type)
    if t is None or not (t.starts_run or t is ActionType.retry) or action.type in ("resync_table", "full_resync"):
        return []
    out: dict[str, None] = {}
    if action.connector:
        out[action.connector] = None
    for k in action.asset_keys:
        node = graph.get(k) if graph is not None else None
        if node is not None and node.connector:
            out[node.connector] = None
    return list(out)


def sync_spend(snapshot: Snapshot, action: Action, now: datetime, pricer: SyncPricer | None = None) -> float:
    """The spend of the connector syncs ``action`` starts, priced from their backlog (0 for none)."""
    conns = synced_connectors(action, snapshot.graph)
    if not conns:
        return 0.0
    pricer = pricer or SyncPricer(snapshot)
    start = _aware(action.not_before) if action.not_before is not None and _aware(action.not_before) > now else now
    return sum(pricer.estimate(c, start) for c in conns)


def priced_total(snapshot: Snapshot, action: Action, now: datetime, *, models: float,
                 pricer: SyncPricer | None = None) -> float:
    """``models`` (the models' share: cost history, else p90 x the warehouse price) plus its syncs."""
    return models + sync_spend(snapshot, action, now, pricer)


def with_syncs(snapshot: Snapshot, action: Action, now: datetime, base: float,
               pricer: SyncPricer | None = None) -> float:
    """``base`` (the action's own estimate: its models, and for a retry of a sync one ordinary sync
    of its connector, as the planner prices them) plus what its syncs' backlog adds to that."""
    syncs = sync_spend(snapshot, action, now, pricer)
    if syncs <= 0:
        return base
    included = 0.0
    if action.type == ActionType.retry.value and action.connector:
        pricer = pricer or SyncPricer(snapshot)
        fit = pricer.fit(action.connector)
        included = fit[0] if fit is not None else 0.0
    return base + max(0.0, syncs - included)


def models_spend(snapshot: Snapshot, action: Action, pricer: SyncPricer) -> float:
    """The mean past run cost of the models (not connector tables) ``action`` runs."""
    t = ActionType.parse(action.type)
    if t is None or not t.starts_run:
        return 0.0
    means = pricer.model_means()
    graph = snapshot.graph
    return sum(means.get(k, 0.0) for k in action.asset_keys
               if (n := graph.get(k)) is not None and not n.connector)


def connectors_of(keys: Iterable[str], graph) -> list[str]:
    return list(dict.fromkeys(n.connector for k in keys if (n := graph.get(k)) is not None and n.connector))
