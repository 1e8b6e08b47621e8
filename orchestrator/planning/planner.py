"""The deterministic planner: from a Snapshot and its Assessment to a Plan (pure functions).

What it proposes, in this order:

1. **Failures** (one decision per failing asset/connector, the latest failure since its last
   success; failures caused by an upstream failure are skipped):

   * ``auth_expired`` / ``permission_denied`` / ``config_error``: never retried. The connector is
     paused (``pause_connector``: stops futile syncs hammering a broken credential) and the
     owners are told (an ``Escalation``). The asset and its downstream are left alone.
   * transient classes (``rate_limit``, ``source_unavailable``, ``destination_capacity``,
     ``resource_exhausted``, transient ``unknown``): ``retry`` with a per-class exponential
     backoff (``not_before``; a ``Retry-After`` in the evidence is honoured). For a connector
     the retry is a *new sync* of all its tables (a fresh run of the connector's assets), never a
     re-execution of the failed run, which would only re-attach to the old sync. After
     ``max_attempts`` failures since the last success the subject is escalated instead.
   * ``schema_drift``: a change the connector's schema-change setting absorbs (new columns under
     ALLOW_ALL/ALLOW_COLUMNS, Fivetran's default) is just retried; a type change, dropped or
     renamed column, or anything under BLOCK_ALL gets a table-level ``resync_table`` of exactly the
     drifted tables.
   * partitioned assets failing on several partitions: ``backfill`` = those partitions x the
     partitioned downstream closure, nothing more.
   * ``upstream_delay``: nothing (wait for the upstream); ``code_error`` / ``data_quality`` and
     non-transient ``unknown``: escalate only.

2. **Freshness**: every at-risk or breached target gets the path from its blocking asset down to
   it (following the critical path of the resolution). Overlapping paths merge into one run, so
   a downstream model never races its upstream in another run. Keys already running are left out;
   keys in a *queued* run with a lower priority are re-prioritised (Dagster reads
   ``dagster/priority`` only at dequeue): the run is cancelled and re-submitted with the new
   priority (one ``materialize`` action carrying the queued ``run_id``).

3. **Priority** is least-slack-first: ``dagster/priority`` decreases monotonically with slack
   (5-minute buckets), the tier breaking ties inside a bucket.

4. **Cost**: when a budget covering the work is burning (forecast over budget, or a spike), work
   whose tiers are all deferrable (``low`` by default) moves into the next off-peak window
   (``defer`` with ``not_before``) if the deadline still holds after the move.

Performance: one pass over the assessment and failures; paths follow the resolution's critical
path pointers (O(path length)), so a cycle on 10,000 assets stays well under a second.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.core.graph import AssetGraph
from orchestrator.core.records import (
    Action,
    Assessment,
    DiagnosedFailure,
    FreshnessStatus,
    RunStatus,
    Snapshot,
)
from orchestrator.planning.common import (
    ESCALATE_CATEGORIES,
    UTC,
    AgentPlan,
    Escalation,
    action_id,
    tables_of,
)
from orchestrator.policies import ActionType, DurationModel


@dataclass(frozen=True)
class Backoff:
    base_s: float
    factor: float = 2.0
    max_attempts: int = 3
    cap_s: float = 2 * 3600


DEFAULT_BACKOFF: dict[str, Backoff] = {
    "rate_limit": Backoff(300, 2.0, 5),
    "source_unavailable": Backoff(600, 2.0, 4),
    "destination_capacity": Backoff(900, 2.0, 3),
    "resource_exhausted": Backoff(600, 2.0, 3),
    "unknown": Backoff(300, 2.0, 2),
    "schema_drift": Backoff(0, 1.0, 2),  # absorbed drift: the next sync picks the change up
}
NO_ACTION = frozenset({"upstream_delay"})
ESCALATE_ONLY = frozenset({"code_error", "data_quality"})

# Schema changes a connector's own setting absorbs (Fivetran schema_change_handling).
ABSORBS_NEW_COLUMNS = frozenset({"ALLOW_ALL", "ALLOW_COLUMNS"})
_BREAKING_DRIFT = re.compile(
    r"(?i)(type\s*change|changed?\s+(?:the\s+)?type|incompatible|cannot\s+cast|dropped|drop_column|"
    r"removed\s+column|column\s+\S+\s+(?:was\s+)?(?:removed|deleted|renamed)|rename|"
    r"primary\s+key\s+changed|to_type)"
)
_RETRY_AFTER = re.compile(r"(?i)retry[- ]after[\"':= ]+(\d{1,6})")
_TIER_RANK = {"critical": 3, "high": 2, "standard": 1, "low": 0}


@dataclass
class PlannerConfig:
    backoff: Mapping[str, Backoff] = field(default_factory=lambda: dict(DEFAULT_BACKOFF))
    deferrable_tiers: frozenset[str] = frozenset({"low"})
    slack_bucket_s: float = 300.0
    priority_cap: int = 99  # |slack buckets| are clipped to this
    reprioritize_margin: int = 1  # re-submit a queued run only when the gain is at least this
    # connector -> Fivetran schema_change_handling (ALLOW_ALL | ALLOW_COLUMNS | BLOCK_ALL)
    schema_change_handling: Mapping[str, str] = field(default_factory=dict)
    max_backfill_partitions: int = 31


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _tv(x) -> str:
    return str(getattr(x, "value", x))


def priority_for(slack_s: float | None, tier: str, config: PlannerConfig | None = None) -> int:
    """``dagster/priority`` for work with this slack: less slack, higher priority."""
    cfg = config or PlannerConfig()
    rank = _TIER_RANK.get(_tv(tier), 1)
    if slack_s is None:
        return -cfg.priority_cap * 4 + rank
    buckets = int(-slack_s // cfg.slack_bucket_s)
    buckets = max(-cfg.priority_cap, min(cfg.priority_cap, buckets))
    return buckets * 4 + rank


def _duration_model(durations) -> DurationModel:
    if durations is None:
        return DurationModel()
    if isinstance(durations, DurationModel):
        return durations
    return DurationModel(durations)


def _tier(resolution, key: str) -> str:
    sla = resolution.sla(key) if resolution is not None else None
    return sla.tier.value if sla is not None else "standard"


class _Groups:
    """Union-find of asset keys into runs."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, k: str) -> str:
        p = self.parent.setdefault(k, k)
        while p != self.parent[p]:
            self.parent[p] = self.parent[self.parent[p]]
            p = self.parent[p]
        self.parent[k] = p
        return p

    def union(self, keys: Iterable[str]) -> None:
        it = iter(keys)
        try:
            first = self.find(next(it))
        except StopIteration:
            return
        for k in it:
            r = self.find(k)
            if r != first:
                self.parent[r] = first


