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
   * ``schema_drift``: a change the connector's schema-change setting absorbs (a message that
     names an added column, under ALLOW_ALL/ALLOW_COLUMNS, Fivetran's default) is retried once;
     anything else — a type change, dropped or renamed column, a mismatch the message does not
     identify as an added column, anything under BLOCK_ALL, or drift that fails again after the
     retry — gets a table-level ``resync_table`` of exactly the drifted tables.
   * partitioned assets failing on several partitions: ``backfill`` = those partitions x the
     partitioned downstream closure, nothing more.
   * ``upstream_delay``: nothing (wait for the upstream); ``code_error`` / ``data_quality`` and
     non-transient ``unknown``: escalate only.

2. **Freshness** (proactive, see ``_Cycles``): every governed asset works for a deadline cycle
   (its data must be newer than the window's opening, and than the cycles of consumers opening
   before its own latest start). Assets already fresh for it are never re-run. A model whose
   inputs are all fresh for the cycle starts now (unless an off-peak window of its policy opens
   before its latest start); a connector sync waits for the connector's own schedule until its
   latest start (now + slack) falls before the next planning cycle + a safety margin
   (``tick_interval_s`` + max(``min_margin_s``, the remaining critical path's p90 - p50 spread)).
   At-risk or breached targets also get the path from their blocking asset. No step starts while
   an input is being rebuilt by another run, is failing, or is stale and not in the same run.
   Connected needs merge into one run (split upstream-first at ``max_run_assets``), so a
   downstream model never races its upstream in another run. Keys already running are left out;
   keys in a *queued* run with a lower priority are re-prioritised: one ``materialize`` action
   carrying the queued ``run_id``, which the execution sensor carries out by re-tagging the
   queued run's ``dagster/priority`` (the queue daemon reads run tags at every dequeue). A retry re-runs only
   what failed; what depends on it follows once it has landed.

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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from orchestrator.core.graph import CONNECTOR_TABLE, DBT_SOURCE, AssetGraph
from orchestrator.core.pricing import CostHistory
from orchestrator.core.records import (
    Action,
    Assessment,
    DiagnosedFailure,
    FreshnessStatus,
    RunStatus,
    Snapshot,
)
from orchestrator.planning.common import aware as _aware
from orchestrator.planning.common import (
    ESCALATE_CATEGORIES,
    UTC,
    AgentPlan,
    Escalation,
    action_id,
    tables_of,
)
from orchestrator.planning.native_queue import ScheduledSyncQueue
from orchestrator.core.vocab import DEFAULT_BACKOFF, ESCALATE_ONLY, NO_ACTION, ActionType, Backoff, FailureClass
from orchestrator.policies import DurationModel

__all__ = ["DEFAULT_BACKOFF", "Backoff", "PlannerConfig", "plan", "priority_for"]

# Schema changes a connector's own setting absorbs (Fivetran schema_change_handling).
ABSORBS_NEW_COLUMNS = frozenset({"ALLOW_ALL", "ALLOW_COLUMNS"})
_BREAKING_DRIFT = re.compile(
    r"(?i)(type\s*change|changed?\s+(?:the\s+)?type|incompatible|cannot\s+cast|dropped|drop_column|"
    r"removed\s+column|column\s+\S+\s+(?:was\s+)?(?:removed|deleted|renamed)|rename|"
    r"primary\s+key\s+changed|to_type)"
)
_ADDED_COLUMN = re.compile(
    r"(?i)(new\s+(?:column|field)s?|(?:column|field)s?\s+\S+\s+(?:was\s+|were\s+)?added|added\s+(?:a\s+)?(?:new\s+)?(?:column|field))"
)
_RETRY_AFTER = re.compile(r"(?i)retry[- ]after[\"':= ]+(\d{1,6})")
_TIER_RANK = {"critical": 3, "high": 2, "standard": 1, "low": 0}


@dataclass
class PlannerConfig:
    backoff: Mapping[str, Backoff] = field(default_factory=lambda: dict(DEFAULT_BACKOFF))
    deferrable_tiers: frozenset[str] = frozenset({"low"})
    slack_bucket_s: float = 300.0
    priority_cap: int = 99  # |slack buckets| are clipped to this
    # work for a deadline ranks above the deployment's routine traffic (dagster/priority 0: the
    # connectors' own scheduled syncs, untagged runs): True lifts every slack-ranked priority above
    # 0, least slack first among them. Ranked from -396 up, work with slack queued behind every
    # scheduled sync of a busy source -- never re-ranked where re-prioritising needs approval, it
    # waited 46 h while holding its deadline's lineage (generated world 13031)
    deadline_work_first: bool = True
    reprioritize_margin: int = 1  # re-submit a queued run only when the gain is at least this
    # connector -> Fivetran schema_change_handling (ALLOW_ALL | ALLOW_COLUMNS | BLOCK_ALL)
    schema_change_handling: Mapping[str, str] = field(default_factory=dict)
    max_backfill_partitions: int = 31
    # proactive planning: work whose latest start (deadline - predicted remaining path) falls
    # before the next planning cycle + a safety margin starts now
    tick_interval_s: float = 300.0  # how often the planner runs (the planning sensor's interval)
    min_margin_s: float = 300.0  # safety margin at least this ...
    spread_quantile: float = 0.5  # ... or the path's duration spread: sum of (p90 - this quantile)
    cost_aware_start: bool = True  # work that could start early waits for a cheaper (off-peak) window
    # a pre-authorised sync whose cycle is open waits for the connector's own scheduled sync only
    # when that one starts within this share of the time to its latest start (``native_wait_until``;
    # None: up to the latest start, as before). Off by default: on seeds 13000-13039 (0.5) it won
    # worlds 13006, 13008, 13021 and lost none, on 100-119 none either way, but on seeds 700-799 it
    # won 5 worlds and lost 7 (723, 736, 746: early syncs failed into a recurring fault window)
    native_wait_share: float | None = None
    native_wait_min_s: float = 3600.0  # ... or within this long of now (a short exposure to a fault)
    # a schema-drift resync (full price) only of a connector some deadline reads; the drift of
    # one no deadline reads is escalated to the owners, not resynced
    resync_when_needed: bool = True
    # ... and, for tables a deadline reads, waits for the window of the cycle that needs them to
    # open (a person may fix the drift first). Off: a resync is also the drift's fix, and a fault
    # arriving while it waits (an expired credential) can leave no time (worlds 14027, 14038, 14044)
    resync_waits_for_window: bool = False
    # a connector's own scheduled sync still queued for a slot of its source is not counted on
    # (``orchestrator.planning.native_queue``). On seeds 14000-14199 it won 18 worlds and lost 3,
    # on 16000-16099 won 7 and lost 4 (mean +1.6 points), on 100-119 lost world 112 (an extra
    # sync queued the source's other connector behind two syncs; tests/test_planner_loss_worlds.py)
    queued_native_aware: bool = True
    # a retry that would wait for a person, of a failure that clears by itself, on assets no
    # deadline cycle needs now, is not proposed (``_unneeded_rerun``: issue 11's approvals target)
    unneeded_reruns_unasked: bool = True
    # a fault a re-run resolves that came yesterday at an hour between a lineage's latest start and
    # its deadline: the latest start moves earlier by the time that fault took to clear plus one
    # run of the failed asset, room for a retry after it (``orchestrator.planning.fault_reserve``)
    fault_reserve: bool = True
    max_run_assets: int = 200  # larger runs are split upstream-first (validation's limit)
    # the early warning's pre-emptive action kinds allowed (orchestrator.health.early.KINDS; None: all)
    preempt_kinds: frozenset[str] | None = None
    # capacity (None: unknown, treated as unlimited): concurrent model steps the warehouse runs
    # (dbt threads / the run queue's concurrency limit), and concurrent syncs per connector pool
    # (``connector_pools``: connector -> pool name; ``pool_slots``: pool -> slots; a connector in
    # no pool is not limited). Under contention the work due before a deadline queues: its latest
    # start moves earlier by the queueing (see ``_Cycles.capacity_slack``)
    warehouse_slots: int | None = None
    connector_pools: Mapping[str, str] = field(default_factory=dict)
    pool_slots: Mapping[str, int] = field(default_factory=dict)
    model_pools: Mapping[str, str] = field(default_factory=dict)  # model -> another warehouse pool


def _tv(x) -> str:
    return str(getattr(x, "value", x))


def priority_for(slack_s: float | None, tier: str, config: PlannerConfig | None = None) -> int:
    """``dagster/priority`` for work with this slack: less slack, higher priority. Work with no
    deadline (``slack_s`` None) ranks lowest; with ``deadline_work_first`` every deadline's work
    ranks above the routine traffic at priority 0 (:func:`deadline_priority_floor`)."""
    cfg = config or PlannerConfig()
    rank = _TIER_RANK.get(_tv(tier), 1)
    if slack_s is None:
        return -cfg.priority_cap * 4 + rank
    buckets = int(-slack_s // cfg.slack_bucket_s)
    buckets = max(-cfg.priority_cap, min(cfg.priority_cap, buckets))
    return buckets * 4 + rank + deadline_priority_floor(cfg)


def deadline_priority_floor(config: PlannerConfig | None = None) -> int:
    """What lifts slack-ranked priorities above 0 (the lowest then ranks 1), or 0 when
    ``deadline_work_first`` is off."""
    cfg = config or PlannerConfig()
    return cfg.priority_cap * 4 + 1 if cfg.deadline_work_first else 0


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
    between = graph.between(blocker, target)
    return [blocker, *sorted(between), target]


def _cost_per_asset(snapshot: Snapshot, history: CostHistory | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """(asset -> mean spend of a run, connector -> mean sync), read-only: ``history``'s (the
    cycle's) when given."""
    history = CostHistory.of(snapshot, history)
    return history.run_mean, history.sync_mean


class _Burning:
    """The assets a burning budget covers (forecast over budget, or a spike), read by membership:
    a burning policy's governed set itself, not a copy of it each cycle (a third of the fleet on
    ``benchmarks/bench_decide.py``'s bad day, for a check made per run)."""

    def __init__(self, covered: list):
        self._covered = covered  # sets (a policy's governed set, a group's keys, one asset)

    def intersects(self, keys: Iterable[str]) -> bool:
        keys = tuple(keys)
        return any(k in s for s in self._covered for k in keys)


def _burning_assets(assessment: Assessment, resolution, graph: AssetGraph) -> _Burning:
    covered: list = []
    for c in assessment.cost:
        if not (c.over_budget or c.spike):
            continue
        kind, _, name = c.scope.partition(":")
        if kind == "policy" and resolution is not None:
            covered.append(resolution.governed_by(name))
        elif kind == "group":
            covered.append(frozenset(graph.group_keys(name)))
        elif kind == "asset":
            covered.append(frozenset((name,)))
    return _Burning(covered)


def _drift_is_breaking(d: DiagnosedFailure, handling: str | None, attempt: int = 1) -> bool:
    """Whether the connector's schema-change setting will *not* absorb this drift: BLOCK_ALL, a
    breaking change (type change, dropped/renamed column...), a change the message does not
    identify as an added column, or drift that failed again after a retry (it was not absorbed)."""
    text = " ".join([d.failure.message, *d.evidence])
    if handling == "BLOCK_ALL" or attempt > 1:
        return True
    if _BREAKING_DRIFT.search(text):
        return True
    if handling is not None and handling not in ABSORBS_NEW_COLUMNS:
        return True
    return not _ADDED_COLUMN.search(text)


def _pending_keys(snapshot: Snapshot, waiting: frozenset[str] = frozenset()) -> set[str]:
    """Keys an in-flight run (or a running connector sync) is still rebuilding: not yet
    materialized since the run was created. ``waiting``: run ids of the connectors' own scheduled
    syncs still queued for a source slot (``ScheduledSyncQueue``): they rebuild nothing yet."""
    last = snapshot.last_success
    out: set[str] = set()
    for run in snapshot.runs:
        if not run.status.in_flight or run.run_id in waiting:
            continue
        since = _aware(run.created_at)
        for k in run.asset_keys:
            ls = last.get(k)
            if ls is None or _aware(ls) < since:
                out.add(k)
    for sync in snapshot.syncs:
        if sync.status == "running":
            since = _aware(sync.started_at)
            for k in sync.tables:
                ls = last.get(k)
                if ls is None or _aware(ls) < since:
                    out.add(k)
    return out


def _preauthorised(resolution, keys, types) -> bool:
    """Every key's policy runs these action types without approval (and, for a key no policy
    selects directly, every deadline policy reaching it does)."""
    if resolution is None:
        return False
    for k in keys:
        sla = resolution.sla(k)
        if sla is None or not all(sla.may_run_without_approval(t) for t in types):
            return False
        if not sla.policies:
            for name in sla.propagated_from:
                try:
                    p = resolution.policy(name)
                except Exception:  # noqa: BLE001
                    return False
                if getattr(p.rollout, "value", p.rollout) != "auto" or not all(t in p.auto_approve for t in types):
                    return False
    return True


def _awaiting_keys(incidents, last_success: Mapping[str, datetime] | None = None) -> set[str]:
    """Keys of runs waiting for a person's approval (ledger status ``pending``, or ``approved``
    and not launched yet): they are not
    asked again in a new shape while the question is open, and what reads them waits. A retry
    whose keys have landed since it was asked (``last_success``: e.g. the connector's own sync
    cleared the failure it was asked for) holds nothing back any more: the failure is over, the
    answer would only run them again, and waiting for it cost a whole cycle (world 405). Work
    asked for a deadline cycle keeps holding its keys (it may be the refresh that cycle needs)."""
    ledger = getattr(incidents, "ledger", None)
    if ledger is None:
        return set()
    last = last_success or {}
    out: set[str] = set()
    for e in ledger.entries.values():
        if e.status not in ("pending", "approved"):  # approved: not launched yet
            continue
        t = ActionType.parse(e.action.type)
        if t is ActionType.retry:
            asked = _aware(e.at)
            out.update(k for k in e.action.asset_keys
                       if (ls := last.get(k)) is None or _aware(ls) <= asked)
        elif t is not None and t.starts_run:
            out.update(e.action.asset_keys)
    return out


def _deferred_keys(incidents, now: datetime) -> dict[str, datetime]:
    """Keys of runs asked or approved to start later (``not_before`` after ``now``, not launched):
    key -> the earliest such start. Such a run serves the cycle it was asked for; an earlier
    cycle that needs the key before then is planned on its own (it is not waiting for it)."""
    ledger = getattr(incidents, "ledger", None)
    if ledger is None:
        return {}
    out: dict[str, datetime] = {}
    now_keys: set[str] = set()  # also held by work that may start now: not deferred
    for e in ledger.entries.values():
        if e.status not in ("pending", "approved"):
            continue
        t = ActionType.parse(e.action.type)
        if t is None or not t.starts_run:
            continue
        nb = _aware(e.action.not_before) if e.action.not_before is not None else None
        if nb is None or nb <= now:
            now_keys.update(e.action.asset_keys)
            continue
        for k in e.action.asset_keys:
            if k not in out or nb < out[k]:
                out[k] = nb
    return {k: nb for k, nb in out.items() if k not in now_keys}


class _Cycles:
    """Deadline cycles of the governed assets, for proactive planning.

    For every asset the assessment covers with a deadline: the cycle it works for (the target
    tick of its winning deadline; the missed one while breached) opens ``window`` before that
    tick; data must be newer than that. An input must also be newer than the cycles of the
    consumers it feeds whose windows open before its own latest start (so one refresh serves
    them all). ``needs``: stale for that, or an input is. Its latest start is now + slack (the
    assessment's slack: effective deadline - predicted ready, p90 durations); it is *due* when the
    latest start falls before the next planning cycle + a safety margin (at least
    ``min_margin_s``, or the duration spread of its remaining critical path).
    """

    standing = None  # orchestrator.core.standing.StandingCover (set by the stage)
    native_queue = None  # orchestrator.planning.native_queue.ScheduledSyncQueue (set by the stage)

    def __init__(self, snapshot, assessment, resolution, model, now, cfg, topo_index):
        self.graph = snapshot.graph
        self.assessment = assessment
        self.resolution = resolution
        self.model = model
        self.now = now
        self.cfg = cfg
        self.needs: dict[str, bool] = {}
        self.req: dict[str, datetime] = {}
        self._spread: dict[str, float] = {}
        self._p_low: DurationModel | None = None
        self.opens: dict[str, datetime] = {}
        self.dts: dict[str, datetime] = {}
        self.native: dict[str, str] = dict(getattr(snapshot, "connector_schedules", None) or {})
        self._syncs = getattr(snapshot, "syncs", None) or ()
        self._snapshot = snapshot
        self._failed_native: dict[str, list[datetime]] | None = None  # connector -> its failed scheduled syncs' starts
        self.via: dict[str, float] = {}
        slas = getattr(resolution, "slas", None) or {}
        self._blackouts = any(getattr(sla, "blackout", ()) for sla in slas.values())
        if resolution is None or not getattr(resolution, "ok", True) or not assessment.freshness:
            self.keys: list[str] = []
            return
        graph = self.graph
        fresh = assessment.freshness
        self.keys = sorted((k for k in fresh if k in graph), key=lambda k: topo_index.get(k, 0))
        opens: dict[str, datetime] = {}
        windows: dict[str, timedelta] = {}
        for k in self.keys:
            fa = fresh[k]
            sla = resolution.sla(k)
            dl = sla.deadline if sla is not None else None
            if dl is None or fa.deadline is None or (fa.policy is not None and fa.policy != dl.policy):
                continue
            w = windows.get(dl.policy)
            if w is None:
                try:
                    policy = resolution.policy(dl.policy)
                    w = windows[dl.policy] = policy.deadline.effective_window(policy.schedule())
                except Exception:  # noqa: BLE001 - an odd policy only disables proactive work
                    continue
            tick = _aware(fa.deadline) + dl.lead
            if fa.status is FreshnessStatus.breached and tick < now:
                # a lost cycle is not chased: when a later cycle of the policy has opened, data
                # fresh for it serves that cycle (and the lost one); plan for the newest open one
                tick = self._newest_open_tick(resolution, dl.policy, tick, w, now)
            opens[k] = tick - w
        from orchestrator.core.datatime import data_times

        dts, _ = data_times(snapshot)  # fresh for a cycle = data time >= the window's opening
        self.dts = dts
        # required freshness: own cycle, and consumers' cycles opening before the latest start
        req: dict[str, datetime] = {}
        via = self.via  # key -> slack (s) of the consumers whose later cycle it works for
        children = graph.children
        for k in reversed(self.keys):
            own = r = opens.get(k)
            later = [(rc, c) for c in children(k) if (rc := req.get(c)) is not None and (r is None or rc > r)]
            if later:
                # its own cycle already served (its data is newer than that opening): it now works
                # for the consumers' later cycles, whatever its own slack says
                served = own is not None and (dt := dts.get(k)) is not None and _aware(dt) >= own
                lst = self.latest_start(k)
                for_consumers = served or lst is None
                if for_consumers:
                    lst = self._consumers_latest_start(later)
                # only a later cycle whose data can reach ``k`` by its latest start: a sync
                # started at that opening (or now) and the chain down to ``k`` must fit before
                # it, else ``k`` would wait for data that cannot come in time for its own cycle
                up = timedelta(seconds=self.upstream_s(k))
                reachable = [rc for rc, _c in later if lst is None or max(rc, now) + up <= lst]
                if reachable:
                    r = max(reachable)
                elif for_consumers:
                    r = min(rc for rc, _c in later)  # the next cycle, even if it is already tight
                if r is not None and r != own:
                    # working for a consumer's cycle: its latest start is that consumer's, not the
                    # one of its own (already served or later) cycle
                    vs = [s for rc, c in later if rc <= r and (s := self.slack(c)) is not None]
                    if vs:
                        via[k] = min(vs)
            if r is not None:
                req[k] = r
        self.req = req
        self.opens = opens
        needs = self.needs
        for k in self.keys:
            r = req.get(k)
            ls = dts.get(k)
            stale = r is not None and (ls is None or _aware(ls) < r)
            needs[k] = stale or any(self.holds(u, k) for u in graph.parents(k))

    def _consumers_latest_start(self, later) -> datetime | None:
        """The latest start of an input working for its consumers' cycles (``later``: ``(cycle
        opening, consumer)`` pairs) -- one without a slack of its own (a connector table under a
        policy with no deadline), or whose own cycle its data already serves: that of its most
        urgent consumer. Without it every consumer cycle counted as reachable and the input worked
        for the latest one -- days ahead past a weekend and a holiday -- leaving the open cycle of
        another consumer to a sync at its latest start, on p90 estimates (world 13008)."""
        slacks = [s for _rc, c in later if (s := self.slack(c)) is not None]
        return self.now + timedelta(seconds=min(slacks)) if slacks else None

    def holds(self, u: str, k: str) -> bool:
        """Input ``u`` needs a run that ``k`` must wait for: ``u`` needs one and its data is not
        already fresh for ``k``'s cycle. An input refreshed only for a later cycle (a consumer's or
        tomorrow's, whose window has not opened) does not hold back ``k``'s earlier one."""
        if not self.needs.get(u, False):
            return False
        r, dt = self.req.get(k), self.dts.get(u)
        return r is None or dt is None or _aware(dt) < r

    def _newest_open_tick(self, resolution, policy_name: str, tick: datetime, window: timedelta,
                          now: datetime) -> datetime:
        """The latest tick of ``policy_name`` after ``tick`` whose window has opened by ``now``
        (``tick`` when none has)."""
        memo = self.__dict__.setdefault("_newest", {})
        key = (policy_name, tick)
        hit = memo.get(key)
        if hit is None:
            hit = tick
            try:
                schedule = resolution.policy(policy_name).schedule()
                later = [t for t in schedule.ticks(tick + timedelta(seconds=1), now + window)
                         if _aware(t) - window <= now]
                if later:
                    hit = _aware(max(later))
            except Exception:  # noqa: BLE001 - an odd schedule: keep the assessed cycle
                hit = tick
            memo[key] = hit
        return hit

    def upstream_s(self, k: str) -> float:
        """Seconds from a new sync's start to ``k``'s inputs all landing: the longest chain of
        its ancestors (p90 durations), ``k`` itself not included."""
        memo = self.__dict__.setdefault("_up", {})
        if k in memo:
            return memo[k]
        graph, model = self.graph, self.model
        stack = [k]
        while stack:
            cur = stack[-1]
            todo = [p for p in graph.parents(cur) if p not in memo]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            if cur in memo:
                continue
            best = 0.0
            for p in graph.parents(cur):
                node = graph.get(p)
                try:
                    own = model.seconds(node) if node is not None else 0.0
                except Exception:  # noqa: BLE001 - no estimate: nothing
                    own = 0.0
                best = max(best, memo[p] + own)
            memo[cur] = best
        return memo[k]

    def fresh_for(self, k: str, target: str) -> bool:
        """``k``'s data is newer than the opening of ``target``'s cycle (the one it is assessed for)."""
        opening = self.opens.get(target)
        dt = self.dts.get(k)
        return opening is not None and dt is not None and _aware(dt) >= opening

    def latest_start(self, k: str) -> datetime | None:
        fa = self.assessment.freshness.get(k)
        if fa is None or fa.slack_s is None:
            return None
        return self.now + timedelta(seconds=self.slack(k))

    def slack(self, k: str) -> float | None:
        """The assessment's slack, less what a blackout window on the way to the target takes
        (work that cannot run through a blackout before the deadline must be done before it), and
        no more than the capacity slack (the queueing of the work due with it, ``capacity_slack``)."""
        fa = self.assessment.freshness.get(k)
        if fa is None or fa.slack_s is None:
            return self.via.get(k)
        cut = self.blackout_cut(k)
        own = fa.slack_s - cut if cut and fa.slack_s - cut >= 0 else fa.slack_s
        reserve = self.fault_reserve(k, own)
        own -= reserve
        v = self.via.get(k)  # a consumer's slack: its reserve is in it already
        own = own if v is None or v >= own else v
        cap = self.capacity_slack().get(k)
        cap = None if cap is None else cap - reserve
        return own if cap is None or cap >= own else cap

    def fault_reserve(self, k: str, slack_s: float) -> float:
        """Seconds ``k``'s latest start (now + ``slack_s``) moves earlier because a fault on its
        lineage that a re-run resolves came yesterday at an hour between that start and its
        target's deadline: room for one retry after it clears (``orchestrator.planning.fault_reserve``)."""
        reserves = self.__dict__.get("_fault_reserves")
        if reserves is None:
            from orchestrator.planning.fault_reserve import FaultReserves

            graph, model = self.graph, self.model
            failures = self.assessment.failures if self.cfg.fault_reserve else ()
            reserves = self._fault_reserves = FaultReserves(
                failures, self._snapshot.materializations, graph,
                lambda key: model.seconds(graph.node(key)), self.cfg.backoff)
        if not reserves:
            return 0.0
        fa = self.assessment.freshness.get(k)
        if fa is None or fa.deadline is None:
            return 0.0
        sla = self.resolution.sla(k)
        lead = sla.deadline.lead if sla is not None and sla.deadline is not None else timedelta(0)
        return reserves.during(k, self.now + timedelta(seconds=slack_s), _aware(fa.deadline) + lead)

    def capacity_slack(self) -> dict[str, float]:
        """key -> seconds until the latest start that the capacity allows (only keys whose work
        queues; empty while the capacity is unknown or before ``needs`` is known).

        The critical path alone says when each step must start if it had a slot to itself. With
        ``warehouse_slots`` / ``pool_slots`` known, the steps that need a run for their cycles
        compete for the slots of their pool: in each pool, taken in order of latest finish
        (the asset's effective deadline, earliest first), the steps finishing by ``F`` need
        their summed (p90) durations / slots of pool time before ``F``; the pool must be working
        on them by ``F - that``, which bounds the latest start of every step in that batch. An
        input then must land before its consumer's latest start (minus its own duration). This
        is the demand bound of earliest-deadline-first scheduling: it moves work earlier only
        when the slots cannot fit it in later, never later than the critical path says."""
        hit = self.__dict__.get("_capacity")
        if hit is not None:
            return hit
        cfg = self.cfg
        if not self.needs or (cfg.warehouse_slots is None and not cfg.pool_slots):
            return {}
        from orchestrator.core.graph import DASHBOARD

        graph, model, fresh, now = self.graph, self.model, self.assessment.freshness, self.now
        units: dict[str, list] = {}  # unit -> [pool, duration, latest finish, keys]
        dur: dict[str, float] = {}
        for k in self.keys:
            if not self.needs.get(k):
                continue
            fa = fresh.get(k)
            node = graph.get(k)
            if fa is None or fa.deadline is None or node is None or node.role == DASHBOARD:
                continue
            conn = node.connector
            if conn:
                pool = cfg.connector_pools.get(conn)
                slots = cfg.pool_slots.get(pool) if pool is not None else None
                unit = f"connector:{conn}"
            else:
                pool = cfg.model_pools.get(k, "warehouse")
                slots = cfg.warehouse_slots if pool == "warehouse" else cfg.pool_slots.get(pool)
                unit = k
            try:
                d = dur[k] = max(0.0, float(model.seconds(node)))
            except Exception:  # noqa: BLE001 - no estimate: no demand
                continue
            if not slots or slots < 1:
                continue
            finish = _aware(fa.deadline)
            u = units.get(unit)
            if u is None:
                units[unit] = [pool, d, finish, [k]]
            else:  # a connector's tables: one sync, due by its earliest table's deadline
                u[1] = max(u[1], d)
                u[2] = min(u[2], finish)
                u[3].append(k)
        by_pool: dict[str, list] = {}
        for u in units.values():
            by_pool.setdefault(u[0], []).append(u)
        latest: dict[str, datetime] = {}
        for pool, items in by_pool.items():
            slots = cfg.warehouse_slots if pool == "warehouse" else cfg.pool_slots.get(pool)
            if not slots or len(items) <= slots:
                continue  # every step has a slot: no queueing
            items.sort(key=lambda u: u[2])
            bounds, acc = [], 0.0
            for u in items:
                acc += u[1]
                bounds.append(u[2] - timedelta(seconds=acc / slots))
            low = None
            for u, b in zip(reversed(items), reversed(bounds)):
                low = b if low is None or b < low else low
                for k in u[3]:
                    latest[k] = low
        if not latest:
            self._capacity = {}
            return self._capacity
        # an input lands before its consumer's latest start
        children = graph.children
        for k in reversed(self.keys):
            if k not in dur:
                continue
            for c in children(k):
                lc = latest.get(c)
                if lc is not None:
                    lk = lc - timedelta(seconds=dur[k])
                    if k not in latest or lk < latest[k]:
                        latest[k] = lk
        self._capacity = {k: (t - now).total_seconds() for k, t in latest.items()}
        return self._capacity

    def blackout_cut(self, k: str) -> float:
        """Seconds the deadline of ``k``'s target chain moves earlier because of a blackout window
        of an asset on the chain (``k`` itself, then each ``via``) that opens before that asset's
        deadline and either covers it or leaves too little time after it for the remaining work:
        the work must be done before the blackout opens."""
        if not self._blackouts:
            return 0.0
        memo = self.__dict__.setdefault("_cut", {})
        if k in memo:
            return memo[k]
        chain: list[str] = []
        cur: str | None = k
        while cur is not None and cur not in memo and len(chain) <= len(self.graph):
            chain.append(cur)
            sla = self.resolution.sla(cur)
            cur = sla.deadline.via if sla is not None and sla.deadline is not None else None
        acc = memo.get(cur, 0.0) if cur is not None else 0.0
        for j in reversed(chain):
            acc = max(acc, self._own_cut(j))
            memo[j] = acc
        return memo[k]

    def _own_cut(self, j: str) -> float:
        sla = self.resolution.sla(j)
        windows = getattr(sla, "blackout", ()) if sla is not None else ()
        fa = self.assessment.freshness.get(j)
        if not windows or fa is None or fa.deadline is None or fa.slack_s is None:
            return 0.0
        now, deadline = self.now, _aware(fa.deadline)
        opens = [t for w in windows if (t := w.next_open(now)) is not None]
        b0 = _aware(min(opens)) if opens else None
        if b0 is None or b0 <= now or b0 >= deadline:
            return 0.0
        b1, step = b0, timedelta(minutes=5)
        while b1 < deadline and any(w.contains(b1) for w in windows):
            b1 += step
        work = (deadline - now).total_seconds() - fa.slack_s  # the remaining path, started now
        if b1 < deadline and b1 + timedelta(seconds=max(0.0, work)) <= deadline:
            return 0.0  # the work fits after the blackout
        return (deadline - b0).total_seconds()

    def spread(self, k: str) -> float:
        """Duration spread of the remaining critical path from ``k`` to its target."""
        hit = self._spread.get(k)
        if hit is not None:
            return hit
        if self._p_low is None:
            m = self.model
            self._p_low = DurationModel(q=self.cfg.spread_quantile, priors=m.priors,
                                        min_samples=m.min_samples, max_samples=m.max_samples)
            self._p_low.history = m.history  # read-only: share the (already clipped) history
        chain: list[str] = []
        cur: str | None = k
        while cur is not None and cur not in self._spread and len(chain) <= len(self.graph):
            chain.append(cur)
            sla = self.resolution.sla(cur)
            cur = sla.deadline.via if sla is not None and sla.deadline is not None else None
        acc = self._spread.get(cur, 0.0) if cur is not None else 0.0
        for key in reversed(chain):
            node = self.graph.get(key)
            if node is not None:
                acc += max(0.0, self.model.seconds(node) - self._p_low.seconds(node))
            self._spread[key] = acc
        return self._spread[k]

    def due(self, k: str) -> bool:
        fa = self.assessment.freshness[k]
        if fa.status in (FreshnessStatus.at_risk, FreshnessStatus.breached):
            return True
        slack = self.slack(k)
        if slack is None:
            return False
        horizon = self.cfg.tick_interval_s
        if slack <= horizon + self.cfg.min_margin_s:
            return True
        # the spread never exceeds the remaining path's p90 total: skip the walk when far off
        sla = self.resolution.sla(k)
        node = self.graph.get(k)
        bound = (sla.deadline.lead.total_seconds() if sla is not None and sla.deadline is not None else 0.0) + (
            self.model.seconds(node) if node is not None else 0.0)
        if slack > horizon + bound:
            return False
        return slack <= horizon + max(self.cfg.min_margin_s, self.spread(k))

    def cheaper_later(self, k: str) -> bool:
        """An off-peak window of its policy opens before its latest start (minus the horizon)."""
        if not self.cfg.cost_aware_start:
            return False
        sla = self.resolution.sla(k)
        if sla is None or not sla.off_peak or sla.off_peak_at(self.now) is not None:
            return False
        opens = sla.next_off_peak(self.now)
        fa = self.assessment.freshness[k]
        if opens is None or fa.slack_s is None:
            return False
        spare = self.slack(k) - self.cfg.tick_interval_s - max(self.cfg.min_margin_s, self.spread(k))
        return (_aware(opens) - self.now).total_seconds() <= spare

    def native_lands(self, connector: str, after: datetime, by: datetime) -> bool | None:
        """The connector's own schedule starts a sync in [after, by] (None: schedule unknown): its
        next tick after ``after``, delayed by the wait its scheduled syncs have for a slot of
        their source (``ScheduledSyncQueue.lag``)."""
        cron = self.native.get(connector)
        if not cron:
            return None
        memo = self.__dict__.setdefault("_next_native", {})
        key = (connector, after)
        if key not in memo:  # one schedule walk per connector and cycle, not per table
            from orchestrator.core.datatime import next_cron_tick

            memo[key] = next_cron_tick(cron, after)
        tick = memo[key]
        if tick is not None and tick <= by and self.native_failed_day_before(connector, tick):
            return False
        if tick is not None and self.native_queue is not None:
            tick = tick + timedelta(seconds=self.native_queue.lag(connector))
        return None if tick is None else tick <= by

    def native_failed_day_before(self, connector: str, tick: datetime) -> bool:
        """The connector's own scheduled sync a day before ``tick`` (within 15 minutes) failed: not
        counted on to land this one (a daily fault at the source -- a nightly schema change, a
        maintenance window -- fails it again; waiting for it, a deadline then needed a table resync
        at 10x a sync's price every day where a sync before that slot ran clean: world 431)."""
        if self._failed_native is None:  # one pass over the sync records per cycle, not one per question
            self._failed_native = {}
            for s in self._syncs:
                if s.triggered_by == "schedule" and s.status == "failed":
                    self._failed_native.setdefault(s.connector, []).append(_aware(s.started_at))
        day_before = tick - timedelta(days=1)
        slack = timedelta(minutes=15)
        return any(abs(started - day_before) <= slack for started in self._failed_native.get(connector, ()))

    def ask_ahead(self, k: str) -> bool:
        """A connector table whose sync needs a person's approval (its policy does not
        pre-authorise a materialize) and that the connector's own schedule does not land before
        its latest start: ask now, as soon as its cycle is open, rather than at the latest start
        (an approval takes a while, longer at night). Unknown schedule: wait, as before."""
        node = self.graph.node(k)
        if not node.connector:
            return False
        sla = self.resolution.sla(k)
        if sla is not None and sla.may_run_without_approval(ActionType.materialize):
            return False
        if self.standing is not None and self.standing.covers_keys((k,)):
            return False  # a standing approval: refreshed when due, like pre-authorised work
        lst = self.latest_start(k)
        r = self.req.get(k)
        if lst is None or r is None:
            return False
        by = lst - timedelta(seconds=self.cfg.tick_interval_s + self.cfg.min_margin_s)
        lands = self.native_lands(node.connector, max(self.now, r), by)
        return lands is False

    def sync_early(self, k: str) -> bool:
        """A connector table the orchestrator may sync without asking (pre-authorised, or under a
        standing approval) whose cycle is open and that the connector's own schedule does not land
        before its latest start: sync it now rather than at the latest start (the same one sync,
        but the chain below it no longer races the deadline on p90 estimates). Unknown schedule,
        or an off-peak window before the latest start: wait, as before."""
        node = self.graph.node(k)
        if not node.connector:
            return False
        sla = self.resolution.sla(k)
        if sla is None or not (sla.may_run_without_approval(ActionType.materialize)
                               or (self.standing is not None and self.standing.covers_keys((k,)))):
            return False
        lst = self.latest_start(k)
        r = self.req.get(k)
        if lst is None or r is None or r > self.now or self.cheaper_later(k):
            return False
        by = lst - timedelta(seconds=self.cfg.tick_interval_s + self.cfg.min_margin_s)
        if self.cfg.native_wait_share is not None and self.budget_room(node.connector):
            by = self.native_wait_until(lst)
        return self.native_lands(node.connector, self.now, by) is False

    def budget_room(self, connector: str) -> bool:
        """Every budgeted policy governing one of the connector's tables has room today for one
        more sync of it: the sync's price, and those of the other syncs ahead of their connectors'
        own granted this cycle, within half of what its forecast leaves of the day's budget (the
        gate holds work taking more than that as large for the budget). The connector's
        own scheduled sync does not spend a policy's budget, a sync of ours does: one ahead of it
        must not push the work due later in the day over budget, to wait for a person (world 103:
        syncs ahead of their connectors' own, bundled with a budgeted model, waited all morning)."""
        memo = self.__dict__.setdefault("_budget_room", {})
        hit = memo.get(connector)
        if hit is None:
            names = {name for t in self.graph.connector_tables(connector)
                     if (sla := self.resolution.sla(t)) is not None for name, _b in sla.budgets}
            hit = True
            if names:
                from orchestrator.core.pricing import SyncPricer

                pricer = self.__dict__.get("_pricer")
                if pricer is None:
                    pricer = self._pricer = SyncPricer(self._snapshot)
                price = pricer.estimate(connector, self.now)
                reserved = self.__dict__.setdefault("_reserved", {})  # policy -> early syncs granted this cycle
                for c in self.assessment.cost:
                    kind, _, name = c.scope.partition(":")
                    if kind == "policy" and name in names and (
                            c.over_budget or (c.budget_day_usd is not None and reserved.get(name, 0.0) + price
                                              > 0.5 * (c.budget_day_usd - c.forecast_day_usd))):
                        hit = False
                        break
                if hit:
                    for name in names:
                        reserved[name] = reserved.get(name, 0.0) + price
            memo[connector] = hit
        return hit

    def native_wait_until(self, lst: datetime) -> datetime:
        """How late the connector's own sync may start and still be waited for, rather than a sync
        now (with room in the budgets that pay for it: ``budget_room``): before the latest start (less the
        planning horizon), and within ``native_wait_share`` of the time to it. A fault that arrives while waiting (a credential that expires, a
        deploy that breaks the source) fails that sync, and what is left before the latest start
        is then too short for a person's fix or a retry: a native sync late in the window cost the
        cycle where a sync at its opening met it (worlds 13006, 13008, 13021)."""
        cfg = self.cfg
        by = lst - timedelta(seconds=cfg.tick_interval_s + cfg.min_margin_s)
        if cfg.native_wait_share is None:
            return by
        share = self.now + max((lst - self.now) * cfg.native_wait_share, timedelta(seconds=cfg.native_wait_min_s))
        return min(by, share)

    def schedulable(self, blocked: set[str], pending: set[str], retry_keys: set[str]) -> dict[str, tuple]:
        """key -> (slack, tier, why) for what can usefully start now; ``why`` is "due" (latest
        start within the horizon), "ready" (a model whose inputs are fresh for its cycle) or
        "wait" (could start, but a cheaper window opens before its latest start)."""
        out: dict[str, tuple] = {}
        graph = self.graph
        fresh = self.assessment.freshness
        started: set[str] = set()
        ahead: set[str] = set()
        for k in self.keys:
            if not self.needs.get(k) or k in blocked or k in pending:
                continue
            r = self.req.get(k)
            if r is None:
                continue
            node = graph.node(k)
            source = node.connector is not None or node.role in (CONNECTOR_TABLE, DBT_SOURCE)
            if r > self.now:
                # its cycle has not opened: data now would be too old by then; but a sync a
                # person must approve is asked ahead, to start at the opening (an approver may
                # answer only hours later, at night), with the models on it that need approval
                # too (one run, one approval)
                if source:
                    ok = self.ask_ahead(k)
                else:
                    ups = graph.parents(k)
                    ok = (any(u in ahead for u in ups)
                          and all(u in ahead or not self.needs.get(u, False) for u in ups)
                          and not _preauthorised(self.resolution, (k,), (ActionType.materialize,))
                          and not (self.standing is not None and self.standing.covers_keys((k,))))
                if ok:
                    ahead.add(k)
                    out[k] = (self.slack(k), _tv(fresh[k].tier), "ahead")
                continue
            parents = graph.parents(k)
            if any((self.holds(u, k) and u not in started) or u in retry_keys for u in parents):
                continue  # an input still needs a run that is not starting now
            fa = fresh[k]
            if self.due(k):
                why = "due"
            elif source and self.ask_ahead(k):
                why = "ahead"
            elif source and self.sync_early(k):
                why = "early"
            elif source:
                continue  # a sync before it is due: the connector's own schedule may land it first
            elif self.cheaper_later(k):
                out[k] = (self.slack(k), _tv(fa.tier), "wait")
                continue
            else:
                why = "ready"
            started.add(k)
            out[k] = (self.slack(k), _tv(fa.tier), why)
        return out


@dataclass
class _PlanState:
    """What the planning stages share (one planning cycle)."""

    snapshot: Snapshot
    assessment: Assessment
    resolution: object
    cfg: PlannerConfig
    now: datetime
    graph: AssetGraph
    model: DurationModel
    paused: set
    incidents: object
    cost_asset: dict
    cost_connector: dict
    actions: list = field(default_factory=list)
    escalations: list = field(default_factory=list)
    links: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def owners_of(self, keys: Iterable[str]) -> tuple[str, ...]:
        out: list[str] = []
        for k in keys:
            sla = self.resolution.sla(k) if self.resolution is not None else None
            node = self.graph.get(k)
            for o in (sla.owners if sla else ()) or (node.owners if node else ()):
                if o not in out:
                    out.append(o)
        return tuple(out)


STAGES = (
    "in_flight", "latest_failures", "backfills", "failure_responses", "resume_recovered", "needs",
    "resync_when_needed", "reprioritise", "hold_back", "group_runs", "run_actions", "partition_retries", "finish",
)


def _stage_in_flight(st: _PlanState) -> None:
    """What is in flight: keys running, queued runs, connectors syncing, keys being rebuilt."""
    snapshot = st.snapshot
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
    # the connectors' own syncs queued behind a busy source: not counted on (see native_queue)
    st.native_queue = ScheduledSyncQueue(snapshot, st.now) if st.cfg.queued_native_aware else None
    waiting = st.native_queue.waiting if st.native_queue is not None else frozenset()
    pending = _pending_keys(snapshot, waiting)  # being rebuilt by a run (or a sync) still in flight
    awaiting = _awaiting_keys(st.incidents, snapshot.last_success)  # asked of a person, not answered yet
    deferred = _deferred_keys(st.incidents, st.now)
    # keys only held by work deferred to a later start: released in the needs stage when an
    # earlier cycle needs them before that start
    st.deferred_only = {k: nb for k, nb in deferred.items() if k not in pending}
    pending |= awaiting
    st.running = running
    st.queued = queued
    st.syncing = syncing
    st.pending = pending


def _stage_latest_failures(st: _PlanState) -> None:
    """The latest unrecovered failure per subject (asset or connector), attempts since the last success, failing partitions."""
    snapshot, assessment, graph = st.snapshot, st.assessment, st.graph
    blocked: set[str] = set()  # keys no freshness action may include (broken or being fixed)
    retry_groups: list[dict] = []  # {keys, not_before, failures, connector, partitions}
    latest: dict[str, DiagnosedFailure] = {}
    attempts: dict[str, int] = {}
    partition_failures: dict[str, dict[str, DiagnosedFailure]] = {}
    by_id = None
    for d in assessment.failures:
        f = d.failure
        if d.root_failure_id is not None:
            if by_id is None:
                by_id = {x.failure.failure_id: x.failure for x in assessment.failures}
            d = _own_failure(d, by_id.get(d.root_failure_id), snapshot, graph)
            if d is None:
                continue
            f = d.failure
        subject = f"connector:{f.connector}" if f.connector else (f"asset:{f.asset_key}" if f.asset_key else None)
        if subject is None:
            continue
        # Already recovered: the asset succeeded after this failure.
        if f.asset_key and f.asset_key in snapshot.last_success and not f.partition:
            if _aware(snapshot.last_success[f.asset_key]) > _aware(f.at):
                continue
        if f.connector and not f.asset_key:
            tables = graph.connector_tables(f.connector)
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
    st.blocked = blocked
    st.retry_groups = retry_groups
    st.latest = latest
    st.attempts = attempts
    st.partition_failures = partition_failures


def _stage_backfills(st: _PlanState) -> None:
    """Several failed partitions of an asset: one targeted backfill (those partitions x the partitioned downstream)."""
    resolution, cfg, graph = st.resolution, st.cfg, st.graph
    cost_asset, actions, links = st.cost_asset, st.actions, st.links
    partition_failures = st.partition_failures
    blocked = st.blocked
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
            cause=",".join(sorted({p.category for p in parts.values()})), cycle=",".join(fids),
        ))
        links[aid] = fids
        backfilled.add(f"asset:{key}")
        blocked.update(closure)
    st.backfilled = backfilled


def _own_failure(d: DiagnosedFailure, root, snapshot: Snapshot, graph: AssetGraph) -> DiagnosedFailure | None:
    """A failure linked to an upstream root (``d.root_failure_id``): None while that root can
    still be its cause; its own diagnosis when the root's subject had already landed again
    before it failed (the upstream was healthy, so the failure is this asset's own: a code or
    grant error must not pass for an upstream outage and be re-run every tick; world 404)."""
    if root is None:
        return None
    f = d.failure
    keys = ([root.asset_key] if root.asset_key else
            list(graph.connector_tables(root.connector)) if root.connector else [])
    last = snapshot.last_success
    at_root, at = _aware(root.at), _aware(f.at)
    if not keys or not all((ls := last.get(k)) is not None and at_root < _aware(ls) <= at for k in keys if k in graph):
        return None
    try:
        from orchestrator.diagnosis import diagnose

        own = diagnose(f.message, f.system, None)
    except Exception:  # noqa: BLE001 - no diagnosis: keep the link
        return None
    if own.category == "unknown":
        return None  # nothing better than the link: keep it
    return DiagnosedFailure(failure=f, category=own.category, transient=own.transient,
                            confidence=own.confidence, evidence=tuple(own.evidence))


def _note_block(st: _PlanState, keys, at: datetime) -> None:
    """``keys`` are held back by a failure at ``at`` that no retry is expected to fix (escalated)."""
    block_at = st.__dict__.setdefault("block_at", {})
    at = _aware(at)
    for k in keys:
        if k not in block_at or block_at[k] < at:
            block_at[k] = at


def _stage_failure_responses(st: _PlanState) -> None:
    """The prescribed response per failing subject (vocab.FailureClass.response): pause + escalate, resume + retry after a repair, resync drift, backed-off retry, escalate, wait."""
    resolution, cfg, now, graph = st.resolution, st.cfg, st.now, st.graph
    cost_asset, actions, escalations, links, notes = st.cost_asset, st.actions, st.escalations, st.links, st.notes
    latest = st.latest
    backfilled = st.backfilled
    blocked = st.blocked
    retry_groups = st.retry_groups
    attempts = st.attempts
    syncing = st.syncing
    pending = st.pending
    paused = st.paused
    incidents = st.incidents
    owners_of = st.owners_of
    for subject, d in sorted(latest.items()):
        f = d.failure
        cat = d.category
        conn = f.connector
        keys = list(graph.connector_tables(conn)) if conn else [f.asset_key]
        keys = [k for k in keys if k in graph]
        if subject in backfilled:
            continue
        owners = owners_of(keys)
        repaired = None
        if incidents is not None:
            if cat in ESCALATE_CATEGORIES:
                repaired = incidents.repaired_at(subject, cat, _aware(f.at))
            elif (reported := getattr(incidents, "reported_repair", None)) is not None:
                # a repair made outside any action (an applied schema patch): retried at once
                repaired = reported(subject, cat, _aware(f.at))
        if repaired is not None:
            # a person fixed the cause: close the incident (resume the connector, sync again)
            if conn and conn in paused:
                aid = action_id("resume", conn, f.failure_id)
                actions.append(Action(
                    action_id=aid, type=ActionType.resume_connector.value, connector=conn,
                    reason=f"{cat} on {subject} repaired at {repaired:%Y-%m-%d %H:%M} UTC: resume {conn}",
                    priority=priority_for(None, _tier(resolution, keys[0]) if keys else "standard", cfg),
                    cause=f"repair:{cat}", cycle=f.failure_id,
                ))
            if conn and conn in syncing:
                notes.append(f"{subject}: repaired, a sync is already running")
                continue
            retry_groups.append({
                "keys": keys, "not_before": None, "failure": f.failure_id, "connector": conn,
                "category": cat, "attempt": 1, "partitions": (), "repair": True,
            })
            continue
        if cat in ESCALATE_CATEGORIES:
            blocked.update(keys)
            if not conn or conn not in paused:
                # an asset (no connector to pause), or a connector whose pause still waits for a
                # person's answer: the person's fix is not always reported (a grant, a profile, a
                # deploy, a renewed credential by the on-call engineer); like any escalated
                # failure, a deadline cycle that opens after it gets one fresh attempt, as a
                # scheduled job would make. Held until the pause was answered (at night, hours
                # later), every deadline of the lineage was lost although the credential had been
                # renewed an hour after the failure (generated worlds 17683, 17692). A paused connector
                # stays paused until its repair is reported.
                _note_block(st, keys, f.at)
            escalations.append(Escalation(subject, cat, owners,
                                          f"{cat} on {subject}: needs a person (credentials, grants or setup); "
                                          "not retried", f.failure_id))
            if conn and conn in paused:
                notes.append(f"{subject}: paused, waiting for a person to repair {cat}")
            elif conn:
                aid = action_id("pause", conn, f.failure_id)
                actions.append(Action(
                    action_id=aid, type=ActionType.pause_connector.value, connector=conn,
                    reason=f"{cat}: pause {conn} so it stops failing every sync; escalated to owners",
                    asset_keys=(), priority=0, cause=cat, cycle=f.failure_id,
                ))
                links[aid] = (f.failure_id,)
            continue
        if cat in NO_ACTION:
            notes.append(f"{subject}: {cat}, waiting for the upstream")
            continue
        if cat in ESCALATE_ONLY or (cat == "unknown" and not d.transient):
            blocked.update(keys)
            _note_block(st, keys, f.at)
            escalations.append(Escalation(subject, cat, owners,
                                          f"{cat} on {subject}: not fixable by a re-run", f.failure_id))
            continue
        if cat == "schema_drift" and conn:
            handling = cfg.schema_change_handling.get(conn)
            if _drift_is_breaking(d, handling, attempts.get(subject, 1)):
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
                    cause=cat, cycle=f.failure_id,
                ))
                links[aid] = (f.failure_id,)
                blocked.update(drifted)
                continue
        backoff = cfg.backoff.get(cat) or cfg.backoff.get("unknown") or Backoff(300)
        n = attempts.get(subject, 1)
        if n > backoff.max_attempts:
            blocked.update(keys)
            _note_block(st, keys, f.at)
            escalations.append(Escalation(subject, cat, owners,
                                          f"{cat} on {subject}: {n} failures since the last success "
                                          f"(max {backoff.max_attempts} retries)", f.failure_id))
            continue
        delay = min(backoff.cap_s, backoff.base_s * backoff.factor ** (n - 1))
        floor = min(delay, backoff.base_s)  # the least a retry waits (deadline_backoff)
        for text in (f.message, *d.evidence):
            m = _RETRY_AFTER.search(text or "")
            if m:
                delay = max(delay, min(backoff.cap_s, float(m.group(1))))
                floor = max(floor, min(backoff.cap_s, float(m.group(1))))  # what the source asked for
        not_before = _aware(f.at) + timedelta(seconds=delay)
        if conn and conn in syncing:
            notes.append(f"{subject}: a sync is already running, no retry")
            continue
        if keys and all(k in pending for k in keys):
            notes.append(f"{subject}: a run covering it is already in flight, no retry")
            continue
        retry_groups.append({
            "keys": keys, "not_before": not_before if not_before > now else None,
            "earliest": _aware(f.at) + timedelta(seconds=floor),
            "failure": f.failure_id, "connector": conn, "category": cat, "attempt": n,
            "partitions": (f.partition,) if f.partition and f.asset_key and graph.node(f.asset_key).partitioning else (),
        })


