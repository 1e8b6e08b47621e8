"""The risk gate: execute now, wait for approval, or record only.

``gate(actions, snapshot, assessment, resolution, memory=None, breaker=None) -> [GateDecision]``

**Risk** (0..1, low < 0.35 <= medium < 0.6 <= high) adds up the action type (a materialize is
cheap to undo, a full resync is not), the most critical tier it touches, the rollout mode of the
governing policy (``recommend`` adds), its size in units of work (a connector sync counts once,
however many tables it lands; each model and partition counts), its estimated cost (over
``cost_high_usd``; where budgets cover every touched asset, over half of what is left of them
instead: the owners' budget is the yardstick), whether it
would overspend a budget covering it (spent today + work in flight + this action, with
``budget_reserve`` of what is only estimated kept in reserve, > the daily budget: +0.2; a
budget only *forecast* over by its burn rate: +0.05) and whether the LLM proposed it.
*Pre-authorised* actions — every policy governing the touched assets runs in ``auto`` and lists
the action type in ``auto_approve`` — carry no tier risk: the owners who set the tier accepted
that action on it (as for ``low``-tier assets before). Type, size, cost, budget and LLM origin
still count: a run that would overspend a budget, or a large and expensive one, still waits.

**Confidence** of a failure-driven action comes from the failure memory, not from the LLM: the
diagnosis confidence x how similar the failure is to past cases of the same class x how often
this resolution worked for that class (smoothed with 3 pseudo-attempts at a prior rate). For a
*prescribed* resolution — a ``retry`` (the planner backs it off by class) of a failure the
diagnosis calls transient (rate_limit, source_unavailable, destination_capacity, ...), or a
``resync_table`` of ``schema_drift`` — the prior rate is 0.8 and, while the memory holds no
labelled case of the class, the diagnosis stands alone (similarity factor 1); history then raises
or lowers it (similar cases, outcomes of past attempts). A transient fault keeps failing attempts
until it clears, which is why retries back off: what the gate rates for a prescribed retry is
the *backoff schedule* (up to the class's ``max_attempts``, then the planner escalates; the
circuit breaker stops it earlier after repeated automatic failures), i.e. 1 - (1 - rate)^attempts. Every other resolution starts at a prior
of 2/3 and counts a never-seen failure as dissimilar (similarity 0), so e.g. ``auth_expired``,
``permission_denied``, ``config_error``, ``code_error`` and ``data_quality`` never act on their
own without history. An LLM's own confidence can only lower it. Freshness work not tied to a
failure has confidence 1 from the planner, at most 0.9 from the LLM.

**Decision**: any subject with an open circuit breaker -> ``record_only``; a touched asset under
``shadow`` (or no policy: ungoverned assets never act on their own) -> ``record_only`` /
``await_approval``; ``recommend`` -> ``await_approval``; ``auto`` -> ``execute`` only when every
touched asset's policy lists the action in ``auto_approve``, risk is low and confidence >=
``min_confidence``. A ``full_resync`` never executes automatically.

**Standing approvals** (``standing=``, ``orchestrator.core.standing``): a routine freshness
``materialize`` that waits only because the policies do not pre-authorise it (``recommend`` or not
in ``auto_approve``) executes when active standing approvals a person granted cover every touched
asset of every policy that does not pre-authorise it, with low risk once the tier and rollout
terms (what the approver accepted) are left out -- and the cost term too where no budget covers
the work (no limit set: the approver accepted the scope's routine refreshes as they come) or where
it takes none of the budgets it touches over half of what is left of them (the owners' yardstick);
the decision names them (``authorised_by``). Over budget, blackout, breaker, shadow, an operator
cap, a large share of a budget or LLM origin still hold it. The
actions of one cycle are judged on a budget together: what the cycle already lets run counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.core.standing import is_routine
from orchestrator.core.pricing import (UNPRICED_SYNC_USD_PER_HOUR, CostHistory, RunBound, SyncPricer, sync_charges,
                                       synced_connectors, unpriced_sync_cost, with_syncs)
from orchestrator.core.records import Action, Assessment, DiagnosedFailure, Snapshot
from orchestrator.planning.breaker import CircuitBreaker
from orchestrator.planning.common import action_type, subjects, units_of_work
from orchestrator.planning.common import aware as _aware
from orchestrator.planning.inflight import in_flight_by_policy, in_flight_spend, resync_floor, unpriced_reload
from orchestrator.planning.reload_price import RELOAD_HOURS, unbounded_reload
from orchestrator.core.vocab import NOT_RETRYABLE, ActionType, FailureClass

EXECUTE = "execute"
AWAIT_APPROVAL = "await_approval"
RECORD_ONLY = "record_only"
UNPRICED = "over budget unknown"  # the reason's opening when no sync history prices the work yet
UNPRICED_RELOAD = "reload price unknown"  # ... when no resync seen prices a resync yet (no sync run prices it)

TYPE_RISK = {t.value: t.base_risk for t in ActionType}
TIER_RISK = {"low": 0.0, "standard": 0.05, "high": 0.10, "critical": 0.15}
ROLLOUT_RISK = {"auto": 0.0, "recommend": 0.10, "shadow": 0.0}
NEVER_AUTOMATIC = frozenset(t for t in ActionType if t.never_automatic)
__all__ = ["NOT_RETRYABLE", "gate", "GateConfig", "GateDecision"]
# (class, resolution) pairs the planner prescribes: the prior rate of success without history.
PRESCRIBED_PRIOR = 0.8
PRIOR_STRENGTH = 3.0  # pseudo-attempts of the prior in the smoothed success rate
DEFAULT_PRIOR = 2 / 3


def _retry_budget(category: str) -> int:
    b = FailureClass.parse(category).backoff
    return b.max_attempts if b is not None else 1


def prescribed(d: DiagnosedFailure, action_type: str, *, routine: bool = False) -> bool:
    """True when ``action_type`` is the planner's prescribed resolution of this failure.
    ``routine``: the action is a routine freshness refresh (``standing.is_routine``); for a class
    a new run resolves, that refresh is the re-run its backoff schedule prescribes."""
    t = ActionType.parse(action_type)
    reruns = FailureClass.parse(d.category).rerun_resolves
    if routine and t is ActionType.materialize and reruns:
        return True
    if t is ActionType.retry:
        # a class whose prescribed response is the backed-off retry (memory, capacity: not
        # transient by default, yet a retry after the backoff is what the planner prescribes)
        return (bool(d.transient) or reruns) and d.category not in NOT_RETRYABLE
    if t is ActionType.resync_table:
        return FailureClass.parse(d.category) is FailureClass.schema_drift
    return False


@dataclass
class GateConfig:
    low_risk: float = 0.35
    high_risk: float = 0.60
    min_confidence: float = 0.5
    cost_high_usd: float = 25.0
    llm_risk: float = 0.10
    llm_max_confidence: float = 0.9
    # the most automatic rollout any action may have (ORCHESTRATOR_AUTOMATION): None = the policies'
    rollout_cap: str | None = None
    # the warehouse price of work with no cost history yet, for budgets (CostRates.dbt_usd_per_hour)
    unknown_usd_per_hour: float = 2.0
    # share of the *estimated* spend (work in flight, this cycle's, the action's) a budget keeps in
    # reserve: a run's cost is its assets' mean past cost, and runs vary (durations, peak prices,
    # minimum-billed steps). Without it, work run up to the last cent of a budget extension took the
    # day $0.06 over it unasked (generated world 209); with it, such work waits for a person
    budget_reserve: float = 0.25
    # a budget charges a model run the upper bound of its bill (``pricing.RunBound``), not its
    # assets' mean past cost (which the planner still ranks and forecasts with). Off: on seeds
    # 16600-16699 it made world 16610 safe (1 unsafe -> 0) but lost world 16635's deadline (a
    # 3-model refresh with 30 min slack held for a person) and won none (README, budgets)
    bound_model_runs: bool = False
    # what a budget expects a retry to cost per hour of the backlog it loads while no sync of its
    # connector prices it (``unpriced_retry_cost``): an assumption for the fleet's dearest source,
    # as ``unknown_usd_per_hour`` is for models (a generated source bills up to ~$2.2 an hour of gap)
    unpriced_sync_usd_per_hour: float = UNPRICED_SYNC_USD_PER_HOUR
    # under a budget, a resync of a connector no past resync of its own prices waits for a person
    # (``inflight.unpriced_reload``). Off: it made 2 of 3 budget crossings on seeds 16400-16599 and
    # world 15051 safe but lost 6 worlds in 400, and the 30-day learning run's auto-resolved share
    # fell from 86% -> 88% to 75% -> 75% (recurring drift resyncs each waiting for a person)
    hold_unpriced_resyncs: bool = False
    # or, under a budget, a resync no past resync of its connector prices is priced at its upper
    # bound (``reload_price.reload_bound``: the rows a reload re-reads, from the rows per hour its
    # syncs landed, at the full price per row) and waits for a person only when that does not fit
    # the budget, or (``hold_unbounded_reloads``) when no two syncs of its connector reported rows
    # yet. Off: it cost the shipped silent scenario's seed 1 three of four deadlines (a $435 bound
    # held the resync for a person whose extension came late: 1.00 -> 0.25), and without holding
    # unbounded reloads world 105 one of four (a $49.12 bound over a $44.95 budget held a resync
    # billed $36.60 for 4 h). Either way, such a resync that only a budget extension lets run waits
    # for a person (see ``gate``)
    bound_unpriced_resyncs: bool = False
    hold_unbounded_reloads: bool = True
    # the contract's list price per million rows a full refresh bills (Airbyte API and custom
    # sources: USD 15, shared/reference/connector-apis.md [AB-PRICE]); incremental syncs bill only
    # the rows new to the month, so their price per row is no bound on it
    reload_usd_per_million_rows: float = 15.0
    # hours of its connector's rows a reload re-reads (the tables' retained size: the snapshot
    # reports no table size)
    reload_hours: dict = field(default_factory=lambda: dict(RELOAD_HOURS))
    # when a person answers a request made at a given time (``callable(datetime) -> datetime``: the
    # approvers' delay, later after their night); None: unknown. A routine refresh whose answer
    # would land after its deadline is then not asked (orchestrator.core.decide.answer_too_late)
    # when ``late_refreshes_unasked``; a retry the connector's own schedule runs first is not asked
    # either (orchestrator.core.decide.native_sync_first)
    answer_at: object = None
    # with ``answer_at`` known, a routine refresh answered too late for its deadline is not asked.
    # The simulator's sla adapter turns it off: it lowered world 438 from 0.75 to 0.42 (README)
    late_refreshes_unasked: bool = True


@dataclass
class GateDecision:
    action: Action
    decision: str  # execute | await_approval | record_only
    risk: str  # low | medium | high
    risk_score: float
    confidence: float
    reason: str
    owners: tuple[str, ...] = ()
    factors: dict[str, float] = field(default_factory=dict)
    authorised_by: str | None = None  # the standing approval that lets it execute (orchestrator.core.standing)
    budget_usd: float = 0.0  # what the gate counted against the budgets it touches (0: none touched)

    def as_dict(self) -> dict:
        out = {"action_id": self.action.action_id, "decision": self.decision, "risk": self.risk,
               "risk_score": round(self.risk_score, 3), "confidence": round(self.confidence, 3),
               "reason": self.reason, "owners": list(self.owners), "factors": self.factors}
        if self.authorised_by:
            out["authorised_by"] = self.authorised_by
        return out


def _val(x) -> str:
    return str(getattr(x, "value", x))


class FailureIndex:
    """Root failures of an assessment by asset key and by connector, so finding an action's
    failures is a lookup per key, not a scan of every failure per action."""

    def __init__(self, assessment: Assessment):
        self.by_key: dict[str, list[int]] = {}
        self.by_connector: dict[str, list[int]] = {}
        self.failures = [d for d in assessment.failures if d.root_failure_id is None]
        for i, d in enumerate(self.failures):
            if d.failure.asset_key is not None:
                self.by_key.setdefault(d.failure.asset_key, []).append(i)
            if d.failure.connector is not None:
                self.by_connector.setdefault(d.failure.connector, []).append(i)

    def related(self, action: Action) -> list[DiagnosedFailure]:
        hits: set[int] = set()
        for k in action.asset_keys:
            hits.update(self.by_key.get(k, ()))
        if action.connector is not None:
            hits.update(self.by_connector.get(action.connector, ()))
        return [self.failures[i] for i in sorted(hits)]  # assessment order, as the scan gave


def related_failures(action: Action, assessment: Assessment, index: FailureIndex | None = None) -> list[DiagnosedFailure]:
    if index is not None:
        return index.related(action)
    keys = set(action.asset_keys)
    return [d for d in assessment.failures
            if d.root_failure_id is None and (
                (d.failure.asset_key is not None and d.failure.asset_key in keys)
                or (action.connector is not None and d.failure.connector == action.connector))]


def answered_failures(action: Action, assessment: Assessment, snapshot: Snapshot) -> list[DiagnosedFailure]:
    """The failures an action's outcome answers: :func:`related_failures`, and the failures of the
    connectors whose sync a run of the action's assets triggers (a ``materialize`` of a
    connector's tables re-runs its failed sync: the routine re-run of a capacity or rate-limit
    failure). What the failure memory and the circuit breaker learn from when it ends; the gate's
    confidence stays on :func:`related_failures`."""
    out = related_failures(action, assessment)
    t = ActionType.parse(action.type)
    if t is None or not t.starts_run or snapshot is None:
        return out
    graph = snapshot.graph
    conns = {n.connector for k in action.asset_keys if (n := graph.get(k)) is not None and n.connector}
    conns.discard(action.connector)
    if not conns:
        return out
    # only a connector's failures since its tables last landed (older ones were answered already)
    landed = {c: max((_aware(t) for k in graph.connector_tables(c) if (t := snapshot.last_success.get(k))),
                     default=None) for c in conns}
    seen = {id(d) for d in out}
    return out + [d for d in assessment.failures if d.root_failure_id is None and id(d) not in seen
                  and d.failure.asset_key is None and d.failure.connector in conns
                  and (landed[d.failure.connector] is None or _aware(d.failure.at) > landed[d.failure.connector])]


def memory_confidence(action: Action, failures: Sequence[DiagnosedFailure], memory) -> tuple[float, str]:
    """Confidence that ``action`` resolves ``failures``, from the failure memory (and, for a
    prescribed resolution, a prior from the failure class).

    A prescribed resolution is rated on the class (the diagnosis), not on how similar the
    message is to past cases: history raises it while the resolution keeps working and lowers it
    only when it fails. A prescribed retry is rated as its backoff schedule: a transient fault
    fails attempts until it clears, so ``n`` failed attempts count as one failed schedule (n =
    the class's ``max_attempts``), never as ``n`` failures of the resolution.
    """
    best, why = 0.0, "no failure memory"
    for d in failures:
        prior_backed = prescribed(d, action.type, routine=is_routine(action))
        is_retry = prior_backed and ActionType.parse(action.type) is ActionType.retry
        n = _retry_budget(d.category) if is_retry else 1
        prior = PRESCRIBED_PRIOR if prior_backed else DEFAULT_PRIOR
        if is_retry:
            prior = 1.0 - (1.0 - prior) ** n  # the schedule's prior, not one attempt's
        sim, rate, att, history = 0.0, prior, 0, False
        if memory is not None:
            try:
                stats = memory.success_rates(d.category).get((d.category, action.type))
                if not prior_backed:
                    near = memory.nearest(d.failure.message, k=5, labelled_only=True)
                    same = [nb.similarity for nb in near if nb.category == d.category]
                    history = bool(same)
                    sim = max(same, default=0.0)
                if stats:
                    att = int(stats["attempts"])
                    ok = float(stats["successes"])
                    tries = ok + (att - ok) / n  # failed attempts of a schedule count once per schedule
                    rate = (ok + PRIOR_STRENGTH * prior) / (tries + PRIOR_STRENGTH)
                    rate = min(1.0, rate)
            except Exception:  # memory is advisory: an error counts as no history
                sim, rate, att, history = 0.0, prior, 0, False
        sim_factor = 1.0 if prior_backed else 0.5 + 0.5 * sim
        schedule = f" over {n} backed-off attempts" if is_retry else ""
        conf = d.confidence * sim_factor * rate
        if conf >= best:
            best = conf
            basis = ("prescribed for the class" if prior_backed else f"similarity to past cases {sim:.2f}")
            why = (f"{d.category}{' (transient)' if d.transient else ''}: diagnosis {d.confidence:.2f}, {basis}, "
                   f"{action.type} works{schedule} {rate:.2f} (smoothed, {att} past attempts)")
    return min(1.0, best), why


def _run_span_s(action: Action, graph, durations) -> float:
    """Predicted wall time of the run an action starts: the longest chain of its assets (p90)."""
    if durations is None or not action.asset_keys:
        return 0.0
    keys = set(action.asset_keys)
    finish: dict[str, float] = {}

    def fin(k: str) -> float:  # longest chain ending at k, inside the action (memoised, iterative)
        stack = [k]
        while stack:
            cur = stack[-1]
            todo = [p for p in graph.parents(cur) if p in keys and p not in finish]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            if cur not in finish:
                node = graph.get(cur)
                own = durations.seconds(node) if node is not None else 0.0
                finish[cur] = own + max((finish[p] for p in graph.parents(cur) if p in keys), default=0.0)
        return finish[k]

    for k in keys:
        fin(k)
    return max(finish.values(), default=0.0)


def blackout_hit(action: Action, touched, resolution, start: datetime, span_s: float):
    """(asset, window) of the first blackout the work would run in between ``start`` and
    ``start + span_s``, else None."""
    if resolution is None:
        return None
    end = start + timedelta(seconds=span_s)
    for k in touched:
        sla = resolution.sla(k)
        if sla is None:
            continue
        for w in getattr(sla, "blackout", ()) or ():
            if w.contains(start):
                return k, w
            nxt = w.next_open(start)
            if nxt is not None and nxt <= end:
                return k, w
    return None


IDLE = "over budget, no deadline window open"  # the reason's opening: held, not worth asking now


def serves_open_window(keys, resolution, now: datetime, memo: dict | None = None) -> bool:
    """Whether work on ``keys`` can serve a deadline *now*: some policy whose deadline reaches them
    has its window open (data made now is fresh for its next tick: freshness is judged by data
    time, so data made before a window opens never counts for it), or one of them has a
    ``max_lag``. True as well when no deadline reaches them (nothing says it is idle). Work over a
    budget that serves no deadline now waits for a window to open instead of spending over it (or
    asking a person to): a schema-drift resync run over a budget extension right after the drift,
    hours before any window, cost a generated world 5x cron-tuned's spend (world 437)."""
    if resolution is None:
        return True
    memo = {} if memo is None else memo
    names: dict[str, None] = {}
    for k in keys:
        sla = resolution.sla(k)
        if sla is not None:
            names.update(dict.fromkeys(sla.policies))
            names.update(dict.fromkeys(sla.propagated_from))
    timed = False
    for n in names:
        if n not in memo:
            try:
                p = resolution.policy(n)
                if getattr(p, "max_lag", None) is not None:
                    memo[n] = True
                else:
                    sched = p.schedule()
                    if sched is None:
                        memo[n] = None
                    else:
                        tick = sched.next_tick(now)
                        memo[n] = now >= tick - p.deadline.effective_window(sched)
            except Exception:  # noqa: BLE001 - unknown: counts as serving
                memo[n] = True
        if memo[n] is None:
            continue
        timed = True
        if memo[n]:
            return True
    return not timed


def _reaching_policies(slas, resolution) -> list:
    """The policies whose deadline reaches an asset that no policy selects directly."""
    if resolution is None or getattr(resolution, "policy_set", None) is None:
        return []
    names: dict[str, None] = {}
    for s in slas:
        if s is not None and not s.policies:
            names.update(dict.fromkeys(s.propagated_from))
    out = []
    for n in names:
        try:
            out.append(resolution.policy(n))
        except Exception:  # noqa: BLE001 - an unknown name adds nothing
            continue
    return out


def unpriced_retry_cost(action: Action, graph, pricer: SyncPricer, now: datetime, usd_per_hour: float) -> float:
    """What a budget expects the syncs of a ``retry`` to cost where no sync of their connector's own
    prices them: ``usd_per_hour`` x the hours of backlog each loads (at least an hour); 0 for other
    actions and connectors with priced syncs (a connector that never delivered data: one hour).

    A retry loads the whole backlog of the outage, and a connector's rows per hour are its own: the
    dearest fit of the other connectors (what prices a sync with no history of its own) is no upper
    estimate of it (generated connectors differ 200x in rows per hour), and with no sync priced at
    all there is no estimate (world 15032: a retry 1.4 h in took dash-0's $2.86 day over). Only
    where a budget governs the connector's tables: otherwise a failed sync is retried by itself."""
    if ActionType.parse(action.type) is not ActionType.retry:
        return 0.0
    start = action.not_before if action.not_before is not None and action.not_before > now else now
    total = 0.0
    for c in synced_connectors(action, graph):
        if pricer.fit(c) is not None:
            continue
        # (a connector that never delivered data: the retry is its first sync, which nothing can
        # price; out of the box a failed first sync is retried by itself (the tests' sandbox): an hour)
        total += unpriced_sync_cost(pricer, c, start, usd_per_hour)
    return total


def _lifted_cost(lifted, budget_names) -> str:
    """How a standing approval's reason names a cost term it lifted."""
    if not lifted:
        return ""
    return "/cost (no budget)" if not budget_names else "/cost (within half of what is left of each budget)"


def gate(
    actions: Iterable[Action],
    snapshot: Snapshot,
    assessment: Assessment,
    resolution,
    memory=None,
    breaker: CircuitBreaker | None = None,
    *,
    now: datetime | None = None,
    config: GateConfig | None = None,
    durations=None,
    standing=None,
    budgets=None,
    repairs=None,
    costs: CostHistory | None = None,
    resyncs=None,
) -> list[GateDecision]:
    """``standing``: an ``orchestrator.core.standing.StandingCover`` (the standing approvals a
    person granted); routine freshness work inside an active one's scope executes with it named
    as the authorisation, unless something else holds it (budget, blackout, breaker, shadow...).
    ``budgets``: an ``orchestrator.core.standing.BudgetCover`` (the budget extensions a person
    granted for today): a policy's daily budget counts with its extension, and work that passes
    only thanks to one names it as its authorisation. The cycle's budget goes to its most urgent
    work first (highest priority, i.e. least slack); decisions come back in the actions' order.
    ``repairs``: ``callable(action) -> str | None``, for a planner's action closing an incident a
    person repaired (cause ``repair:<class>``: resume the connector, retry once) the approval that
    covers it (:func:`orchestrator.core.decide.incident_cover`): the person who approved the
    incident's request and repaired it authorised closing it, so it is not asked again; budget,
    blackout, breaker, shadow and an operator cap still hold it. ``costs``: the cycle's
    :class:`~orchestrator.core.pricing.CostHistory` (built here on the first price asked if not given).
    ``resyncs``: what the resyncs that ran cost (:class:`~orchestrator.core.pricing.ResyncPrices`),
    the floor of a resync's price."""
    cfg = config or GateConfig()
    now = now or snapshot.taken_at
    graph = snapshot.graph
    conn_tables = graph.connectors
    failure_index = FailureIndex(assessment)
    window_memo: dict = {}  # policy -> its deadline window open now (serves_open_window)
    burning: set[str] = set()  # policies whose budget is forecast over (burn rate)
    spent: dict[str, tuple[float, float | None, float, float | None]] = {}  # policy -> today, budget, month, budget
    for c in assessment.cost:
        kind, _, name = c.scope.partition(":")
        if kind != "policy":
            continue
        if c.over_budget:
            burning.add(name)
        spent[name] = (c.spent_today_usd, c.budget_day_usd, c.spent_month_usd, c.budget_month_usd)
    # the unfinished part of the orchestrator's runs and syncs in flight will be spent too
    actions = list(actions)
    pricer = SyncPricer(snapshot, cfg.unpriced_sync_usd_per_hour)
    run_bound = RunBound(snapshot.costs) if cfg.bound_model_runs else None
    pending_spend = in_flight_by_policy(
        in_flight_spend(snapshot, usd_per_hour=cfg.unknown_usd_per_hour, durations=durations,
                        exclude={a.run_id for a in actions if a.run_id and a.source != "llm"},  # see validate
                        pricer=pricer, unpriced_sync_usd_per_hour=cfg.unpriced_sync_usd_per_hour,
                        run_bound=run_bound),
        resolution, graph)
    for name, usd in pending_spend.items():
        if name in spent:
            today, day_budget, month, month_budget = spent[name]
            spent[name] = (today + usd, day_budget, month + usd, month_budget)

    committed: dict[str, float] = {}  # what this cycle already lets run, per budget (runs together)

    def extra(policy: str) -> float:
        return budgets.extra(policy) if budgets is not None else 0.0

    def overspends(policy: str, cost: float, extended: bool = True) -> bool:
        """Spent + in flight + this cycle's + ``cost`` (+ :data:`BUDGET_RESERVE` of what is only
        estimated: in flight, this cycle's and ``cost``) over the budget (with the extension)."""
        today, day_budget, month, month_budget = spent.get(policy, (0.0, None, 0.0, None))
        cost += committed.get(policy, 0.0)
        cost += cfg.budget_reserve * (cost + pending_spend.get(policy, 0.0))
        more = extra(policy) if extended else 0.0
        return ((day_budget is not None and today + cost > day_budget + more)
                or (month_budget is not None and month + cost > month_budget))

    def large_for_budget(policy: str, cost: float) -> bool:
        """More than half of what is left of the policy's daily (or monthly) budget."""
        today, day_budget, month, month_budget = spent.get(policy, (0.0, None, 0.0, None))
        day_budget = day_budget + extra(policy) if day_budget is not None else None
        left = [b - s for b, s in ((day_budget, today), (month_budget, month)) if b is not None]
        return not left or cost > 0.5 * min(left)
    priced: dict[str, float] | None = None  # asset -> mean spend of a run of it (cost history)
    rate = [cfg.unknown_usd_per_hour / 3600.0]
    history: CostHistory | None = None  # built once, on the first action that needs it

    def cost_history() -> CostHistory:
        nonlocal history
        if history is None:
            history = CostHistory.of(snapshot, costs)
        return history

    def unpriced(a: Action) -> float:
        """The spend of the models in ``a`` with no cost history: p90 duration x the warehouse
        price seen so far (``cfg.unknown_usd_per_hour`` before any)."""
        nonlocal priced
        if durations is None or not a.asset_keys or not ActionType.parse(a.type) or not ActionType.parse(a.type).starts_run:
            return 0.0
        if priced is None:
            priced = cost_history().run_mean
            seen = cost_history().usd_per_hour  # not skewed by minimum-billed short steps
            if seen is not None:
                rate[0] = max(rate[0], seen / 3600.0)
        total = 0.0
        for k in a.asset_keys:
            node = graph.get(k)
            if node is None or node.connector or k in priced:
                continue
            try:
                total += durations.seconds(node) * rate[0]
            except Exception:  # noqa: BLE001 - no estimate: nothing
                continue
        return total

    def bound_excess(a: Action) -> float:
        """What the upper bounds of ``a``'s models' bills add to their mean past cost."""
        if run_bound is None:
            return 0.0
        return run_bound.excess(a, graph, cost_history().run_mean)

    actions = list(actions)
    # the most urgent work gets what is left of a budget first (the decisions keep the input order)
    order = sorted(range(len(actions)), key=lambda i: -actions[i].priority)
    by_index: dict[int, GateDecision] = {}
    for i in order:
        a = actions[i]
        out: list[GateDecision] = []
        t = action_type(a)
        touched = list(a.asset_keys) or list(conn_tables.get(a.connector or "", ()))
        slas = {k: resolution.sla(k) if resolution is not None else None for k in touched}
        governed = [s for s in slas.values() if s is not None]
        owners = tuple(dict.fromkeys(o for s in governed for o in s.owners))
        tiers = [_val(s.tier) for s in governed] or ["standard"]
        tier = max(tiers, key=lambda x: TIER_RISK.get(x, 0.05))
        rollouts = [_val(s.rollout) for s in governed]
        if len(governed) < len(touched) or not touched:
            rollouts.append("recommend")  # ungoverned assets never act on their own
        if cfg.rollout_cap in ("shadow", "recommend"):
            rollouts.append(cfg.rollout_cap)
        # an asset no policy selects directly takes its settings from the deadline that wins
        # *now*; that winner changes from one cycle to the next, so every policy reaching it
        # must allow the action (the strictest governs)
        reaching = _reaching_policies(slas.values(), resolution)
        rollouts.extend(_val(p.rollout) for p in reaching)
        rollout = min(rollouts, key=lambda r: {"shadow": 0, "recommend": 1, "auto": 2}[r])
        own_names = {name for s in governed for name, _ in s.budgets}
        # the syncs a run triggers land every table of their connectors: each policy governing one
        # pays for that sync, not only the policies of the assets the action names
        via_sync = {name: usd for name, (usd, _) in sync_charges(
            snapshot, a, now, resolution, exclude=own_names, pricer=pricer).items()}
        budget_names = own_names | set(via_sync)
        # owners who set a budget made it the yardstick for what counts as expensive
        covered = bool(touched) and len(governed) == len(touched) and all(s.budgets for s in governed)
        preauthorised = (t is not None and t not in NEVER_AUTOMATIC and rollout == "auto" and bool(governed)
                         and all(s.may_run_without_approval(t) for s in governed)
                         and all(t in p.auto_approve for p in reaching))
        # what it will cost, as far as a budget is concerned: never less than its assets' p90
        # durations at the warehouse price seen so far for the models with no cost history yet, plus
        # what the backlog its connector syncs will load adds (orchestrator.core.pricing)
        budget_cost = (max(with_syncs(snapshot, a, now, max(a.estimated_cost_usd, unpriced(a)) + bound_excess(a), pricer),
                           resync_floor(snapshot, a, pricer, resyncs)) if budget_names
                       else a.estimated_cost_usd)
        # a retry of a connector no sync of its own prices: at the assumed price of its backlog
        retry_prior = unpriced_retry_cost(a, graph, pricer, now, cfg.unpriced_sync_usd_per_hour) if budget_names else 0.0
        budget_cost = max(budget_cost, a.estimated_cost_usd + retry_prior) if budget_names else budget_cost
        # a resync no past resync of its connector prices: at its upper bound (or a person decides)
        unbounded, reload_usd = unbounded_reload(snapshot, a, pricer, resyncs, cfg.reload_usd_per_million_rows,
                                                 cfg.reload_hours) if (
            budget_names and cfg.bound_unpriced_resyncs) else (None, None)
        budget_cost = max(budget_cost, reload_usd) if reload_usd is not None else budget_cost
        cost_of = {name: (budget_cost if name in own_names else via_sync[name]) for name in budget_names}
        over = sorted(name for name in budget_names if overspends(name, cost_of[name]))
        # a sync no history can price yet (no connector has a priced sync): nothing shows it stays
        # within the budget, so a person decides (the audit charges it like any other spend)
        blind = sorted(c for c in synced_connectors(a, graph) if pricer.fit(c) is None) if (
            budget_names and not over and t is not ActionType.retry and pricer.borrowed() is None) else []
        # a resync no past resync of its connector prices that only a budget extension lets run waits
        # for a person's approval of the resync itself: the extension was sized on the day's forecast
        # and the resync's floor, not on its bill (worlds 15051, 15382: floored at $46.16 and $39.23,
        # billed $149.94 and $145.02, over the budget and its extension)
        first = unpriced_reload(a, resyncs) if (budget_names and not over) else None
        on_extension = first is not None and any(overspends(name, cost_of[name], extended=False)
                                                 for name in budget_names)
        if first is None:
            reload = None
        elif cfg.hold_unpriced_resyncs:
            reload = first
        elif cfg.bound_unpriced_resyncs:  # a bound prices it, else it waits (or only on an extension)
            reload = unbounded if cfg.hold_unbounded_reloads or on_extension else None
        else:
            reload = first if on_extension else None
        # over the policies' own budgets but within what a person granted over them today
        extended_by = sorted({e.action_id for name in budget_names
                              if not over and overspends(name, cost_of[name], extended=False)
                              and budgets is not None and (e := budgets.extension(name)) is not None})
        # over the policies' own budgets (held, or passing only on an extension) while no deadline
        # it feeds can use its data now: not worth the spend, nor a person's time, yet
        idle = bool(over or extended_by) and not serves_open_window(touched, resolution, now, window_memo)
        if over:
            budget_risk = 0.2
        elif budget_names & burning:
            budget_risk = 0.05
        else:
            budget_risk = 0.0

        factors = {
            "type": TYPE_RISK.get(a.type, 0.5),
            "tier": 0.0 if preauthorised else TIER_RISK.get(tier, 0.05),
            "rollout": ROLLOUT_RISK.get(rollout, 0.1),
            "size": min(0.2, 0.005 * max(0, units_of_work(a.asset_keys, graph, a.connector) - 1) + 0.01 * len(a.partitions)),
            "cost": 0.2 if a.estimated_cost_usd > cfg.cost_high_usd and (
                not covered or any(large_for_budget(name, a.estimated_cost_usd) for name in budget_names)) else 0.0,
            "budget": budget_risk,
            "llm": cfg.llm_risk if a.source == "llm" else 0.0,
        }
        score = min(1.0, sum(factors.values()))
        level = "low" if score < cfg.low_risk else ("medium" if score < cfg.high_risk else "high")

        fails = related_failures(a, assessment, failure_index)
        if a.cause and a.cause.startswith("repair:") and a.source != "llm":
            confidence, conf_why = 1.0, f"a person repaired {a.cause.split(':', 1)[1]}; closing the incident"
        elif fails and (a.cycle or "").startswith("probe:") and a.source != "llm" and t is ActionType.materialize and a.cause == "freshness" and not a.run_id:
            # the planner's one probe of a subject escalated to a person (its fix may be
            # unreported): a check, not a resolution the memory could rate; the rest still applies
            confidence, conf_why = 1.0, "a probe: one attempt to see whether a person fixed the escalated cause"
        elif fails:
            confidence, conf_why = memory_confidence(a, fails, memory)
            if a.source == "llm":
                confidence = min(confidence, a.confidence)
        else:
            confidence = 1.0 if a.source != "llm" else min(a.confidence, cfg.llm_max_confidence)
            conf_why = "freshness work, no failure involved"

        def decide(decision: str, reason: str, by: str | None = None) -> GateDecision:
            return GateDecision(a, decision, level, score, confidence, reason, owners, factors, by,
                                budget_cost if budget_names else 0.0)

        # a standing approval stands in for the approval a routine refresh would wait for (the
        # tier and rollout risks are what its approver accepted); nothing else it lifts
        # (and, where no budget covers the work, its cost: the owners set no limit on what a routine
        # refresh may cost, and its approver accepted the scope's routine refreshes as they come --
        # an expensive connector's refresh asked a person every cycle despite it; under a budget the
        # budget checks hold it as before)
        # Where budgets do apply they are the yardstick instead: a refresh that would take none of
        # them over half of what is left (the budget checks above still hold anything over one) is
        # not expensive for its owners -- a large sync of unbudgeted platform tables that also
        # lands a budgeted policy's tables waited for a person at night although that policy paid
        # a fraction of its budget (generated world 103, 07-10)
        standing_ok = None
        cost_in_budget = not budget_names or not any(large_for_budget(n, cost_of[n]) for n in budget_names)
        lifted = factors["tier"] + factors["rollout"] + (factors["cost"] if cost_in_budget else 0.0)
        if (standing is not None and t is ActionType.materialize and cfg.rollout_cap not in ("shadow", "recommend")
                and (factors["cost"] == 0.0 or cost_in_budget) and factors["llm"] == 0.0
                and confidence >= cfg.min_confidence and score - lifted < cfg.low_risk):
            standing_ok = standing.covers(a)

        incident_ok = None  # the person's approval of the incident this action closes
        if (repairs is not None and t is not None and t not in NEVER_AUTOMATIC and a.source != "llm"
                and cfg.rollout_cap not in ("shadow", "recommend") and (a.cause or "").startswith("repair:")):
            incident_ok = repairs(a)

        open_subjects = [s for s in subjects(a) if breaker is not None and breaker.is_open(s, now)]
        if t is None:
            out.append(decide(RECORD_ONLY, f"unknown action type {a.type!r}"))
        elif open_subjects:
            out.append(decide(RECORD_ONLY, f"circuit breaker open for {', '.join(open_subjects)}: "
                                           f"{breaker.reason(open_subjects[0])}; owners escalated"))
        elif rollout == "shadow":
            out.append(decide(RECORD_ONLY, "rollout shadow: recorded only"))
        elif rollout == "recommend" and not standing_ok and not incident_ok:
            out.append(decide(AWAIT_APPROVAL, "rollout recommend (or an ungoverned asset): waits for approval"))
        else:
            needed = [t] + ([ActionType.cancel_run] if a.run_id and t is ActionType.materialize else [])
            not_listed = sorted({n.value for n in needed for s in governed if not s.may_run_without_approval(n)}
                                | {n.value for n in needed for p in reaching if n not in p.auto_approve})
            start = a.not_before if a.not_before is not None and a.not_before > now else now
            dark = blackout_hit(a, touched, resolution, start, _run_span_s(a, graph, durations)) if (
                t.starts_run or t.calls_connector) else None
            # the policy has a person approve it anyway: that, not the unknown price, is the reason
            asks_anyway = bool(not_listed) and not incident_ok and not standing_ok
            if t in NEVER_AUTOMATIC:
                out.append(decide(AWAIT_APPROVAL, f"{t.value} always needs approval"))
            elif idle:
                out.append(decide(AWAIT_APPROVAL, f"{IDLE}: {', '.join(over or sorted(budget_names))} would go over "
                                                  f"its own budget ({budget_cost:.2f} USD) for work no deadline can "
                                                  "use before its window opens: planned again once one opens"))
            elif over:
                coming = sum(pending_spend.get(n, 0.0) for n in over)
                out.append(decide(AWAIT_APPROVAL, f"over budget: {', '.join(over)} would be overspent by this "
                                                  f"action ({budget_cost:.2f} USD"
                                                  + (f", with {coming:.2f} USD still to come from work in flight"
                                                     if coming > 0 else "") + "): waits for approval"))
            elif reload is not None and not asks_anyway:
                out.append(decide(AWAIT_APPROVAL, f"{UNPRICED_RELOAD}: no resync seen yet (nor rows its syncs "
                                                  f"reported) prices a reload of {reload} (every row at full price, not the new rows an "
                                                  f"incremental sync bills), and {', '.join(sorted(budget_names))} "
                                                  f"has a budget: waits for approval"))
            elif blind:
                out.append(decide(AWAIT_APPROVAL, f"{UNPRICED}: no sync history prices the sync of "
                                                  f"{', '.join(blind)} yet, and {', '.join(sorted(budget_names))} "
                                                  f"has a budget: waits for approval"))
            elif dark is not None:
                out.append(decide(AWAIT_APPROVAL, f"would run inside a blackout window of {dark[0]}"
                                                  f"{' (' + dark[1].reason + ')' if getattr(dark[1], 'reason', None) else ''}"
                                                  ": waits for approval"))
            elif incident_ok and (rollout == "recommend" or not_listed or level != "low"
                                  or confidence < cfg.min_confidence):
                out.append(decide(EXECUTE, f"closes the incident a person repaired: covered by their approval "
                                           f"{incident_ok} of it (risk {score:.2f})", by=f"incident:{incident_ok}"))
            elif standing_ok and (rollout == "recommend" or not_listed or level != "low"):
                names = ", ".join(f"{s.action_id} (policy {s.policy}, until {s.expires_at:%Y-%m-%d})"
                                  for s in standing_ok)
                out.append(decide(EXECUTE, f"standing approval {names}: routine refresh inside its scope, "
                                           f"risk {score:.2f} without tier/rollout{_lifted_cost(factors['cost'] and cost_in_budget, budget_names)} {score - lifted:.2f}",
                                  by=",".join(s.action_id for s in standing_ok)))
            elif not_listed:
                out.append(decide(AWAIT_APPROVAL, f"{', '.join(not_listed)} not in auto_approve"))
            elif level != "low":
                out.append(decide(AWAIT_APPROVAL, f"risk {level} ({score:.2f}): waits for approval"))
            elif confidence < cfg.min_confidence:
                out.append(decide(AWAIT_APPROVAL, f"confidence {confidence:.2f} < {cfg.min_confidence} ({conf_why})"))
            else:
                out.append(decide(EXECUTE, f"auto: low risk ({score:.2f}), confidence {confidence:.2f} ({conf_why})"))
        if (out[-1].decision == AWAIT_APPROVAL and t is ActionType.pause_connector and a.connector
                and a.cause and FailureClass.parse(a.cause).needs_person):
            g = out[-1]  # one request per incident: its approval covers closing it once repaired
            out[-1] = GateDecision(a, g.decision, g.risk, g.risk_score, g.confidence,
                                   g.reason + f"; approving it also authorises resuming {a.connector} and one "
                                              "retry once the cause is repaired", g.owners, g.factors, g.authorised_by,
                                   g.budget_usd)
        if out[-1].decision == EXECUTE and extended_by:
            g = out[-1]
            by = ",".join(x for x in (g.authorised_by, *extended_by) if x)
            out[-1] = GateDecision(a, g.decision, g.risk, g.risk_score, g.confidence,
                                   g.reason + f"; over the policy budget within the budget extension "
                                              f"{', '.join(extended_by)} a person granted for today",
                                   g.owners, g.factors, by, g.budget_usd)
        if out[-1].decision == EXECUTE and budget_cost > 0:
            for name in budget_names:
                committed[name] = committed.get(name, 0.0) + cost_of[name]
        by_index[i] = out[-1]
    return [by_index[i] for i in range(len(actions))]