def _path(graph: AssetGraph, resolution, blocker: str | None, target: str) -> list[str]:
    """Blocking asset -> target along the resolution's critical path (inclusive)."""
    if blocker is None or blocker == target or blocker not in graph:
        return [target]
    path = [blocker]
    cur = blocker
    for _ in range(len(graph)):
        sla = resolution.sla(cur) if resolution is not None else None
        nxt = sla.deadline.via if sla is not None and sla.deadline is not None else None
        if nxt is None:
            break
        path.append(nxt)
        if nxt == target:
            return path
        cur = nxt
    # Critical path leads elsewhere: take the assets between blocker and target.
    between = graph.downstream_closure(blocker) & graph.upstream_closure(target)
    return [blocker, *sorted(between), target]


def _cost_per_asset(snapshot: Snapshot) -> tuple[dict[str, float], dict[str, float]]:
    sums: dict[str, list[float]] = {}
    csums: dict[str, list[float]] = {}
    for c in snapshot.costs:
        if c.asset_key:
            sums.setdefault(c.asset_key, []).append(c.amount_usd)
        elif c.connector:
            csums.setdefault(c.connector, []).append(c.amount_usd)
    return ({k: sum(v) / len(v) for k, v in sums.items()}, {k: sum(v) / len(v) for k, v in csums.items()})


def _burning_assets(assessment: Assessment, resolution, graph: AssetGraph) -> set[str]:
    keys: set[str] = set()
    for c in assessment.cost:
        if not (c.over_budget or c.spike):
            continue
        kind, _, name = c.scope.partition(":")
        if kind == "policy" and resolution is not None:
            keys |= set(resolution.governed_by(name))
        elif kind == "group":
            keys |= {n.key for n in graph if n.group == name}
        elif kind == "asset":
            keys.add(name)
    return keys