def _stage_resume_recovered(st: _PlanState) -> None:
    """Resume a connector we paused for a failure that needs a person once its tables synced after
    the pause and nothing of it fails any more: the cause is gone (the on-call fixed it without
    reporting it, and a retry or a cycle's fresh attempt succeeded). The repair path resumes only on
    a failure whose repair is reported; after a clean sync no failure is left to answer, and the
    connector stayed paused for good, its own schedule stopped (generated world 17683: the next
    days' syncs never ran). Cause ``repair:<class>`` and the pause's failure ids as the cycle: the
    person who approved the pause covers closing the incident, as for a reported repair."""
    ledger = getattr(st.incidents, "ledger", None)
    if ledger is None or not st.paused:
        return
    failing = {d.failure.connector for d in st.latest.values() if d.failure.connector}
    last = st.snapshot.last_success
    for conn in sorted(st.paused - failing):
        pause = ledger.standing_pause(conn)
        if pause is None or not pause.action.cause or not FailureClass.parse(pause.action.cause).needs_person:
            continue  # paused by a person, or ahead of a maintenance window (the early warning resumes it)
        tables = [k for k in st.graph.connector_tables(conn) if k in st.graph]
        if not tables or not all(k in last and _aware(last[k]) > _aware(pause.at) for k in tables):
            continue
        cat = FailureClass.parse(pause.action.cause).value
        st.actions.append(Action(
            action_id=action_id("resume", conn, pause.action.cycle or pause.action.action_id),
            type=ActionType.resume_connector.value, connector=conn,
            reason=(f"{conn} synced after its pause for {cat} ({pause.at:%Y-%m-%d %H:%M} UTC) and nothing of it "
                    f"fails: the cause is gone, resume its schedule"),
            priority=priority_for(None, _tier(st.resolution, tables[0]), st.cfg),
            cause=f"repair:{cat}", cycle=pause.action.cycle,
        ))


