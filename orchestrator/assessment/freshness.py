"""Freshness SLA assessment: ok / at_risk / breached for every governed asset.

One pass in topological order over the whole graph per tick (no per-asset graph walks):

* each asset's *cycle*: the upcoming effective deadline ``next`` (= target tick - lead) and the
  previous one ``prev``; the cycle opens ``window`` before the target tick (the policy's
  ``deadline.window``). Ticks are computed once per policy and found per asset by bisection.
* ``needs_run``: the asset's latest success predates the cycle opening, or an upstream needs to
  run (its new data has not propagated).
* ``ready``: predicted ready time. Not needing a run: its latest success. In flight: the run's
  start (now for queued runs) + the predicted duration (never before now). Otherwise: the
  latest of now, the cycle opening and every upstream's ready time, + the predicted duration
  (a quantile of past durations from ``DurationModel``).
* ``blocking``: the first not-yet-ready asset of the critical (latest-ready) upstream chain.

Status: ``breached`` when the previous effective deadline passed and nothing fresh for that
cycle materialized (cleared by the next success: a recovery), or the data is older than its
effective ``max_lag``; ``at_risk`` when ``predicted ready + margin`` > the upcoming deadline
(or the max-lag limit); else ``ok``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from orchestrator.core.records import (
    FreshnessAssessment,
    FreshnessStatus,
    RunRecord,
    RunStatus,
    Snapshot,
)

UTC = timezone.utc
DEFAULT_MARGIN_S = 300.0


@dataclass(frozen=True, slots=True)
class _Cycle:
    prev: datetime | None  # previous effective deadline (this asset's share of the last target tick)
    prev_open: datetime | None  # when work for that previous cycle could start
    next: datetime  # effective deadline for the upcoming target tick (may already have passed)
    open: datetime  # when work for the upcoming target tick may start
    after: datetime  # effective deadline of the tick after (reported once this cycle is done)
    policy: str


def _policy_ticks(schedule, now: datetime) -> tuple[datetime | None, datetime, datetime]:
    """(last target tick <= now, first tick > now, the tick after that), in UTC."""
    nxt = schedule.next_tick(now).astimezone(UTC)
    after = schedule.next_tick(nxt).astimezone(UTC)
    try:
        prev = schedule.prev_tick(now + timedelta(microseconds=1)).astimezone(UTC)
    except ValueError:
        prev = None
    return prev, nxt, after


def _in_flight_start(runs: list[RunRecord], now: datetime, syncs=()) -> dict[str, datetime]:
    """Asset key -> when its in-flight run (or running connector sync, whoever started it)
    started (now when queued/starting)."""
    started: dict[str, datetime] = {}
    for sync in syncs:
        if sync.status == "running":
            for key in sync.tables:
                cur = started.get(key)
                if cur is None or sync.started_at < cur:
                    started[key] = sync.started_at
    for run in runs:
        if not run.status.in_flight:
            continue
        at = run.started_at if run.status is RunStatus.running and run.started_at else now
        for key in run.asset_keys:
            cur = started.get(key)
            if cur is None or at < cur:
                started[key] = at
    return started


_SCOPE: dict[str, tuple] = {}
_SCOPE_LOCK = threading.Lock()


def _scope(graph, resolution) -> tuple[str, ...]:
    """The governed assets and their ancestors, in topological order: computed once per graph
    and resolution (both immutable once built) and kept for the next tick."""
    with _SCOPE_LOCK:
        hit = _SCOPE.get("last")
        if (hit is not None and hit[0] is graph and hit[1] is resolution and hit[3] is resolution.slas
                and hit[4] == len(resolution.slas)):
            return hit[2]
    governed = [k for k in resolution.slas if k in graph]
    wanted = graph.upstream_closure(*governed, include_self=True) if governed else set()
    order = tuple(k for k in graph.topological_order() if k in wanted)
    with _SCOPE_LOCK:
        _SCOPE["last"] = (graph, resolution, order, resolution.slas, len(resolution.slas))
    return order


def assess_freshness(
    snapshot: Snapshot,
    resolution,
    durations=None,
    now: datetime | None = None,
    *,
    margin_s: float = DEFAULT_MARGIN_S,
) -> dict[str, FreshnessAssessment]:
    """Assess every asset governed by a deadline or a max_lag in ``resolution``.

    ``durations``: an ``orchestrator.policies.DurationModel`` (default: one built from
    ``snapshot.durations``). ``now`` defaults to ``snapshot.taken_at``.
    """
    from orchestrator.policies import DurationModel

    if resolution is None or not getattr(resolution, "ok", False):
        return {}
    now = (now or snapshot.taken_at).astimezone(UTC)
    graph = snapshot.graph
    if durations is None:
        durations = DurationModel(snapshot.durations)
    from orchestrator.core.datatime import data_times

    slas = resolution.slas
    last = snapshot.last_success
    dts, held_by = data_times(snapshot)  # freshness is judged by data time, not by run time
    in_flight = _in_flight_start(snapshot.runs, now, snapshot.syncs)
    margin = timedelta(seconds=margin_s)

    # -- per policy: the target ticks around now and the window, computed once -------------
    # Every asset is assessed against its winning deadline's *target* tick: an upstream whose
    # own share of the cycle already passed is late for that tick, not early for the next one.
    # Assets sharing a policy and a lead share one (immutable) cycle.
    ticks: dict[str, tuple[datetime | None, datetime, datetime, timedelta]] = {}
    shared: dict[tuple[str, timedelta], _Cycle] = {}
    cycles: dict[str, _Cycle] = {}
    # the cycles of the last call, reused (the same objects, compared by identity below) for the
    # policies whose ticks did not move
    with _CYCLES_LOCK:
        held_ticks, held_cycles = _CYCLES.get("last", ({}, {}))
    for key, sla in slas.items():
        dl = sla.deadline
        if dl is None:
            continue
        pair = (dl.policy, dl.lead)
        cyc = shared.get(pair)
        if cyc is None:
            t = ticks.get(dl.policy)
            if t is None:
                policy = resolution.policy(dl.policy)
                schedule = policy.schedule()
                t = ticks[dl.policy] = (*_policy_ticks(schedule, now), policy.deadline.effective_window(schedule))
            cyc = held_cycles.get(pair) if held_ticks.get(dl.policy) == t else None
            if cyc is None:
                prev_tick, next_tick, after_tick, win = t
                cyc = _Cycle(
                    prev=prev_tick - dl.lead if prev_tick else None,
                    prev_open=prev_tick - win if prev_tick else None,
                    next=next_tick - dl.lead,
                    open=next_tick - win,
                    after=after_tick - dl.lead,
                    policy=dl.policy,
                )
            shared[pair] = cyc
        cycles[key] = cyc
    with _CYCLES_LOCK:
        _CYCLES["last"] = (ticks, shared)

    # -- one topological pass: needs_run, ready, blocking ----------------------------------
    # over the governed assets and their ancestors only (nothing else reaches a status)
    node_of = graph.get
    needs: dict[str, bool] = {}
    ready: dict[str, datetime] = {}
    blocking: dict[str, str | None] = {}
    upstream_map = getattr(graph, "upstream_map", None)
    parents_of = upstream_map().__getitem__ if upstream_map is not None else graph.parents
    for key in _scope(graph, resolution):
        node = node_of(key)
        ls = last.get(key)
        dt = dts.get(key)
        cyc = cycles.get(key)
        sla = slas.get(key)
        if cyc is not None:
            stale = dt is None or dt < cyc.open
        elif sla is not None and sla.max_lag is not None:
            stale = dt is None or dt < now - sla.max_lag
        else:
            stale = dt is None
        parents = parents_of(key)
        crit: str | None = None
        crit_ready: datetime | None = None
        up_needs = False
        for p in parents:
            if needs[p]:
                up_needs = True
                r = ready[p]
                if crit_ready is None or r > crit_ready:
                    crit, crit_ready = p, r
        need = stale or up_needs
        needs[key] = need
        if not need:
            ready[key] = ls if ls is not None else now
            blocking[key] = None
            continue
        dur = timedelta(seconds=durations.seconds(node))
        start = in_flight.get(key)
        if start is not None and not up_needs:
            ready[key] = max(now, start + dur)
        else:
            begin = now
            if cyc is not None and cyc.open > begin:
                begin = cyc.open
            if crit_ready is not None and crit_ready > begin:
                begin = crit_ready
            ready[key] = begin + dur
        blocking[key] = (blocking[crit] or crit) if crit is not None else None

    # -- statuses ---------------------------------------------------------------------------
    # An assessment is a function of the values below and of how ``now`` compares with its
    # deadlines; when they are the ones of the last tick the assessment made then is reused
    # (formatting the reasons is most of the cost of a tick where little changed).
    with _REUSE_LOCK:
        held_over = _REUSE.get("last")
    reuse = held_over[1] if held_over is not None and held_over[0] is graph else {}
    kept: dict[str, tuple] = {}
    out: dict[str, FreshnessAssessment] = {}
    for key, sla in slas.items():
        cyc = cycles.get(key)
        if cyc is None and sla.max_lag is None:
            continue
        dt = dts.get(key)
        predicted = ready.get(key)
        need = needs.get(key)
        block = blocking.get(key)
        hb = held_by.get(key)
        if cyc is not None:
            flags = (cyc.prev is not None and cyc.prev <= now, cyc.next <= now)
        else:
            flags = None
        if sla.max_lag is not None:
            if dt is None:
                lag = (now,)
            else:
                limit = dt + sla.max_lag
                lag = (now > limit, cyc is None and need is False and now + timedelta(
                    seconds=durations.seconds(node_of(key))) + margin > limit)
        else:
            lag = None
        sig = (sla, cyc, dt, last.get(key), predicted, need, block, hb, flags, lag, margin_s)
        hit = reuse.get(key)
        if hit is not None and hit[0] == sig:
            out[key] = hit[1]
            kept[key] = hit
            continue
        a = _assess_one(key, sla, cyc, last.get(key), dt, predicted, need, block, held_by, now, margin,
                        margin_s, durations, node_of)
        out[key] = a
        kept[key] = (sig, a)
    with _REUSE_LOCK:
        _REUSE["last"] = (graph, kept)
    return out


_REUSE: dict[str, tuple] = {}  # "last": (graph, {key: (inputs, assessment)}) of the last call
_REUSE_LOCK = threading.Lock()
_CYCLES: dict[str, tuple] = {}  # "last": (policy -> its ticks, (policy, lead) -> cycle) of the last call
_CYCLES_LOCK = threading.Lock()


def _assess_one(key, sla, cyc, ls, dt, predicted, need, block, held_by, now, margin, margin_s, durations,
                node_of) -> FreshnessAssessment:
    window_open = cyc.open if cyc is not None else None
    policy = cyc.policy if cyc is not None else sla.max_lag_policy
    status = FreshnessStatus.ok
    deadline: datetime | None = None
    reason = ""
    if cyc is not None:
        deadline = cyc.next
        if cyc.prev is not None and cyc.prev <= now and (dt is None or dt < cyc.prev_open):
            status = FreshnessStatus.breached
            deadline = cyc.prev
            reason = (
                f"deadline {cyc.prev.isoformat()} passed without data newer than "
                f"{cyc.prev_open.isoformat()}"
                + (f" (data as of {dt.isoformat()}"
                   + (f", held back by {held_by[key]})" if held_by.get(key, key) != key else ")") if dt else "")
                + (f"; predicted ready {predicted.isoformat()}" if predicted else "")
                + (f" (blocked by {block})" if block else "")
            )
        elif cyc.next <= now and (dt is None or dt < cyc.open):
            status = FreshnessStatus.breached
            reason = (
                f"late for its share of the {cyc.policy} deadline: needed by "
                f"{cyc.next.isoformat()}; predicted ready {predicted.isoformat()}"
                + (f" (blocked by {block})" if block else "")
            )
        elif not need:
            if deadline <= now:
                deadline = cyc.after
            reason = (
                f"fresh for the deadline {cyc.next.isoformat()}"
                + (f" (data as of {dt.isoformat()}" if dt else "")
                + (f", materialized {ls.isoformat()})" if ls and dt else (")" if dt else ""))
            )
        elif predicted + margin > cyc.next:
            status = FreshnessStatus.at_risk
            reason = (
                f"predicted ready {predicted.isoformat()} is after the deadline "
                f"{cyc.next.isoformat()} minus a {int(margin_s)}s margin"
                + (f"; critical path held by {block}" if block else "")
            )
        else:
            reason = f"predicted ready {predicted.isoformat()} before the deadline {cyc.next.isoformat()}"
    if sla.max_lag is not None and status is not FreshnessStatus.breached:
        limit = (dt + sla.max_lag) if dt is not None else now
        if dt is None or now > limit:
            status = FreshnessStatus.breached
            deadline = limit
            reason = (f"data older than max_lag {sla.max_lag}" if dt else "never materialized") + (
                f" (policy {sla.max_lag_policy})"
            )
        elif cyc is None:
            deadline = limit
            # the next refresh would have to start now to land before the limit
            if need and predicted + margin > limit:
                status = FreshnessStatus.at_risk
                reason = f"predicted ready {predicted.isoformat()} after the max_lag limit {limit.isoformat()}"
            elif not need:
                full = now + timedelta(seconds=durations.seconds(node_of(key))) + margin
                if full > limit:
                    status = FreshnessStatus.at_risk
                    reason = f"a refresh started now would land after the max_lag limit {limit.isoformat()}"
                else:
                    reason = f"within max_lag until {limit.isoformat()}"
            else:
                reason = f"predicted ready {predicted.isoformat()} within max_lag until {limit.isoformat()}"
    slack = (deadline - predicted).total_seconds() if deadline and predicted else None
    return FreshnessAssessment(
        asset_key=key,
        status=status,
        tier=sla.tier.value,
        policy=policy,
        deadline=deadline,
        predicted_ready=predicted,
        slack_s=slack,
        blocking_asset=block,
        reason=reason,
        data_time=dt,
        data_held_by=held_by.get(key) if held_by.get(key, key) != key else None,
        window_open=window_open,
    )


def recoveries(
    previous: Mapping[str, str], current: Mapping[str, FreshnessAssessment]
) -> list[str]:
    """Keys that were at_risk/breached before (``previous``: key -> status value) and are ok now."""
    return [
        key
        for key, status in previous.items()
        if status != FreshnessStatus.ok.value
        and key in current
        and current[key].status is FreshnessStatus.ok
    ]
