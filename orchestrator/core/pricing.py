"""What a connector sync will cost, priced from the backlog it will load (no Dagster imports).

An incremental sync loads (and the vendor bills) the rows that arrived since the data its tables
hold: a sync after a long outage, or the first sync the orchestrator triggers of a connector whose
data is a day old, loads the whole gap's backlog, so the mean of past syncs -- a few hours' rows
each, on the connector's own schedule -- underprices it many times over (generated worlds: a
retry after a day-long outage took a policy over its budget; a routine refresh that synced two
connectors with 30 h of backlog, priced at their mean past sync -- $0, none had run yet -- took a
$29.61 budget $85 over). The gate and validation therefore price **every** sync an action starts
(:func:`sync_spend`: a retry's, and the syncs a run of connector tables triggers) from:

* the **gap** it will load: from the oldest data time of its tables (``Snapshot.data_time``; else
  the start of the connector's last good sync) to when it starts;
* the connector's **cost per hour of gap** over its recent good syncs (each priced by its cost
  record, its gap from the start of the good sync before it): ``sum(usd) / sum(gap)``;
* a **margin** from the estimate's observed error: the worst ratio of a past sync's actual cost to
  what this rule would have priced it at from the others (leave-one-out), within
  [1, :data:`MAX_MARGIN`]; at least :data:`EXTRAPOLATION_MARGIN` for a gap longer than any it was
  learned from.

``estimate = (fixed + per hour x gap) x margin``, the line fitted by least squares when the past
gaps vary enough to tell a sync's fixed part from its rows (at least 3 syncs, gaps 1.5x apart, both
parts >= 0); else ``max(mean past sync, rate x gap)`` with ``rate = sum(usd) / sum(gap)`` (never
below a linear bill, but over it by the fixed part x gap / usual gap) -- or, where the connector
reports the rows its syncs loaded, the cheaper :meth:`SyncPricer._by_rows`: a past sync's bill plus
the extra hours' rows at the fleet's cheapest sync per row (an upper bound of the per-row price).  A connector with no priced
sync of its own (none, or a single one: no gap to learn from) borrows the dearest fit of the others,
and is never priced below its own dearest past sync; with no sync history at all there is no price
here (0: the callers keep their own floor, and the gate asks a person).

A run's syncs are paid by **every** budgeted policy governing any table they land
(:func:`budget_keys`), as the cost assessment and the audit count them, not only by the policies
of the assets the action names.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from orchestrator.core.records import Action, Snapshot
from orchestrator.core.vocab import ActionType

UTC = timezone.utc
HISTORY = 20  # recent good syncs per connector that the rate is learned from
MAX_MARGIN = 2.0
EXTRAPOLATION_MARGIN = 1.25  # at least this margin for a gap longer than any priced sync's
# What a budget charges for a sync is an upper bound of its bill, not the estimate above: a sync's
# bill is mostly its load time at the warehouse price (a lognormal duration, peak or off-peak), so
# two bills of a connector said little of its third (generated world 15156: a routine refresh's sync
# counted at $3.37 from two $2.3-2.5 night syncs was billed $5.85 at peak and took a second policy
# over its $14.29 budget). :meth:`SyncPricer.budget_bound`: the one-sided BOUND_QUANTILE predictive
# bound of a lognormal bill, its log spread pooled over the fleet's connectors (the same durations
# and price schedule) with a prior of PRIOR_LOG_SD worth PRIOR_DOF syncs, widened for a connector's
# few own bills (sqrt(1 + 1/n): its own level is uncertain too).
BOUND_Z = 1.645  # the standard normal quantile of BOUND_QUANTILE
BOUND_QUANTILE = 0.95
PRIOR_LOG_SD = 0.5
PRIOR_DOF = 4.0
# what a budget expects a sync no past sync of its connector prices to cost per hour of the backlog
# it loads (GateConfig.unpriced_sync_usd_per_hour's default; a generated source bills up to ~$2.2)
UNPRICED_SYNC_USD_PER_HOUR = 3.0


def pooled_log_spread(groups) -> float:
    """The pooled standard deviation of ln(bill) around each group's own mean (``groups``: each an
    iterable of ln(bill) or of its residuals), shrunk to PRIOR_LOG_SD (worth PRIOR_DOF degrees of
    freedom) while few bills are seen."""
    ss, dof = PRIOR_DOF * PRIOR_LOG_SD ** 2, PRIOR_DOF
    for r in groups:
        r = list(r)
        if len(r) >= 2:
            m = sum(r) / len(r)
            ss += sum((x - m) ** 2 for x in r)
            dof += len(r) - 1
    return math.sqrt(ss / dof)


def bound_factor(log_sd: float, n: int) -> float:
    """How far above its level (geometric) the next bill may be, at BOUND_QUANTILE, after ``n``
    bills of a lognormal of log spread ``log_sd`` (sqrt(1 + 1/n): the level is uncertain too)."""
    return math.exp(BOUND_Z * log_sd * math.sqrt(1.0 + 1.0 / max(1, n)))


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class CostHistory:
    """The means of a snapshot's cost records, from one pass over them per cycle (the planner,
    the gate and the budget forecast each made their own pass: at 100,000 assets, four passes
    building 50,000-key maps, ~0.1 s of a cycle). Read-only once built; shared, never copied.

    * ``run_mean``: asset -> mean spend of a run of it (records naming an asset);
    * ``sync_mean``: connector -> mean of its sync records (the planner's price of a sync);
    * ``triggered_sync_mean``: the same over the syncs the orchestrator triggered (a connector's
      own scheduled syncs count against no budget);
    * ``usd_per_hour``: the warehouse price seen so far
      (:func:`orchestrator.core.standing.observed_usd_per_hour`), None before any.

    Each mean is ``sum(records in order) / count``: the same float as each pass computed."""

    __slots__ = ("run_mean", "sync_mean", "triggered_sync_mean", "usd_per_hour")

    def __init__(self, costs) -> None:
        from orchestrator.core.standing import observed_usd_per_hour

        # an asset's first amount as is, a list from its second on: most assets have one record
        # in the window, and a list each was most of the pass (50,000 at 100,000 assets)
        runs: dict[str, list[float] | float] = {}
        syncs: dict[str, list[float]] = {}
        triggered: dict[str, list[float]] = {}
        for c in costs:
            key = c.asset_key
            if key:
                seen = runs.get(key, runs)
                if seen is runs:
                    runs[key] = c.amount_usd
                elif seen.__class__ is list:
                    seen.append(c.amount_usd)
                else:
                    runs[key] = [seen, c.amount_usd]
            elif c.connector:
                syncs.setdefault(c.connector, []).append(c.amount_usd)
                if (c.detail or {}).get("triggered_by") != "schedule":
                    triggered.setdefault(c.connector, []).append(c.amount_usd)
        # (0 + v) / 1 is sum([v]) / len([v]) to the bit: sum starts from the int 0
        self.run_mean: dict[str, float] = {k: sum(v) / len(v) if v.__class__ is list else (0 + v) / 1
                                           for k, v in runs.items()}
        self.sync_mean: dict[str, float] = {k: sum(v) / len(v) for k, v in syncs.items()}
        self.triggered_sync_mean: dict[str, float] = {k: sum(v) / len(v) for k, v in triggered.items()}
        self.usd_per_hour: float | None = observed_usd_per_hour(costs)

    @classmethod
    def of(cls, snapshot: Snapshot, given: CostHistory | None = None) -> CostHistory:
        """``given`` (the cycle's) when there is one, else built from ``snapshot``."""
        return given if given is not None else cls(snapshot.costs)


class SyncPricer:
    """Prices of syncs from one snapshot's sync and cost records (built once per cycle)."""

    def __init__(self, snapshot: Snapshot, unpriced_usd_per_hour: float | None = None):
        self.snapshot = snapshot
        # what a budget charges per hour of backlog for a sync of a connector with no bill of its own
        # (:func:`unpriced_sync_cost`); None: :data:`UNPRICED_SYNC_USD_PER_HOUR`
        self.unpriced_usd_per_hour = UNPRICED_SYNC_USD_PER_HOUR if unpriced_usd_per_hour is None else unpriced_usd_per_hour
        self._built = False
        self._fit: dict[str, tuple[list[tuple[float, float]], float] | None] = {}
        self.pairs: dict[str, list[tuple[float, float]]] = {}
        self.last_good: dict[str, datetime] = {}
        self.mean: dict[str, float] = {}  # connector -> mean of its sync cost records (the planner's price)
        self.dearest: dict[str, float] = {}  # connector -> its dearest sync cost record
        self._dearest_sync: dict[str, float] | None = None
        self.rows_per_hour: dict[str, float] = {}  # connector -> most rows per hour of gap its priced syncs loaded
        self.usd_per_row: float | None = None  # the fleet's cheapest priced sync per row (>= the per-row price)
        self._log_sd: float | None = None  # the fleet's pooled log spread of a bill around its rule

    def dearest_sync(self, connector: str) -> float:
        """The dearest of ``connector``'s sync cost records (source ``sync``), 0 without any: what
        a resync's floor is scaled from (:func:`orchestrator.planning.inflight.resync_floor`)."""
        if self._dearest_sync is None:
            out: dict[str, float] = {}
            for c in self.snapshot.costs:
                if c.source == "sync" and c.asset_key is None and c.connector:
                    out[c.connector] = max(out.get(c.connector, c.amount_usd), c.amount_usd)
            self._dearest_sync = out
        return self._dearest_sync.get(connector, 0.0)

    def _build(self) -> None:
        """One pass over the snapshot's records, on the first price asked (most cycles ask none)."""
        self._built = True
        snapshot = self.snapshot
        costs: dict[tuple[str, datetime], float] = {}
        sums: dict[str, list[float]] = {}
        for c in snapshot.costs:
            if c.connector and not c.asset_key:  # as the planner prices a connector (_cost_per_asset)
                s = sums.setdefault(c.connector, [0.0, 0])
                s[0] += c.amount_usd
                s[1] += 1
                self.dearest[c.connector] = max(self.dearest.get(c.connector, 0.0), c.amount_usd)
            if c.source == "sync" and c.connector is not None and c.asset_key is None:
                key = (c.connector, _aware(c.at))
                costs[key] = costs.get(key, 0.0) + c.amount_usd
        self.mean = {k: v[0] / v[1] for k, v in sums.items()}
        good: dict[str, list] = {}
        for s in snapshot.syncs:
            if s.status == "succeeded" and s.ended_at is not None:
                good.setdefault(s.connector, []).append(s)
        # connector -> [(gap hours, usd)] of its recent good syncs, and the start of its last good one
        per_row: list[float] = []
        for conn, syncs in good.items():
            syncs.sort(key=lambda s: _aware(s.started_at))
            self.last_good[conn] = _aware(syncs[-1].started_at)
            pairs, rows = [], []
            for prev, cur in zip(syncs, syncs[1:]):
                usd = costs.get((conn, _aware(cur.ended_at)))
                gap = (_aware(cur.started_at) - _aware(prev.started_at)).total_seconds() / 3600
                if usd is not None and usd > 0 and gap > 0:
                    pairs.append((gap, usd))
                    rows.append(None if cur.rows is None else cur.rows / gap)
                    if cur.rows:
                        per_row.append(usd / cur.rows)
            self.pairs[conn] = pairs[-HISTORY:]
            rows = rows[-HISTORY:]
            if rows and None not in rows:
                self.rows_per_hour[conn] = max(rows)
        self.usd_per_row = min(per_row) if per_row else None

    @staticmethod
    def _line(pairs: list[tuple[float, float]]) -> tuple[float, float] | None:
        """(fixed usd, usd per hour of gap) by least squares when the gaps vary enough to tell a
        sync's fixed part (API calls, the warehouse load) from its rows; None when they do not (one
        cadence) or the fit is not a bill (negative part)."""
        if len(pairs) < 3:
            return None
        gs = [g for g, _ in pairs]
        if max(gs) < 1.5 * min(gs):
            return None
        n = len(pairs)
        mg, mu = sum(gs) / n, sum(u for _, u in pairs) / n
        var = sum((g - mg) ** 2 for g in gs)
        b = sum((g - mg) * (u - mu) for g, u in pairs) / var
        a = mu - b * mg
        if b <= 0 or a < 0:
            return None
        return a, b

    @classmethod
    def _rule(cls, pairs: list[tuple[float, float]], gap: float) -> float:
        line = cls._line(pairs)
        if line is not None:
            return line[0] + line[1] * gap
        mean = sum(u for _, u in pairs) / len(pairs)
        rate = sum(u for _, u in pairs) / sum(g for g, _ in pairs)
        return max(mean, rate * gap)

    def fit(self, connector: str) -> tuple[list[tuple[float, float]], float] | None:
        """(the connector's priced syncs [(gap hours, usd)], margin), None without history."""
        if not self._built:
            self._build()
        if connector not in self._fit:
            pairs = self.pairs.get(connector) or []
            out = None
            if pairs:
                margin = 1.0
                if len(pairs) >= 3:
                    for i, (g, u) in enumerate(pairs):
                        rest = pairs[:i] + pairs[i + 1:]
                        margin = max(margin, u / max(self._rule(rest, g), 1e-9))
                out = (pairs, min(MAX_MARGIN, margin))
            self._fit[connector] = out
        return self._fit[connector]

    def _log_residuals(self, connector: str) -> list[float]:
        """ln(bill / the rule's price of its gap from all of the connector's priced syncs)."""
        pairs = self.pairs.get(connector) or []
        return [math.log(u / max(self._rule(pairs, g), 1e-9)) for g, u in pairs]

    def log_spread(self) -> float:
        """The fleet's pooled standard deviation of ln(bill) around each connector's own level,
        shrunk to PRIOR_LOG_SD (worth PRIOR_DOF degrees of freedom) while few syncs are seen."""
        if self._log_sd is None:
            if not self._built:
                self._build()
            self._log_sd = pooled_log_spread(self._log_residuals(c) for c in self.pairs)
        return self._log_sd

    def spread_factor(self, n: int) -> float:
        """How far above its connector's level (geometric) a sync's bill may be, at BOUND_QUANTILE,
        after ``n`` bills of it."""
        return bound_factor(self.log_spread(), n)

    def budget_bound(self, connector: str, start: datetime, *, borrow: bool = True) -> float:
        """What a budget charges for a sync of ``connector`` starting at ``start``: an upper bound of
        its bill (the module's BOUND_QUANTILE), never below :meth:`estimate`. A connector with no
        priced gap but a past bill: its dearest bill (``borrow``: or the others' fit, as
        :meth:`estimate` prices an outage's backlog), as before. 0 without any sync history
        (the callers' floor: :func:`unpriced_sync_cost`, or a person)."""
        own = self.fit(connector)
        if own is None:
            # no priced gap of its own: its dearest past bill (spread-widened, a single bill cost
            # world 103 -- a $1-4 connector's refresh a cron job runs within budget -- its deadlines)
            dearest = self.dearest.get(connector, 0.0)
            if dearest <= 0:
                return self.first_sync_bound(connector, start)
            if borrow:
                return max(dearest, self.estimate(connector, start))
            return dearest
        pairs = own[0]
        gap = self.gap_hours(connector, start)
        if gap is None:  # no gap to scale by: the connector's mean bill is its level
            level = sum(u for _, u in pairs) / len(pairs)
        else:
            # the rule's price of this gap, moved by how its bills sat around the rule (geometric)
            r = self._log_residuals(connector)
            by_rows = self._by_rows(connector, pairs, gap)
            rule = self._rule(pairs, gap)
            level = (rule if by_rows is None else min(rule, by_rows)) * math.exp(sum(r) / len(r))
        return max(self.estimate(connector, start), level * self.spread_factor(len(pairs)))

    def first_sync_bound(self, connector: str, start: datetime) -> float:
        """What a budget charges for a sync of a connector that has no bill of its own yet: the others'
        dearest fit (:meth:`estimate`), never below :func:`unpriced_sync_cost` (``unpriced_usd_per_hour``
        x the backlog's hours). Connectors differ 200x in rows per hour, so the others' fit is no upper
        estimate of a connector's first bill (generated worlds 15284, 15323, 15394: a routine refresh
        syncing a connector with 13-26 h of backlog and no bill yet, counted at $5.80-10.56 from the
        others, was billed $29-55 and took its policy over its budget unasked). 0 while no sync at all
        is priced (the callers' floor, or a person)."""
        borrowed = self.estimate(connector, start)
        if borrowed <= 0:
            return 0.0
        return max(borrowed, unpriced_sync_cost(self, connector, start, self.unpriced_usd_per_hour))

    def gap_hours(self, connector: str, start: datetime) -> float | None:
        """Hours of data a sync of ``connector`` starting at ``start`` will load."""
        tables = self.snapshot.graph.connector_tables(connector)
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
        gap = 24.0  # the dearest of the others, compared on a day's backlog
        return max(fits, key=lambda f: self._rule(f[0], gap) * f[1])

    def planner_price(self, connector: str) -> float:
        """The mean of the connector's sync cost records: what the planner counts for its sync."""
        if not self._built:
            self._build()
        return self.mean.get(connector, 0.0)

    def estimate(self, connector: str, start: datetime) -> float:
        """What a sync of ``connector`` starting at ``start`` will cost (0: no sync history at all
        to go by; a connector without its own is priced as the dearest of the others, and never
        below its own dearest past sync)."""
        own = self.fit(connector)
        if own is None:
            borrowed = self.borrowed()
            floor = self.dearest.get(connector, 0.0)
            if borrowed is None:
                return floor
            return max(floor, self._priced(borrowed, connector, start))
        return self._priced(own, connector, start)

    def _priced(self, fit, connector: str, start: datetime) -> float:
        pairs, margin = fit
        gap = self.gap_hours(connector, start)
        if gap is None:
            return sum(u for _, u in pairs) / len(pairs) * margin
        if gap > max(g for g, _ in pairs):
            margin = max(margin, EXTRAPOLATION_MARGIN)  # a backlog longer than any seen: less certain
        by_rows = self._by_rows(connector, pairs, gap)
        rule = self._rule(pairs, gap)
        return (rule if by_rows is None else min(rule, by_rows)) * margin

    def _by_rows(self, connector: str, pairs: list[tuple[float, float]], gap: float) -> float | None:
        """A sync's price from the rows it will load, where its own syncs' gaps cannot tell the
        fixed part of its bill from the rows (one cadence, a single priced gap): each past sync's
        bill plus the rows of the extra hours (its most rows per hour of gap) at the fleet's
        cheapest price per row -- no sync billed less per row than the per-row price, so never
        below a bill of a fixed part and rows. A connector with few rows priced all-rows from a 0.5 h
        gap took a $1.79 sync for $16.70 and held a refresh a cron job runs within budget
        (generated world 103). None where a line is fitted or rows are not reported."""
        rate = self.rows_per_hour.get(connector)
        if rate is None or self.usd_per_row is None or self._line(pairs) is not None:
            return None
        mean = sum(u for _, u in pairs) / len(pairs)
        return max(mean, max(u + self.usd_per_row * rate * max(0.0, gap - g) for g, u in pairs))


class RunBound:
    """What a budget charges for a run of a model: an upper bound of its bill, as
    :meth:`SyncPricer.budget_bound` charges a sync. A model step's bill is its duration (lognormal)
    at the warehouse price of the hour (peak or off-peak), so the mean of its past runs undercounts
    a run about half the time (generated world 16610: six refreshes in one cycle counted $14.06 at
    their mean and were billed $20.30, over a policy's budget). The bound: the geometric mean of the
    model's past bills x :func:`bound_factor` of the log spread pooled over the fleet's models
    (:func:`pooled_log_spread`), never below their mean. The planner still ranks and forecasts with
    the mean (``CostHistory.run_mean``). Built lazily: one pass over the cost records on the first
    bound asked."""

    def __init__(self, costs) -> None:
        self._costs = costs
        self._bills: dict[str, list[float]] | None = None
        self._log_sd: float | None = None
        self._bound: dict[str, float] = {}

    def _build(self) -> None:
        bills: dict[str, list[float]] = {}
        for c in self._costs:
            if c.asset_key and c.amount_usd > 0:
                bills.setdefault(c.asset_key, []).append(c.amount_usd)
        self._bills = bills

    def log_spread(self) -> float:
        if self._log_sd is None:
            if self._bills is None:
                self._build()
            self._log_sd = pooled_log_spread([math.log(u) for u in v] for v in self._bills.values())
        return self._log_sd

    def budget_bound(self, asset: str) -> float:
        """The upper bound of the bill of a run of ``asset`` (0 without a past bill of it)."""
        if self._bills is None:
            self._build()
        if asset not in self._bound:
            v = self._bills.get(asset)
            if not v:
                self._bound[asset] = 0.0
            else:
                level = math.exp(sum(math.log(u) for u in v) / len(v))
                self._bound[asset] = max(sum(v) / len(v), level * bound_factor(self.log_spread(), len(v)))
        return self._bound[asset]

    def excess(self, action: Action, graph, mean: dict[str, float]) -> float:
        """What the bounds of the models an action runs add to their mean past bills (``mean``:
        asset -> mean, as the planner priced them), once per partition it runs."""
        t = ActionType.parse(action.type)
        if t is None or not t.starts_run or not action.asset_keys:
            return 0.0
        extra = 0.0
        for k in action.asset_keys:
            node = graph.get(k) if graph is not None else None
            if node is None or node.connector or k not in mean:
                continue
            extra += max(0.0, self.budget_bound(k) - mean[k])
        return extra * max(1, len(action.partitions))


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
    """The spend of the connector syncs an action starts (a retry of a sync; the syncs a run of
    connector tables triggers), each priced from its backlog (0 for actions that start none)."""
    return sum(sync_prices(snapshot, action, now, pricer).values())


def _start(action: Action, now: datetime) -> datetime:
    return _aware(action.not_before) if action.not_before is not None and _aware(action.not_before) > now else now


def sync_prices(snapshot: Snapshot, action: Action, now: datetime, pricer: SyncPricer | None = None) -> dict[str, float]:
    """Connector -> the price of the sync of it that ``action`` starts, from its backlog."""
    conns = synced_connectors(action, snapshot.graph)
    if not conns:
        return {}
    pricer = pricer or SyncPricer(snapshot)
    start = _start(action, now)
    retry = action.type == ActionType.retry.value
    out = {}
    for c in conns:
        # a routine refresh of a connector with past syncs but no priced gap of its own (a single
        # sync): from its dearest sync, not the others' fit -- borrowed, a $1-4 connector was priced at
        # $17-45 and a refresh a cron job runs within budget waited past its deadline (tuning
        # world 103). A retry (an outage's backlog) keeps the borrowed fit
        borrow = retry or c not in pricer.dearest
        out[c] = max(pricer.budget_bound(c, start, borrow=borrow), pricer.planner_price(c))
    return out


def unpriced_sync_cost(pricer: SyncPricer, connector: str, start: datetime,
                       usd_per_hour: float = UNPRICED_SYNC_USD_PER_HOUR) -> float:
    """What a budget expects a sync no sync of its connector's own prices to cost: ``usd_per_hour``
    x the hours of backlog it loads, at least an hour (a connector that never delivered data: one)."""
    gap = pricer.gap_hours(connector, start)
    return usd_per_hour * max(1.0, 1.0 if gap is None else gap)


def sync_charges(snapshot: Snapshot, action: Action, now: datetime, resolution, *,
                 exclude: set[str] | frozenset[str] = frozenset(), skip_critical: bool = False,
                 pricer: SyncPricer | None = None) -> dict[str, tuple[float, object]]:
    """Policy -> (what the syncs a run of ``action``'s assets triggers costs it, its budget).

    A sync lands, and is billed for, every table of its connector, so each budgeted policy governing
    one of them pays that sync's price (as the cost assessment and the audit count it), not only the
    policies of the assets the action names: those, ``exclude``, pay for the action itself. A policy
    reached through several connectors pays each of their syncs. ``skip_critical`` leaves out policies
    reached through a critical-tier table (validation lets critical work pass and the gate weighs it).
    Only actions naming assets: a connector action's own tables are its connector's.
    """
    if resolution is None or not action.asset_keys:
        return {}
    graph = snapshot.graph
    out: dict[str, tuple[float, object]] = {}
    for connector, usd in sync_prices(snapshot, action, now, pricer).items():
        paying: dict[str, object] = {}
        for k in graph.connector_tables(connector):
            sla = resolution.sla(k)
            if sla is None or (skip_critical and sla.tier.value == "critical"):
                continue
            paying.update({name: budget for name, budget in sla.budgets if name not in exclude})
        for name, budget in paying.items():
            out[name] = (out.get(name, (0.0, budget))[0] + usd, budget)
    return out


def budget_keys(action: Action, graph) -> list[str]:
    """The assets whose policies' budgets pay for ``action``: the assets it names (a connector
    action: the connector's tables), and every table of each connector a run of it syncs (a sync
    lands, and is billed for, all of its connector's tables: every policy governing one pays)."""
    # (the index lookup, not ``graph.connectors``: that copies the whole index, once per action)
    keys = dict.fromkeys(action.asset_keys or (graph.connector_tables(action.connector) if graph is not None else ()))
    if graph is not None:
        for c in synced_connectors(action, graph):
            keys.update(dict.fromkeys(graph.connector_tables(c)))
    return list(keys)


def with_syncs(snapshot: Snapshot, action: Action, now: datetime, base: float,
               pricer: SyncPricer | None = None) -> float:
    """``base`` (the action's own estimate: its models, and one sync of each connector it syncs at
    the connector's mean past sync, as the planner prices them) plus what its syncs' backlog adds
    to that."""
    prices = sync_prices(snapshot, action, now, pricer)
    if not prices:
        return base
    pricer = pricer or SyncPricer(snapshot)
    return base + sum(max(0.0, usd - pricer.planner_price(c)) for c, usd in prices.items())


RESYNC_WINDOW_S = 86_400.0  # a resync's bill is looked for within a day of its ledger entry


class ResyncPrices:
    """What the resyncs the orchestrator ran actually cost (built once per cycle from the ledger).

    A resync re-reads whole tables, so its bill has no fixed relation to the connector's incremental
    syncs: a generated world's table resync cost $37.72 where 4x the connector's dearest incremental
    sync priced it at $7.96, and a pre-authorised one took a policy over its budget without asking.
    Connector sync records do not say which sync was a resync, but the ledger says when the
    orchestrator resynced a connector: the dearest sync bill of that connector within a day of the
    entry is the resync's. From those this keeps, per resynced connector, its dearest incremental
    sync (the bills not taken as a resync's), and per resync type the highest ratio of a
    resync's bill to its connector's dearest incremental sync, which prices resyncs of connectors
    that were never resynced (:func:`orchestrator.planning.inflight.resync_floor`)."""

    def __init__(self, ratio: dict[str, float] | None = None, incremental: dict[str, float] | None = None,
                 bills: dict[tuple[str, str], float] | None = None):
        self.ratio = dict(ratio or {})  # action type -> highest observed resync / incremental ratio
        self.incremental = dict(incremental or {})  # connector -> dearest bill not taken as a resync
        # (connector, action type) -> its dearest bill taken as a resync's: what a reload of that
        # connector's tables cost (the other connectors' ratio is no estimate of it: see resync_floor)
        self.bills = dict(bills or {})

    @classmethod
    def observe(cls, snapshot: Snapshot, ledger) -> ResyncPrices:
        """From ``ledger`` (an ``orchestrator.core.incidents.ActionLedger``; None: nothing seen)."""
        wanted: dict[str, list[tuple[str, float]]] = {}  # connector -> [(type, entry time)]
        for e in (ledger.entries.values() if ledger is not None else ()):
            a = e.action
            t = getattr(a.type, "value", a.type)
            if t in ("resync_table", "full_resync") and a.connector and e.status in (
                    "executing", "succeeded", "failed"):
                wanted.setdefault(a.connector, []).append((t, _aware(e.at).timestamp()))
        if not wanted:
            return cls()
        bills: dict[str, list[tuple[float, float]]] = {}  # connector -> [(at, usd)]
        for c in snapshot.costs:
            if c.source == "sync" and c.asset_key is None and c.connector in wanted and c.amount_usd > 0:
                bills.setdefault(c.connector, []).append((_aware(c.at).timestamp(), c.amount_usd))
        ratio: dict[str, float] = {}
        incremental: dict[str, float] = {}
        resync_bills: dict[tuple[str, str], float] = {}
        for conn, entries in wanted.items():
            mine = bills.get(conn, [])
            taken: dict[int, str] = {}  # index of a bill -> the resync type it is the bill of
            for t, at in entries:
                near = [i for i, (b_at, _) in enumerate(mine) if abs(b_at - at) <= RESYNC_WINDOW_S]
                if near:
                    taken[max(near, key=lambda i: mine[i][1])] = t
            rest = [usd for i, (_, usd) in enumerate(mine) if i not in taken]
            if rest:
                incremental[conn] = max(rest)
            for i, t in taken.items():
                resync_bills[(conn, t)] = max(resync_bills.get((conn, t), 0.0), mine[i][1])
                if rest:
                    ratio[t] = max(ratio.get(t, 0.0), mine[i][1] / max(rest))
        return cls(ratio, incremental, resync_bills)