def _stage_needs(st: _PlanState) -> None:
    """What should run for freshness: the critical paths of at-risk/breached targets, then every governed asset whose deadline cycle needs newer data and can usefully start now."""
    snapshot, assessment, resolution, cfg, now, graph, model = st.snapshot, st.assessment, st.resolution, st.cfg, st.now, st.graph, st.model
    notes = st.notes
    blocked = st.blocked
    retry_groups = st.retry_groups
    pending = st.pending
    topo_index = graph.topological_index()  # built once per graph (read-only)
    retry_keys = {k for rg in retry_groups if not rg["partitions"] for k in rg["keys"]}
    cycles = _Cycles(snapshot, assessment, resolution, model, now, cfg, topo_index)
    cycles.standing = getattr(st.incidents, "standing", None)
    cycles.native_queue = getattr(st, "native_queue", None)
    # an escalated failure (a person must look; or retries exhausted) holds its subject back for
    # the cycle it failed in; a later deadline cycle (its window opened after the failure) gets one
    # fresh attempt, as a scheduled job would make: a failure whose cause has gone (a bad batch, an
    # outage that ended) then no longer costs every later cycle. It stays escalated.
    block_at = st.__dict__.get("block_at") or {}
    retried = {k for k, at in block_at.items()
               if k in blocked and (r := cycles.req.get(k)) is not None and r > at and r <= now}
    if retried:
        blocked.difference_update(retried)
        notes.append(f"{len(retried)} asset(s) held back by an escalated failure get one attempt for a new cycle")
    # within the cycle it failed in, an escalated failure gets one probe at the latest start that
    # still meets the deadline: a person's fix (a grant, a profile, a deploy) is not always
    # reported. Once: a probe that fails leaves a failure near that latest start, and no other follows
    probes = set()
    probed_since = _probed_subjects(st.incidents, graph)
    for k, at in block_at.items():
        if (k not in blocked or k in retried or not cycles.needs.get(k) or k not in assessment.freshness
                or (r := cycles.req.get(k)) is None or not r <= at <= now or not cycles.due(k)
                or (ls := cycles.latest_start(k)) is None):
            continue
        # once: no failure of it (or of its connector) near its latest start, where a probe runs
        since = max(r, ls - timedelta(seconds=2 * (cfg.tick_interval_s + cfg.min_margin_s)))
        node = graph.get(k)
        conn = node.connector if node is not None else None
        if not any((f.asset_key == k or (conn and f.connector == conn)) and _aware(f.at) >= since
                   for f in snapshot.failures) and not ({k, conn} & probed_since(r)):
            probes.add(k)
    if probes:
        blocked.difference_update(probes)
        notes.append(f"{len(probes)} asset(s) held back by an escalated failure get one probe at their latest start")
    st.probes = probes
    # work asked/approved for a later cycle (``not_before``) does not hold back an earlier cycle
    # that needs the key before that start: the earlier cycle gets its own run
    released = set()
    for k, nb in getattr(st, "deferred_only", {}).items():
        if k not in pending:
            continue
        lst = cycles.latest_start(k)
        r = cycles.req.get(k)
        if cycles.needs.get(k) and lst is not None and r is not None and r < nb and lst < nb:
            released.add(k)
    if released:
        pending = st.pending = pending - released
        notes.append(f"{len(released)} asset(s) deferred to a later cycle are refreshed for an earlier one first")

    urgent = [
        fa for fa in assessment.freshness.values()
        if fa.status in (FreshnessStatus.at_risk, FreshnessStatus.breached) and fa.asset_key in graph
    ]
    urgent.sort(key=lambda fa: (fa.slack_s if fa.slack_s is not None else float("inf"),
                                -_TIER_RANK.get(_tv(fa.tier), 1), fa.asset_key))
    want: dict[str, tuple[float | None, str]] = {}  # key -> (slack, tier) of the most urgent need
    targets: dict[str, str] = {}
    broken: set[str] = set()  # targets whose critical path runs through a broken asset
    for fa in urgent:
        for k in _path(graph, resolution, fa.blocking_asset, fa.asset_key):
            if k in blocked:  # broken upstream: running what is below it would not help
                notes.append(f"{fa.asset_key}: blocked by {k}")
                broken.add(fa.asset_key)
                break
            if k != fa.asset_key and cycles.fresh_for(k, fa.asset_key):
                continue  # its data is already fresh for the target's cycle: re-running it changes nothing
            if k not in want:
                want[k] = (fa.slack_s, _tv(fa.tier))
                targets[k] = fa.asset_key
    # proactive: every governed asset whose cycle is open and whose latest start falls within the
    # planning horizon (or, for models, whose inputs are all fresh for the cycle: starting as soon
    # as it can run costs the same as starting late, and queues behind nothing)
    waiting = 0
    why_of: dict[str, str] = {}
    for k, (slack, tier, why) in cycles.schedulable(blocked | broken, pending, retry_keys).items():
        if why == "wait":
            waiting += 1
            continue
        if k not in want:
            want[k] = (slack, tier)
            targets[k] = k
            why_of[k] = why
    if waiting:
        notes.append(f"{waiting} asset(s) wait for a cheaper window before their latest start")
    st.topo_index = topo_index
    st.retry_keys = retry_keys
    st.cycles = cycles
    st.urgent = urgent
    st.want = want
    st.targets = targets
    st.broken = broken
    st.why_of = why_of