def _drift_is_breaking(d: DiagnosedFailure, handling: str | None) -> bool:
    text = " ".join([d.failure.message, *d.evidence])
    if handling == "BLOCK_ALL":
        return True
    return bool(_BREAKING_DRIFT.search(text))


def plan(
    snapshot: Snapshot,
    assessment: Assessment,
    resolution,
    durations=None,
    now: datetime | None = None,
    *,
    config: PlannerConfig | None = None,
) -> AgentPlan:
    """The baseline plan. Always returns a plan (possibly empty), never raises on odd input."""
    cfg = config or PlannerConfig()
    now = _aware(now or snapshot.taken_at)
    graph = snapshot.graph
    model = _duration_model(durations)
    if resolution is not None and not getattr(resolution, "ok", True):
        return AgentPlan(created_at=now, actions=[], planner="deterministic",
                         rationale=f"nothing planned: {resolution.skip_reason}")
    cost_asset, cost_connector = _cost_per_asset(snapshot)
    actions: list[Action] = []
    escalations: list[Escalation] = []
    links: dict[str, tuple[str, ...]] = {}
    notes: list[str] = []

    # -- in flight -------------------------------------------------------------------------------
    running: set[str] = set()
    queued: list = []
    for run in snapshot.runs:
        if not run.status.in_flight:
            continue
        if run.status is RunStatus.queued:
            queued.append(run)
        else:
            running.update(run.asset_keys)
    syncing = {s.connector for s in snapshot.syncs if s.status == "running"}

    def owners_of(keys: Iterable[str]) -> tuple[str, ...]:
        out: list[str] = []
        for k in keys:
            sla = resolution.sla(k) if resolution is not None else None
            node = graph.get(k)
            for o in (sla.owners if sla else ()) or (node.owners if node else ()):
                if o not in out:
                    out.append(o)
        return tuple(out)

    # -- failures --------------------------------------------------------------------------------
    blocked: set[str] = set()  # keys no freshness action may include (broken or being fixed)
    retry_groups: list[dict] = []  # {keys, not_before, failures, connector, partitions}
    latest: dict[str, DiagnosedFailure] = {}
    attempts: dict[str, int] = {}
    partition_failures: dict[str, dict[str, DiagnosedFailure]] = {}
    for d in assessment.failures:
        f = d.failure
        if d.root_failure_id is not None:
            continue
        subject = f"connector:{f.connector}" if f.connector else (f"asset:{f.asset_key}" if f.asset_key else None)
        if subject is None:
            continue
        # Already recovered: the asset succeeded after this failure.
        if f.asset_key and f.asset_key in snapshot.last_success and not f.partition:
            if _aware(snapshot.last_success[f.asset_key]) > _aware(f.at):
                continue
        if f.connector and not f.asset_key:
            tables = [n.key for n in graph if n.connector == f.connector]
            if tables and all(
                k in snapshot.last_success and _aware(snapshot.last_success[k]) > _aware(f.at) for k in tables
            ):
                continue
        attempts[subject] = attempts.get(subject, 0) + 1
        node = graph.get(f.asset_key) if f.asset_key else None
        if f.partition and node is not None and node.partitioning:
            partition_failures.setdefault(f.asset_key, {})[f.partition] = d
        prev = latest.get(subject)
        if prev is None or _aware(prev.failure.at) < _aware(f.at):
            latest[subject] = d

    backfilled: set[str] = set()
    for key, parts in sorted(partition_failures.items()):
        if len(parts) < 2 or any(p.category in ESCALATE_CATEGORIES | ESCALATE_ONLY for p in parts.values()):
            continue
        node = graph.node(key)
        closure = [key, *sorted(k for k in graph.downstream_closure(key)
                                if graph.node(k).partitioning == node.partitioning)]
        pkeys = tuple(sorted(parts))[-cfg.max_backfill_partitions:]
        fids = tuple(sorted(p.failure.failure_id for p in parts.values()))
        aid = action_id("backfill", closure, pkeys, fids)
        actions.append(Action(
            action_id=aid, type=ActionType.backfill.value,
            reason=(f"{len(pkeys)} partitions of {key} failed ({', '.join(sorted({p.category for p in parts.values()}))}): "
                    f"backfill those partitions x {len(closure)} partitioned assets downstream"),
            asset_keys=tuple(closure), partitions=pkeys,
            priority=priority_for(None, _tier(resolution, key), cfg),
            estimated_cost_usd=round(sum(cost_asset.get(k, 0.0) for k in closure) * len(pkeys), 4),
        ))
        links[aid] = fids
        backfilled.add(f"asset:{key}")
        blocked.update(closure)

    for subject, d in sorted(latest.items()):
        f = d.failure
        cat = d.category
        conn = f.connector
        keys = [n.key for n in graph if n.connector == conn] if conn else [f.asset_key]
        keys = [k for k in keys if k in graph]
        if subject in backfilled:
            continue
        owners = owners_of(keys)
        if cat in ESCALATE_CATEGORIES:
            blocked.update(keys)
            escalations.append(Escalation(subject, cat, owners,
                                          f"{cat} on {subject}: needs a person (credentials, grants or setup); "
                                          "not retried", f.failure_id))
            if conn:
                aid = action_id("pause", conn, f.failure_id)
                actions.append(Action(
                    action_id=aid, type=ActionType.pause_connector.value, connector=conn,
                    reason=f"{cat}: pause {conn} so it stops failing every sync; escalated to owners",
                    asset_keys=(), priority=0,
                ))
                links[aid] = (f.failure_id,)
            continue
        if cat in NO_ACTION:
            notes.append(f"{subject}: {cat}, waiting for the upstream")
            continue
        if cat in ESCALATE_ONLY or (cat == "unknown" and not d.transient):
            blocked.update(keys)
            escalations.append(Escalation(subject, cat, owners,
                                          f"{cat} on {subject}: not fixable by a re-run", f.failure_id))
            continue
        if cat == "schema_drift" and conn:
            handling = cfg.schema_change_handling.get(conn)
            if _drift_is_breaking(d, handling):
                drifted = [f.asset_key] if f.asset_key in graph else keys
                tabs = tables_of(drifted)
                aid = action_id("resync_table", conn, tabs, f.failure_id)
                actions.append(Action(
                    action_id=aid, type=ActionType.resync_table.value, connector=conn,
                    tables=tabs, asset_keys=tuple(drifted),
                    reason=(f"schema drift on {', '.join(drifted)} that the connector's schema-change "
                            f"setting ({handling or 'default'}) does not absorb: resync "
                            f"{sum(len(t) for t in tabs.values())} table(s) only"),
                    priority=priority_for(None, _tier(resolution, drifted[0]), cfg),
                    estimated_cost_usd=round(sum(cost_asset.get(k, 0.0) for k in drifted), 4),
                ))
                links[aid] = (f.failure_id,)
                blocked.update(drifted)
                continue
        backoff = cfg.backoff.get(cat) or cfg.backoff.get("unknown") or Backoff(300)
        n = attempts.get(subject, 1)
        if n > backoff.max_attempts:
            blocked.update(keys)
            escalations.append(Escalation(subject, cat, owners,
                                          f"{cat} on {subject}: {n} failures since the last success "
                                          f"(max {backoff.max_attempts} retries)", f.failure_id))
            continue
        delay = min(backoff.cap_s, backoff.base_s * backoff.factor ** (n - 1))
        for text in (f.message, *d.evidence):
            m = _RETRY_AFTER.search(text or "")
            if m:
                delay = max(delay, min(backoff.cap_s, float(m.group(1))))
        not_before = _aware(f.at) + timedelta(seconds=delay)
        if conn and conn in syncing:
            notes.append(f"{subject}: a sync is already running, no retry")
            continue
        retry_groups.append({
            "keys": keys, "not_before": not_before if not_before > now else None,
            "failure": f.failure_id, "connector": conn, "category": cat, "attempt": n,
            "partitions": (f.partition,) if f.partition and f.asset_key and graph.node(f.asset_key).partitioning else (),
        })

    # -- freshness -------------------------------------------------------------------------------
    urgent = [
        fa for fa in assessment.freshness.values()
        if fa.status in (FreshnessStatus.at_risk, FreshnessStatus.breached) and fa.asset_key in graph
    ]
    urgent.sort(key=lambda fa: (fa.slack_s if fa.slack_s is not None else float("inf"),
                                -_TIER_RANK.get(_tv(fa.tier), 1), fa.asset_key))
    want: dict[str, tuple[float | None, str]] = {}  # key -> (slack, tier) of the most urgent need
    targets: dict[str, str] = {}
    for fa in urgent:
        for k in _path(graph, resolution, fa.blocking_asset, fa.asset_key):
            if k in blocked:  # broken upstream: running what is below it would not help
                notes.append(f"{fa.asset_key}: blocked by {k}")
                break
            if k not in want:
                want[k] = (fa.slack_s, _tv(fa.tier))
                targets[k] = fa.asset_key

    # queued runs: re-prioritise (cancel + re-submit) when they hold urgent keys at a lower priority
    for run in sorted(queued, key=lambda r: r.run_id):
        hit = [k for k in run.asset_keys if k in want]
        if not hit:
            continue
        slack = min((want[k][0] for k in hit if want[k][0] is not None), default=None)
        tier = max((want[k][1] for k in hit), key=lambda t: _TIER_RANK.get(t, 1))
        new_p = priority_for(slack, tier, cfg)
        for k in run.asset_keys:
            want.pop(k, None)
        if new_p - run.priority < cfg.reprioritize_margin:
            continue
        aid = action_id("reprioritize", run.run_id, new_p)
        actions.append(Action(
            action_id=aid, type=ActionType.materialize.value, asset_keys=tuple(run.asset_keys),
            partitions=tuple(run.partitions), run_id=run.run_id, priority=new_p,
            reason=(f"re-prioritise queued run {run.run_id} from {run.priority} to {new_p} "
                    f"(least slack first; Dagster reads priority only at dequeue, so cancel and re-submit)"),
            estimated_cost_usd=round(sum(cost_asset.get(k, 0.0) for k in run.asset_keys), 4),
        ))
    for k in list(want):
        if k in running or k in blocked:
            want.pop(k)

    # merge overlapping needs with the retries into runs
    groups = _Groups()
    for k in want:
        groups.find(k)
    for rg in retry_groups:
        if not rg["partitions"]:
            groups.union(rg["keys"])
    # a path's keys belong together: union each key with its neighbour on the same target path
    by_target: dict[str, list[str]] = {}
    for k, t in targets.items():
        if k in want:
            by_target.setdefault(t, []).append(k)
    for ks in by_target.values():
        groups.union(ks)
    # connect needs that are direct children of a retried subject (downstream waits for the retry)
    retry_keys = {k for rg in retry_groups if not rg["partitions"] for k in rg["keys"]}
    for k in want:
        node = graph.node(k)
        hits = [u for u in node.upstream if u in retry_keys]
        if hits:
            groups.union([k, *hits])

    members: dict[str, list[str]] = {}
    for k in list(want) + sorted(retry_keys):
        members.setdefault(groups.find(k), [])
        if k not in members[groups.find(k)]:
            members[groups.find(k)].append(k)
    retry_of_root: dict[str, list[dict]] = {}
    for rg in retry_groups:
        if rg["partitions"]:
            continue
        retry_of_root.setdefault(groups.find(rg["keys"][0]), []).append(rg)

    burning = _burning_assets(assessment, resolution, graph)
    order = {k: i for i, k in enumerate(graph.topological_order())} if members else {}
    for root, keys in members.items():
        keys = sorted(set(keys), key=lambda k: order.get(k, 0))
        slack = min((want[k][0] for k in keys if k in want and want[k][0] is not None), default=None)
        tiers = {want[k][1] if k in want else _tier(resolution, k) for k in keys}
        tier = max(tiers, key=lambda t: _TIER_RANK.get(t, 1))
        prio = priority_for(slack, tier, cfg)
        cost = round(sum(cost_asset.get(k, 0.0) for k in keys), 4)
        rgs = retry_of_root.get(root, [])
        if rgs:
            keys = [k for k in keys if not graph.node(k).partitioning] or keys
            nb = max((rg["not_before"] for rg in rgs if rg["not_before"]), default=None)
            fids = tuple(sorted(rg["failure"] for rg in rgs))
            conns = sorted({rg["connector"] for rg in rgs if rg["connector"]})
            cost += round(sum(cost_connector.get(c, 0.0) for c in conns), 4)
            what = "; ".join(
                f"{rg['category']} on {rg['connector'] or rg['keys'][0]} (attempt {rg['attempt']})" for rg in rgs
            )
            aid = action_id("retry", keys, fids)
            actions.append(Action(
                action_id=aid, type=ActionType.retry.value, asset_keys=tuple(keys),
                connector=conns[0] if len(conns) == 1 else None, priority=prio, not_before=nb,
                reason=(f"retry after {what}" + (f", not before {nb:%H:%M} UTC (backoff)" if nb else "")
                        + (": a new connector sync, not a re-run of the failed run" if conns else "")
                        + (f"; {len(keys)} assets incl. downstream at risk" if len(keys) > 1 else "")),
                estimated_cost_usd=cost,
            ))
            links[aid] = fids
            continue
        part_keys = [k for k in keys if graph.node(k).partitioning]
        if part_keys:  # freshness of a daily-partitioned asset = its latest complete day
            keys = [k for k in keys if k not in part_keys]
            day = ((now - timedelta(days=1)).astimezone(UTC).date().isoformat(),)
            paid = action_id("materialize", part_keys, day)
            actions.append(Action(
                action_id=paid, type=ActionType.materialize.value, asset_keys=tuple(part_keys),
                partitions=day, priority=prio, estimated_cost_usd=round(sum(cost_asset.get(k, 0.0) for k in part_keys), 4),
                reason=f"partitioned asset(s) on an at-risk path: run the latest day {day[0]}",
            ))
            if not keys:
                continue
            cost = round(sum(cost_asset.get(k, 0.0) for k in keys), 4)
        worst = min((k for k in keys if k in want), default=keys[0],
                    key=lambda k: (want[k][0] if want[k][0] is not None else float("inf")))
        target = targets.get(worst, worst)
        fa = assessment.freshness.get(target)
        status = fa.status.value if fa else "at_risk"
        atype, nb = ActionType.materialize, None
        reason = (f"{target} is {status.replace('_', ' ')}"
                  + (f" (slack {int(slack // 60)} min)" if slack is not None else "")
                  + f": run {len(keys)} asset(s) on its critical path now")
        if tiers <= cfg.deferrable_tiers and burning.intersection(keys):
            sla = resolution.sla(keys[0]) if resolution is not None else None
            if sla is not None and sla.off_peak_at(now) is None:
                opens = sla.next_off_peak(now)
                dur = sum(model.seconds(graph.node(k)) for k in keys)
                fits = opens is not None and (slack is None or slack - (opens - now).total_seconds() >= 0)
                if opens is not None and fits:
                    atype, nb = ActionType.defer, opens
                    reason = (f"budget burning and {target} is {tier}-tier: defer {len(keys)} asset(s) "
                              f"to the off-peak window at {opens:%Y-%m-%d %H:%M} UTC "
                              f"(predicted {int(dur // 60)} min, deadline still met)")
        aid = action_id(atype.value, keys, target, fa.deadline if fa else None, nb)
        actions.append(Action(
            action_id=aid, type=atype.value, asset_keys=tuple(keys), priority=prio,
            not_before=nb, reason=reason, estimated_cost_usd=cost,
        ))

    # partitioned retries stay single-partition runs
    for rg in retry_groups:
        if not rg["partitions"]:
            continue
        key = rg["keys"][0]
        aid = action_id("retry", key, rg["partitions"], rg["failure"])
        actions.append(Action(
            action_id=aid, type=ActionType.retry.value, asset_keys=(key,), partitions=rg["partitions"],
            priority=priority_for(None, _tier(resolution, key), cfg), not_before=rg["not_before"],
            reason=f"retry partition {rg['partitions'][0]} of {key} after {rg['category']} (attempt {rg['attempt']})",
            estimated_cost_usd=round(cost_asset.get(key, 0.0), 4),
        ))
        links[aid] = (rg["failure"],)

    actions.sort(key=lambda a: (-a.priority, a.not_before or now, a.action_id))
    n_run = sum(1 for a in actions if a.type in ("materialize", "retry", "backfill", "defer"))
    rationale = (f"{len(urgent)} target(s) at risk or breached, {len(latest)} failing subject(s); "
                 f"{n_run} run(s) proposed least-slack-first, {len(escalations)} escalation(s)")
    if notes:
        rationale += "; " + "; ".join(notes[:10])
    return AgentPlan(created_at=now, actions=actions, planner="deterministic", rationale=rationale,
                     escalations=escalations, failure_links=links)