def _resync_need(st: _PlanState, action: Action) -> tuple[str, datetime | None]:
    """When a drift resync of ``action``'s tables is worth its price, and the opening it waits for:
    ("now", None) when a deadline cycle that needs newer data of them has opened; ("later", the
    earliest such opening) when it has not (a resync now loads data older than that opening: it
    serves no cycle); ("none", None) when no deadline cycle reads the connector's tables."""
    cycles = st.cycles
    opens: list[datetime] = []
    # the drift fails the connector's whole sync: every table of it waits for the fix, not only
    # the drifted ones (world 14027: a drifted table no deadline read, its sibling d0 did)
    tables = [k for k in st.graph.connector_tables(action.connector) if k in st.graph] if action.connector else []
    for k in tables or action.asset_keys:
        r = cycles.req.get(k)
        if r is None:
            continue
        if not cycles.needs.get(k):
            opens.append(r)  # fresh for that cycle: the drift matters from the next one
            continue
        if r <= st.now:
            return "now", None
        opens.append(r)
    if opens:
        return "later", min(opens)
    # no cycle of theirs is planned now (a breached one is reported, not chased), yet a deadline
    # propagates to them: the drift still fails every sync its cycles will need, so it is fixed
    sla_of = getattr(st.resolution, "sla", None)
    if sla_of is not None and any((s := sla_of(k)) is not None and getattr(s, "deadline", None) is not None
                                  for k in tables or action.asset_keys):
        return "now", None
    return "none", None


def _stage_resync_when_needed(st: _PlanState) -> None:
    """A schema-drift resync re-reads whole tables at full price where a sync reads the new rows
    only (a table of 400k rows an hour: $145 a resync against cents a sync): a connector whose
    tables no deadline reads is not resynced, its drift is escalated to the owners (world 14080
    resynced one 8 times, $1,161; cron-tuned waited for on-call and met every deadline). With
    ``resync_waits_for_window`` (off), a resync for tables a deadline reads also waits for the
    window of the cycle that needs them to open (on-call may fix the drift first); one that needs
    a person's approval is asked at once to start then, and validation drops it once the tables
    landed after the drift."""
    if not st.cfg.resync_when_needed or not st.cycles.keys:  # no deadline known: the drift's own fix
        return
    keep: list[Action] = []
    for a in st.actions:
        if ActionType.parse(a.type) is not ActionType.resync_table or a.cause != "schema_drift" or not a.asset_keys:
            keep.append(a)
            continue
        need, opening = _resync_need(st, a)
        if need == "now" or (need == "later" and not st.cfg.resync_waits_for_window):
            keep.append(a)
            continue
        if need == "later" and not _preauthorised(st.resolution, a.asset_keys, (ActionType.resync_table,)):
            keep.append(replace(a, not_before=opening))
            continue
        fids = st.links.pop(a.action_id, ())
        subject = f"connector:{a.connector}"
        if need == "none":
            st.escalations.append(Escalation(
                subject, "schema_drift", st.owners_of(a.asset_keys),
                f"schema drift on {', '.join(a.asset_keys)}: no deadline reads these tables, not resynced "
                "(a resync re-reads them at full price); the owners fix the schema", ",".join(fids)))
            st.notes.append(f"{subject}: drift on tables no deadline reads, escalated, not resynced")
        else:
            st.notes.append(f"{subject}: drift resync waits for the window of the cycle that needs it to open")
    st.actions[:] = keep


def _stage_reprioritise(st: _PlanState) -> None:
    """Queued runs holding urgent keys at a lower priority: re-tagged with the new priority."""
    cfg = st.cfg
    cost_asset, actions = st.cost_asset, st.actions
    queued = st.queued
    want = st.want
    nq = getattr(st, "native_queue", None)
    native_waiting = nq.waiting if nq is not None else frozenset()
    # queued runs: re-prioritise (re-tag dagster/priority) when they hold urgent keys at a lower priority
    for run in sorted(queued, key=lambda r: r.run_id):
        hit = [k for k in run.asset_keys if k in want]
        if not hit:
            continue
        slack = min((want[k][0] for k in hit if want[k][0] is not None), default=None)
        tier = max((want[k][1] for k in hit), key=lambda t: _TIER_RANK.get(t, 1))
        new_p = priority_for(slack, tier, cfg)
        retag = _preauthorised(st.resolution, run.asset_keys, (ActionType.materialize, ActionType.cancel_run))
        if not retag and run.run_id in native_waiting:
            # a connector's own sync queued behind its source: not re-tagged (that needs approval),
            # and not waited for either -- the keys go on as a run of ours at their priority
            continue
        for k in run.asset_keys:
            want.pop(k, None)
        if new_p - run.priority < cfg.reprioritize_margin:
            continue
        if not retag:
            # by the time a person answers, the queue has moved on: re-prioritising is only worth
            # it when it runs now (and a queued run approved for later must not be cancelled)
            st.notes.append(f"queued run {run.run_id} keeps priority {run.priority}: re-prioritising it needs approval")
            continue
        aid = action_id("reprioritize", run.run_id, new_p)
        actions.append(Action(
            action_id=aid, type=ActionType.materialize.value, asset_keys=tuple(run.asset_keys),
            partitions=tuple(run.partitions), run_id=run.run_id, priority=new_p,
            reason=(f"re-prioritise queued run {run.run_id} from {run.priority} to {new_p} "
                    f"(least slack first; the queued run is re-tagged: Dagster's queue reads dagster/priority at each dequeue)"),
            estimated_cost_usd=round(sum(cost_asset.get(k, 0.0) for k in run.asset_keys), 4),
            cause="priority", cycle=f"{run.run_id}:{new_p}",
        ))


def _stage_hold_back(st: _PlanState) -> None:
    """Nothing starts on an input still being rebuilt, failing or stale; a retry re-runs only what failed."""
    graph = st.graph
    notes = st.notes
    want = st.want
    running = st.running
    blocked = st.blocked
    pending = st.pending
    retry_keys = st.retry_keys
    retry_groups = st.retry_groups
    cycles = st.cycles
    topo_index = st.topo_index
    for k in list(want):
        if k in running or k in blocked or k in pending:
            want.pop(k)
    # a retry re-runs exactly what failed (its risk and any approval concern that alone); what
    # depends on it runs once it has landed, and it waits for inputs still being rebuilt
    retry_need = {k: want.pop(k) for k in list(want) if k in retry_keys}
    held = []
    for rg in retry_groups:
        if rg["partitions"]:
            continue
        own = set(rg["keys"])
        if any(u not in own and (u in want or u in pending) for k in rg["keys"] for u in graph.parents(k)):
            held.append(rg)
    for rg in held:
        retry_groups.remove(rg)
        notes.append(f"retry of {rg['connector'] or rg['keys'][0]} waits for its inputs")
    retry_keys = {k for rg in retry_groups if not rg["partitions"] for k in rg["keys"]}
    failing = {k for rg in held for k in rg["keys"]} | retry_keys
    # a step never starts while an input is still being rebuilt elsewhere, is failing, or is
    # stale and not part of the same run: it would read old data and have to run again
    for k in sorted(want, key=lambda x: topo_index.get(x, 0)):
        own = cycles.opens.get(k)  # the opening of k's own cycle (not a later consumer's)
        for u in graph.parents(k):
            if u in want:
                continue
            if u in failing or (u in pending and not _serves_due_cycle(st, u, k, own)):
                want.pop(k)
                break
            if cycles.holds(u, k):
                # stale for a later consumer's cycle but fresh for k's own, which is due now: k
                # runs for its own cycle and again for the later one once newer data lands
                dt = cycles.dts.get(u)
                if own is not None and dt is not None and _aware(dt) >= own:
                    continue  # (its data time is that of its oldest input: none is older)
                want.pop(k)
                break
    st.retry_need = retry_need
    st.retry_keys = retry_keys
    st.failing = failing


def _serves_due_cycle(st: _PlanState, u: str, k: str, own: datetime | None) -> bool:
    """Input ``u`` is being rebuilt by a run in flight, but its current data is already fresh for
    ``k``'s own cycle, and that rebuild would land too late for ``k`` (``k`` is due, or the rebuild
    lands after ``k``'s latest start): ``k`` runs on the data it has rather than waiting for a
    rebuild that works for a later cycle (a consumer's or another policy's). Generated world 15029:
    the sources of dashboard/d3 were re-synced for dashboard/d2's later window while d3's models,
    due, waited behind each re-sync in turn and missed 08:30 by an hour. ``k`` runs again for the
    later cycle once the newer data lands."""
    cycles = st.cycles
    dt, served = cycles.dts.get(u), cycles.dts.get(k)
    if own is None or dt is None or _aware(dt) < own or (served is not None and _aware(served) >= own):
        return False  # (``k`` already fresh for its own cycle: it works for a later one, which needs the rebuild)
    if cycles.due(k):
        return True
    lst = cycles.latest_start(k)
    lands = _rebuild_lands(st, u)
    return lst is not None and lands is not None and lands > lst - timedelta(seconds=st.cfg.tick_interval_s)


def _rebuild_lands(st: _PlanState, u: str) -> datetime | None:
    """When the run in flight rebuilding ``u`` lands it (p90, its inputs' chain included; a queued
    run counted from now); None when no run rebuilds it (a person's answer is awaited)."""
    starts = [_aware(run.started_at) if run.started_at is not None else st.now
              for run in st.snapshot.runs if run.status.in_flight and u in run.asset_keys]
    starts += [_aware(s.started_at) for s in st.snapshot.syncs
               if s.status == "running" and u in s.tables and s.started_at is not None]
    if not starts:
        return None
    node = st.graph.get(u)
    try:
        own_s = float(st.model.seconds(node)) if node is not None else 0.0
    except Exception:  # noqa: BLE001 - no estimate: the chain above it only
        own_s = 0.0
    return max(starts) + timedelta(seconds=st.cycles.upstream_s(u) + own_s)


def _stage_group_runs(st: _PlanState) -> None:
    """Connected needs run together (one run per connected set, split upstream-first at the size limit); each retry is its own run."""
    cfg, graph = st.cfg, st.graph
    notes = st.notes
    want = st.want
    retry_groups = st.retry_groups
    retry_keys = st.retry_keys
    retry_need = st.retry_need
    topo_index = st.topo_index
    # runs: connected needs run together (a downstream model never races its upstream in another
    # run); each retry is its own run
    groups = _Groups()
    for k in want:
        groups.find(k)
        for u in graph.parents(k):
            if u in want:
                groups.union([k, u])
    for rg in retry_groups:
        if not rg["partitions"]:
            groups.union(rg["keys"])
    # tables of one connector go in one run: one sync lands them all (and one approval covers it)
    by_connector: dict[str, list[str]] = {}
    for k in want:
        node = graph.get(k)
        if node is not None and node.connector:
            by_connector.setdefault(node.connector, []).append(k)
    for keys in by_connector.values():
        if len(keys) > 1:
            groups.union(keys)
    # syncs asked ahead for the same window opening are one run: one approval per cycle
    ahead: dict[object, list[str]] = {}
    for k in want:
        if st.why_of.get(k) == "ahead":
            ahead.setdefault(st.cycles.req.get(k), []).append(k)
    for keys in ahead.values():
        if len(keys) > 1:
            groups.union(keys)

    members: dict[str, list[str]] = {}
    for k in list(want) + sorted(retry_keys):
        run = members.setdefault(groups.find(k), [])  # (one find: the root it gives is final)
        if k not in run:
            run.append(k)
    retry_of_root: dict[str, list[dict]] = {}
    for rg in retry_groups:
        if rg["partitions"]:
            continue
        retry_of_root.setdefault(groups.find(rg["keys"][0]), []).append(rg)
    _split_preauthorised(st, members, retry_of_root)
    # runs larger than the validation limit: the upstream part now, the rest once it has landed
    max_run = max(1, min(cfg.max_run_assets, max(len(graph) // 2, 1)))
    for root, keys in list(members.items()):
        if len(keys) > max_run and root not in retry_of_root:
            keys.sort(key=lambda k: topo_index.get(k, 0))
            members[root] = keys[:max_run]
            notes.append(f"{len(keys) - max_run} asset(s) left for a later run (run size limit {max_run})")
    need_of = {**retry_need, **want}
    st.members = members
    st.retry_of_root = retry_of_root
    st.need_of = need_of


PROBE = "probe:"  # prefix of the cycle of a run that probes a subject held back by an escalated failure


def _probed_subjects(incidents, graph):
    """``since -> {asset keys and connectors probed since then}``, from the ledger's probes (a
    probe's action id depends on its asset set, so the subject and the time it ran identify it):
    a subject gets one probe per deadline cycle. Its failure alone does not say so: a probe
    starts at its run's latest start, which can be long before the subject's own, so a failure
    "near the subject's latest start" missed it and a second probe followed in the same cycle
    (generated world 463: two failed probes of fivetran:src0 opened the circuit breaker)."""
    ledger = getattr(incidents, "ledger", None)
    probes = [e for e in (ledger.entries.values() if ledger is not None else ())
              if (e.action.cycle or "").startswith(PROBE) and e.status not in ("pending", "approved")]

    def since(at: datetime) -> set:
        out = set()
        for e in probes:
            if _aware(e.at) >= at:
                for k in e.action.asset_keys:
                    node = graph.get(k)
                    out.update((k, node.connector) if node is not None and node.connector else (k,))
        return out - {None}
    return since

APPROVAL_PART = "#approval"  # suffix of the member group split off a run for the part that waits


def _split_preauthorised(st: _PlanState, members: dict[str, list[str]], retry_of_root: dict) -> None:
    """A run mixing work its policies pre-authorise (or an active standing approval covers) with
    work that waits for a person would wait whole, the pre-authorised steps with it: such a run
    is split. The pre-authorised part whose inputs in the run are pre-authorised too starts now;
    the rest (the steps that need approval and everything downstream of them in the run) is its
    own run, asked of a person. Retries are not split (one failure, one answer)."""
    resolution, graph = st.resolution, st.graph
    if resolution is None:
        return
    standing = getattr(st.incidents, "standing", None)
    cycles = getattr(st, "cycles", None)
    memo: dict[str, bool] = {}

    def alone(k: str) -> bool:
        if k not in memo:
            memo[k] = (_preauthorised(resolution, (k,), (ActionType.materialize,))
                       or (standing is not None and bool(standing.covers_keys((k,)))))
        return memo[k]

    order = st.topo_index
    split = 0
    for root, keys in list(members.items()):
        if root in retry_of_root or len(keys) < 2:
            continue
        if all(alone(k) for k in keys) or not any(alone(k) for k in keys):
            continue
        own = set(keys)
        # tables of one connector stay together: one sync lands them all
        waiting_conns = {n.connector for k in keys if not alone(k) and (n := graph.get(k)) is not None and n.connector}
        free: set[str] = set()
        for k in sorted(keys, key=lambda x: order.get(x, 0)):
            node = graph.get(k)
            if node is not None and node.connector and node.connector in waiting_conns:
                continue
            # an input of the same run that waits holds k back (it would read old data), unless
            # its data is already fresh for k's cycle (it is synced for a later one: k's cycle
            # cannot wait for that sync's approval, world 107)
            if alone(k) and all(u not in own or u in free or (cycles is not None and not cycles.holds(u, k))
                                for u in graph.parents(k)):
                free.add(k)
        if not free or len(free) == len(keys):
            continue
        members[root] = [k for k in keys if k in free]
        members[root + APPROVAL_PART] = [k for k in keys if k not in free]
        split += 1
    if split:
        st.notes.append(f"{split} run(s) split: the pre-authorised part starts now, the part that needs "
                        "approval waits for it")


def _routine_rerun(st: _PlanState, rgs: list[dict], keys: list[str]) -> bool:
    """A retry that would wait for a person, of a failure whose prescribed response is a plain
    re-run (rate limit, outage, capacity, memory: it clears by itself), on assets a deadline cycle
    needs now, whose routine refresh the policies authorise (pre-authorised ``materialize`` or an
    active standing approval): it is the cycle's routine refresh, started after the backoff, not a
    remedial action for a person. A scheduled job would simply run again; holding the chain for an
    approval (hours at night) loses deadlines that the authorised refresh meets. A repair, a
    partition or a class that needs a person or a resync still goes the remedial way."""
    if not keys or any(rg.get("repair") or rg["partitions"] for rg in rgs):
        return False
    if not all(FailureClass.parse(rg["category"]).rerun_resolves for rg in rgs):
        return False
    if not any(k in st.retry_need for k in keys):  # no deadline cycle needs it now
        return False
    resolution = st.resolution
    if _preauthorised(resolution, keys, (ActionType.retry,)):
        return False  # the retry runs without a person anyway
    if _preauthorised(resolution, keys, (ActionType.materialize,)):
        return True
    standing = getattr(st.incidents, "standing", None)
    return standing is not None and bool(standing.covers_keys(keys))


def _unneeded_rerun(st: _PlanState, rgs: list[dict], keys: list[str]) -> bool:
    """A retry that would wait for a person, of failures that clear by themselves (their
    prescribed response is a plain re-run), on assets no deadline cycle needs now: not proposed.
    The connector's own schedule (or the next run the assets' deadlines ask for, asked ahead as any
    sync that needs approval) re-runs it; asking a person now adds a request, not data that a
    deadline is waiting for (world 16340: 11 retries of an hourly connector's rate limit asked,
    0 incidents needing a person). Once a deadline cycle needs the assets the retry is proposed
    (or :func:`_routine_rerun` refreshes them); a repair or a partition goes the remedial way."""
    if not keys or any(rg.get("repair") or rg["partitions"] for rg in rgs):
        return False
    if not all(FailureClass.parse(rg["category"]).rerun_resolves for rg in rgs):
        return False
    if any(k in st.retry_need for k in keys):
        return False
    return not _preauthorised(st.resolution, keys, (ActionType.retry,))


def deadline_backoff(not_before: datetime | None, earliest: datetime | None, slack_s: float | None,
                     now: datetime) -> datetime | None:
    """When a backed-off retry starts: at ``not_before`` (the class's backoff after the last
    failure), but no later than the latest start that still meets the deadline the work is needed
    for (``now + slack_s``), and never before ``earliest`` (the failure + the class's first backoff
    step, or the source's Retry-After). A backoff doubled past the latest start lost the deadline a
    fixed retry met: a destination-capacity fault over at 16:27, retries at 15:49 and 16:21, the
    next one due at 17:25 for a 17:30 deadline whose latest start was 17:00 (generated world
    14005; a cron job retrying every 30 min met it). A deadline that even ``earliest`` cannot meet
    is not chased: the backoff stands. None: now."""
    if not_before is None or slack_s is None:
        return not_before
    latest = now + timedelta(seconds=slack_s)
    if latest >= not_before or (earliest is not None and latest < earliest):
        # the backoff meets it anyway, or no start allowed after the failure can: the class's backoff
        return not_before
    return latest if latest > now else None


def _stage_run_actions(st: _PlanState) -> None:
    """One action per run: retry, materialize (partitioned assets: the latest day) or, when a budget burns, defer to off-peak."""
    assessment, resolution, cfg, now, graph, model = st.assessment, st.resolution, st.cfg, st.now, st.graph, st.model
    cost_asset, cost_connector, actions, links = st.cost_asset, st.cost_connector, st.actions, st.links
    members = st.members
    retry_of_root = st.retry_of_root
    need_of = st.need_of
    want = st.want
    targets = st.targets
    why_of = st.why_of
    topo_index = st.topo_index
    burning = _burning_assets(assessment, resolution, graph)
    probes = getattr(st, "probes", None) or set()
    order = topo_index
    for root, keys in members.items():
        keys = sorted(set(keys), key=lambda k: order.get(k, 0))
        slack = min((need_of[k][0] for k in keys if k in need_of and need_of[k][0] is not None), default=None)
        tiers = {need_of[k][1] if k in need_of else _tier(resolution, k) for k in keys}
        tier = max(tiers, key=lambda t: _TIER_RANK.get(t, 1))
        prio = priority_for(slack, tier, cfg)
        cost = round(sum(cost_asset.get(k, 0.0) for k in keys), 4)
        rgs = retry_of_root.get(root, [])
        if rgs:
            keys = [k for k in keys if not graph.node(k).partitioning] or keys
            nb = deadline_backoff(max((rg["not_before"] for rg in rgs if rg["not_before"]), default=None),
                                  max((e for rg in rgs if (e := rg.get("earliest")) is not None), default=None),
                                  slack, now)
            fids = tuple(sorted(rg["failure"] for rg in rgs))
            conns = sorted({rg["connector"] for rg in rgs if rg["connector"]})
            cost += round(sum(cost_connector.get(c, 0.0) for c in conns), 4)
            what = "; ".join(
                (f"{rg['category']} on {rg['connector'] or rg['keys'][0]} repaired by a person" if rg.get("repair")
                 else f"{rg['category']} on {rg['connector'] or rg['keys'][0]} (attempt {rg['attempt']})")
                for rg in rgs
            )
            repair = any(rg.get("repair") for rg in rgs)
            cats = sorted({rg["category"] for rg in rgs})
            if _routine_rerun(st, rgs, keys):
                aid = action_id("materialize", keys, fids)
                actions.append(Action(
                    action_id=aid, type=ActionType.materialize.value, asset_keys=tuple(keys), priority=prio,
                    not_before=nb, estimated_cost_usd=cost, cause="freshness", cycle=",".join(fids),
                    reason=(f"{what}: it clears by itself and its retry would wait for a person, but a deadline "
                            "cycle needs it now and its routine refresh is authorised: refresh it"
                            + (f" not before {nb:%H:%M} UTC (backoff)" if nb else "")),
                ))
                links[aid] = fids
                continue
            if cfg.unneeded_reruns_unasked and _unneeded_rerun(st, rgs, keys):
                st.notes.append(f"{what}: clears by itself and no deadline cycle needs it now; its retry "
                                "would wait for a person: not proposed (a later sync re-runs it)")
                continue
            aid = action_id("retry", keys, fids)
            actions.append(Action(
                action_id=aid, type=ActionType.retry.value, asset_keys=tuple(keys),
                connector=conns[0] if len(conns) == 1 else None, priority=prio, not_before=nb,
                reason=(f"retry after {what}" + (f", not before {nb:%H:%M} UTC (backoff)" if nb else "")
                        + (": a new connector sync, not a re-run of the failed run" if conns else "")
                        + (f"; {len(keys)} assets incl. downstream at risk" if len(keys) > 1 else "")),
                estimated_cost_usd=cost,
                cause=("repair:" if repair else "") + ",".join(cats), cycle=",".join(fids),
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
                cause="freshness", cycle=day[0],
            ))
            if not keys:
                continue
            cost = round(sum(cost_asset.get(k, 0.0) for k in keys), 4)
        # a run that syncs connectors pays for those syncs too (a sync's cost names the connector)
        conns = sorted({n.connector for k in keys if (n := graph.node(k)).connector})
        cost = round(cost + sum(cost_connector.get(c, 0.0) for c in conns), 4)
        worst = min((k for k in keys if k in want), default=keys[0],
                    key=lambda k: (want[k][0] if want[k][0] is not None else float("inf")))
        target = targets.get(worst, worst)
        fa = assessment.freshness.get(target)
        status = fa.status.value if fa else "at_risk"
        atype, nb = ActionType.materialize, None
        reason = (f"{target} is {status.replace('_', ' ')}"
                  + (f" (slack {int(slack // 60)} min)" if slack is not None else "")
                  + f": run {len(keys)} asset(s) on its critical path now")
        if status == "ok" and why_of.get(worst):
            when = f" for {fa.deadline:%Y-%m-%d %H:%M} UTC" if fa and fa.deadline else ""
            reason = (f"{target} needs a refresh{when} (slack {int((slack or 0) // 60)} min): run {len(keys)} asset(s) now, "
                      + ("their latest start falls before the next planning cycle + safety margin"
                         if why_of[worst] == "due" else
                         "asked ahead: a sync that needs approval, and the connector's own schedule does "
                         "not land it before its latest start" if why_of[worst] == "ahead" else
                         "its cycle is open and the connector's own schedule does not land a sync before "
                         "its latest start" if why_of[worst] == "early" else
                         "their inputs are fresh for this deadline cycle"))
        opening = max((r for k in keys if why_of.get(k) == "ahead" and (r := st.cycles.req.get(k)) is not None
                       and r > now), default=None)
        if opening is not None:  # asked ahead: starts at its cycle's opening, not before
            nb = opening
            if slack is not None:  # its priority is the slack it will have when it starts
                prio = priority_for(slack - (opening - now).total_seconds(), tier, cfg)
            reason += f"; asked ahead to start at the window's opening {opening:%Y-%m-%d %H:%M} UTC"
        if tiers <= cfg.deferrable_tiers and burning.intersects(keys):
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
        cycle = f"{target}@{fa.deadline.isoformat()}" if fa and fa.deadline else None
        later = _later_consumer_cycle(st.cycles, keys)
        if cycle is not None and later is not None:
            cycle += f">{later.isoformat()}"
        probing = sorted(probes.intersection(keys))
        if probing:  # one attempt on a subject escalated to a person (its fix may be unreported)
            reason += (f"; probe: one attempt at the latest start on {', '.join(probing)}, held back by an "
                       "escalated failure (a person's fix is not always reported)")
            cycle = PROBE + (cycle or ",".join(probing))
        aid = (action_id(atype.value, keys, target, fa.deadline if fa else None, nb) if later is None
               else action_id(atype.value, keys, target, fa.deadline if fa else None, nb, later))
        actions.append(Action(
            action_id=aid, type=atype.value, asset_keys=tuple(keys), priority=prio,
            not_before=nb, reason=reason, estimated_cost_usd=cost, cause="freshness",
            cycle=cycle,
        ))


def _later_consumer_cycle(cycles: _Cycles, keys) -> datetime | None:
    """The latest opening of a consumer's cycle that ``keys`` are refreshed for beyond their own
    (None: each works for its own cycle). Part of the run's cycle: a sync that served a table's own
    cycle is not "already done" for a consumer's later cycle whose window opened after it ran (the
    ledger dropped that refresh while the table's own deadline stood, and the later cycle was lost
    waiting for it: world 547)."""
    later = None
    for k in keys:
        r, own = cycles.req.get(k), cycles.opens.get(k)
        if r is not None and own is not None and r > own and (later is None or r > later):
            later = r
    return later


def _stage_partition_retries(st: _PlanState) -> None:
    """Partitioned retries stay single-partition runs."""
    resolution, cfg = st.resolution, st.cfg
    cost_asset, actions, links = st.cost_asset, st.actions, st.links
    retry_groups = st.retry_groups
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
            cause=rg["category"], cycle=rg["failure"],
        ))
        links[aid] = (rg["failure"],)


def _stage_finish(st: _PlanState) -> None:
    """Least slack first, and the rationale."""
    now = st.now
    actions, escalations, links, notes = st.actions, st.escalations, st.links, st.notes
    urgent = st.urgent
    latest = st.latest
    actions.sort(key=lambda a: (-a.priority, a.not_before or now, a.action_id))
    n_run = sum(1 for a in actions if (t := ActionType.parse(a.type)) is not None and t.starts_run)
    rationale = (f"{len(urgent)} target(s) at risk or breached, {len(latest)} failing subject(s); "
                 f"{n_run} run(s) proposed least-slack-first, {len(escalations)} escalation(s)")
    if notes:
        rationale += "; " + "; ".join(notes[:10])
    result = AgentPlan(created_at=now, actions=actions, planner="deterministic", rationale=rationale,
                       escalations=escalations, failure_links=links)
    st.result = result


_STAGE_FUNCS = {name: globals()[f'_stage_{name}'] for name in STAGES}


def plan(
    snapshot: Snapshot,
    assessment: Assessment,
    resolution,
    durations=None,
    now: datetime | None = None,
    *,
    config: PlannerConfig | None = None,
    incidents=None,
    costs: CostHistory | None = None,
) -> AgentPlan:
    """The baseline plan. Always returns a plan (possibly empty), never raises on odd input.

    ``incidents`` (an ``orchestrator.core.incidents.IncidentView``): connectors paused now and the
    ledger of earlier actions, so a repaired incident is resumed and retried, not paused again.
    ``costs``: the cycle's :class:`~orchestrator.core.pricing.CostHistory` (built here if not given)."""
    cfg = config or PlannerConfig()
    paused = set(getattr(incidents, "paused", ()) or ()) | set(getattr(snapshot, "paused_connectors", ()) or ())
    now = _aware(now or snapshot.taken_at)
    graph = snapshot.graph
    model = _duration_model(durations)
    if resolution is not None and not getattr(resolution, "ok", True):
        return AgentPlan(created_at=now, actions=[], planner="deterministic",
                         rationale=f"nothing planned: {resolution.skip_reason}")
    cost_asset, cost_connector = _cost_per_asset(snapshot, costs)
    st = _PlanState(snapshot, assessment, resolution, cfg, now, graph, model, paused, incidents,
                    cost_asset, cost_connector)
    return run_stages(st).result


def run_stages(st: _PlanState, until: str | None = None) -> _PlanState:
    """Run the named stages in order (through ``until`` when given); each reads and extends ``st``."""
    for name in STAGES:
        _STAGE_FUNCS[name](st)
        if name == until:
            break
    return st


def plan_state(snapshot: Snapshot, assessment: Assessment, resolution, durations=None,
               now: datetime | None = None, *, config: PlannerConfig | None = None, incidents=None) -> _PlanState:
    """A fresh stage state (for running stages one by one, e.g. in tests)."""
    now = _aware(now or snapshot.taken_at)
    cost_asset, cost_connector = _cost_per_asset(snapshot)
    paused = set(getattr(incidents, "paused", ()) or ()) | set(getattr(snapshot, "paused_connectors", ()) or ())
    return _PlanState(snapshot, assessment, resolution, config or PlannerConfig(), now, snapshot.graph,
                      _duration_model(durations), paused, incidents, cost_asset, cost_connector)
