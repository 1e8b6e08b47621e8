"""The discrete-event engine: virtual time, capacity pools, a priority run queue, faults, costs.

Time is float seconds since ``scenario.start``. Everything happens through one event heap
(``at(t, fn, *args)``); nothing sleeps. Units of work are *steps*: a connector sync (lands all
its tables, holds one slot of its source pool) or a model (holds one warehouse slot). A *run*
is a set of steps submitted together (a Dagster run, a native connector sync, an action): a step
waits for its in-run parents, then queues in its pool by ``(-priority, enqueue time)``; a
failed step is retried per the run's RetryPolicy, then its in-run descendants are skipped.

Freshness: a connector table's *data time* is its sync's start; a model's is the oldest data
time of its parents when it starts; a dashboard (no compute) follows its parents at once.

Faults come from ``World.episodes`` (scheduled, recurring, with a ground-truth fix) and
``World.attempt_faults`` (per-attempt probability). A failed attempt emits a ``FailureRecord``
with a real vendor message; the failure is an *incident* until the unit succeeds again, resolved
``auto`` unless a human fixed the cause or approved the run that cleared it.

Safety audit (``unsafe``): :class:`~orchestrator.simulator.audit.SafetyAudit`, independent of
the decision core, watches every step as it executes (blackouts), every launch and completion
(daily budgets) and every action executed (validation rules, pre-authorisation re-derived from
the policies).

A person fixes only what has been reported: an approval clears a fault episode that had failed an
attempt when the approval was requested (so a fix lands no earlier than the answer to a request
made after the failure: ``approvals.delay``, later at night); the on-call engineer, after
``human_fix_delay``, clears the episode whose failure opened an incident.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from cronsim import CronSim

from orchestrator import perf
from orchestrator.core.graph import DASHBOARD
from orchestrator.core.records import (
    Action,
    CostRecord,
    FailureRecord,
    Materialization,
    RunRecord,
    RunStatus,
    Snapshot,
    SyncRecord,
)
from orchestrator.simulator.audit import SafetyAudit
from orchestrator.simulator.scenario import FaultEpisode, RetrySpec, Scenario, World

UTC = timezone.utc
RESYNC_FACTOR = {"resync_table": 1.5, "full_resync": 4.0}


@dataclass(eq=False)
class Step:
    sid: int
    run: SimRun
    unit: str
    is_sync: bool
    pool: str
    deps: int = 0
    children: list = field(default_factory=list)
    state: str = "pending"  # pending | queued | running | success | failure | skipped | canceled
    retries: int = 0
    start: float | None = None
    end: float | None = None
    data_time: float = 0.0
    resync: str | None = None
    attempt: int = -1  # global attempt index of the unit
    silent: tuple[str, bool] | None = None  # a silent failure hit this sync: (kind, detected)
    apparent: float | None = None  # the data time the shell believes it reads (silent failures)


@dataclass(eq=False)
class SimRun:
    run_id: str
    assets: tuple[str, ...]
    priority: int
    source: str  # schedule:<job> | retry | eager | native | action:<type>
    created: float
    retry: RetrySpec | None
    approved: bool = False
    not_before: float = 0.0
    steps: list = field(default_factory=list)
    open_steps: int = 0
    failed: bool = False
    canceled: bool = False
    ended: float | None = None
    action_id: str | None = None

    @property
    def done(self) -> bool:
        return self.open_steps == 0


@dataclass
class Incident:
    unit: str
    cause: str  # episode id or attempt-fault name
    fault: str
    category: str
    message: str
    recurring: bool
    opened: float
    first_action: float | None = None
    resolved: float | None = None
    resolved_by: str | None = None  # auto | human
    needs_person: bool = False  # ground truth: only a person can clear its cause


@dataclass
class ActionLog:
    action: Action
    decision: str  # execute | await_approval | record_only | rejected | approved | declined
    at: float
    executed_at: float | None = None
    unsafe: tuple[str, ...] = ()


class _Pool:
    __slots__ = ("cap", "busy", "heap")

    def __init__(self, cap: int):
        self.cap, self.busy, self.heap = cap, 0, []


class Simulation:
    def __init__(self, scenario: Scenario, seed: int, *, progress: Callable[[str], None] | None = None,
                 history_limit: int = 20):
        self.sc = scenario
        self.spec = scenario.spec
        self.world: World = scenario.realise(seed)
        self.seed = seed
        self.graph = scenario.graph
        self.t0 = scenario.t0
        self.horizon = scenario.horizon_s
        self.now = 0.0
        self.progress = progress
        self._heap: list = []
        self._seq = itertools.count()
        self._rid = itertools.count(1)
        self._sid = itertools.count(1)
        self.pools = {name: _Pool(cap) for name, cap in scenario.pools.items()}
        self.listeners: list = []  # objects with on_step_end(sim, step, ok) / on_run_end(sim, run)
        # state
        init = -self.spec.initial_age.total_seconds()
        self.last_success: dict[str, float] = {k: init for k in self.graph.keys}
        self.data_time: dict[str, float] = {k: init for k in self.graph.keys}
        self.attempts: dict[str, int] = {}
        self.active_units: dict[str, int] = {}  # unit -> steps pending/queued/running
        self.running_sync: dict[str, Step] = {}
        self.sync_waiters: dict[str, list[Step]] = {}
        self.paused: set[str] = set()
        # repairs reported outside any action: (subject, failure class, instant), e.g. a schema
        # patch applied (the schema-change sensor sees the table match the project again)
        self.repairs: list[tuple[str, str, float]] = []
        self.runs: dict[str, SimRun] = {}
        self.inflight_runs: dict[str, SimRun] = {}
        self.finished_runs: deque = deque(maxlen=300)
        self.history = {k: list(v)[-history_limit:] for k, v in self.world.history.items()}
        self.history_limit = history_limit
        self.materializations: deque = deque(maxlen=2000)
        self.failures: deque = deque(maxlen=2000)
        self.syncs: deque = deque(maxlen=500)
        self.costs: list[CostRecord] = []
        self.total_cost = 0.0
        self.incidents: list[Incident] = []
        self.open_incidents: dict[str, Incident] = {}
        self.actions: list[ActionLog] = []
        self.approvals_requested = 0
        self.standing_granted: dict[str, frozenset[str]] = {}  # standing approval id -> assets a person approved
        self.watch: dict[str, list[tuple[float, float]]] = {}  # target -> [(ready at, data time)]
        self._dash_children: dict[str, list[str]] = {}
        for n in self.graph:
            if n.role == DASHBOARD:
                for p in self.graph.parents(n.key):
                    self._dash_children.setdefault(p, []).append(n.key)
        # faults
        self._episodes: dict[str, list[tuple[int, FaultEpisode]]] = {}
        for i, ep in enumerate(self.world.episodes):
            self._episodes.setdefault(ep.target, []).append((i, ep))
        self._fixed: dict[int, float] = {}
        self._human_fixed: set[int] = set()
        self._observed: set[int] = set()  # episodes that have failed an attempt (reported)
        self._attempt_faults = [(f, targets, msg) for f, targets, msg in self.world.attempt_faults]
        self._rng = np.random.default_rng([seed, 31337])
        # silent failures: syncs that succeed with wrong data (scenario ``silent``)
        self.untrusted: dict[str, tuple[float, str, bool]] = {}  # table -> (true data time, kind, detected)
        self.apparent: dict[str, float] = {}  # key -> data time the shell believes (when it differs)
        self.silent_hits: list[tuple[float, str, str]] = []  # (at, connector, kind)
        self._silent = self._silent_episodes()
        # prices
        self._price_t, self._price_f = self._price_table()
        self._wh_rate = self.spec.cost.warehouse_usd_per_hour / 3600.0
        # policies (static parts: blackout, budgets, rollout) for the safety audit
        self.resolution = None
        self.auditor = SafetyAudit(None, self.t0)
        self._snapshot_cache: tuple[float, Snapshot] | None = None
        # pure-performance memos (orchestrator.perf): records of ended runs, float -> datetime
        self._record_memo: dict[str, tuple[tuple, RunRecord]] = {}
        self._dt_memo: dict[float, datetime] = {}
        # scripted schema changes (scenario ``schema_changes``): orchestrator/simulator/schema_changes.py
        self.schema_changes = None
        if getattr(self.spec, "schema_changes", None):
            from orchestrator.simulator.schema_changes import SchemaChangeScript

            self.schema_changes = SchemaChangeScript(self)
        # degradation precursors and maintenance windows (scenario ``precursors`` / ``maintenance``):
        # orchestrator/simulator/silent_precursors.py
        self.precursors = None
        if getattr(self.spec, "precursors", None) or getattr(self.spec, "maintenance", None):
            from orchestrator.simulator.silent_precursors import PrecursorScript

            self.precursors = PrecursorScript(self)

    def _silent_episodes(self) -> list[list]:
        from fnmatch import fnmatchcase

        out = []
        specs = getattr(self.spec, "silent", None) or []
        if not specs:
            return out
        conns = sorted(self.sc.connectors)
        days = int(self.horizon // 86400) + 2
        for sp in specs:
            targets = frozenset(c for c in conns if any(fnmatchcase(c, pat) for pat in sp.targets))
            for d in range(-1, days):
                day = (self.t0 + timedelta(days=d)).date()
                for hhmm in sp.at:
                    h, m = (int(x) for x in hhmm.split(":"))
                    start = (datetime.combine(day, datetime.min.time(), tzinfo=UTC)
                             + timedelta(hours=h, minutes=m) - self.t0).total_seconds()
                    if 0 <= start < self.horizon:
                        out.append([start, sp.kind, targets, sp.loads, sp.detected])
        return sorted(out, key=lambda e: e[0])

    def _silent_hit(self, st: Step) -> None:
        if not self._silent or st.resync:
            return
        for ep in self._silent:
            if ep[0] <= self.now and ep[3] > 0 and st.unit in ep[2]:
                ep[3] -= 1
                st.silent = (ep[1], ep[4])
                self.silent_hits.append((self.now, st.unit, ep[1]))
                return

    def _land(self, st: Step, k: str) -> None:
        """A step's output lands on ``k``: true and apparent data times (silent failures)."""
        before = self.data_time[k]
        if st.is_sync and not st.resync and (st.silent or (k in self.untrusted and self.untrusted[k][1] != "zero_rows")):
            kind, det = st.silent or self.untrusted[k][1:]
            self.untrusted[k] = (before, kind, det)  # the connector says success; the data did not move
            self.apparent[k] = max(self.apparent.get(k, before), st.data_time)
            return
        self.data_time[k] = max(before, st.data_time)
        if st.is_sync:
            self.untrusted.pop(k, None)
            self.apparent.pop(k, None)
            return
        app = max(self.apparent.get(k, before), st.apparent if st.apparent is not None else st.data_time)
        if app > self.data_time[k]:
            self.apparent[k] = app
        else:
            self.apparent.pop(k, None)

    # -- clock -----------------------------------------------------------------------------------
    def dt(self, t: float | None = None) -> datetime:
        return self.t0 + timedelta(seconds=self.now if t is None else t)

    def secs(self, at: datetime) -> float:
        return (at - self.t0).total_seconds()

    def at(self, t: float, fn: Callable, *args) -> None:
        heapq.heappush(self._heap, (max(t, self.now), next(self._seq), fn, args))

    def every(self, interval: float, fn: Callable, start: float = 0.0) -> None:
        def tick() -> None:
            fn(self)
            self.at(self.now + interval, tick)

        self.at(start, tick)

    def cron(self, expr: str, fn: Callable, *args, tz: str = "UTC", offset_s: float = 0.0) -> None:
        """Call ``fn(sim, *args)`` at each tick of ``expr`` (local time in ``tz``, DST-aware, as
        a Dagster schedule's ``execution_timezone``), moved by ``offset_s``, within the horizon."""
        from orchestrator.policies.calendar import get_zone

        first = self.t0 - timedelta(seconds=1 + max(0.0, offset_s))
        for tick in CronSim(expr, first.astimezone(get_zone(tz))):
            t = (tick - self.t0).total_seconds() + offset_s
            if t >= self.horizon:
                break
            if t >= 0:
                self.at(t, fn, self, *args)

    def run(self) -> Simulation:
        last_report = 0.0
        while self._heap:
            t, _, fn, args = heapq.heappop(self._heap)
            if t >= self.horizon:
                break
            self.now = t
            fn(*args)
            if self.progress and t - last_report >= 4 * 3600:
                last_report = t
                self.progress(f"  t={self.dt():%Y-%m-%d %H:%M} runs={len(self.runs)} "
                              f"in-flight={len(self.inflight_runs)} cost=${self.total_cost:,.0f}")
        self.now = self.horizon
        for run in list(self.inflight_runs.values()):  # still executing at the end: audit so far
            for st in run.steps:
                if st.state == "running" and st.start is not None:
                    self.auditor.step_ran(self.assets_of(st.unit), st.start, self.horizon, run.source,
                                          f"run {run.source} step {st.unit}", approved=run.approved)
        return self

    @property
    def unsafe(self) -> list[tuple[float, str, str]]:
        return [(t, what, why) for t, _, what, why in self.auditor.events]

    # -- prices ----------------------------------------------------------------------------------
    def _price_table(self) -> tuple[list[float], list[float]]:
        windows = []
        for w in self.spec.cost.off_peak:
            sh, sm = (int(x) for x in w.start.split(":"))
            eh, em = (int(x) for x in w.end.split(":"))
            windows.append((sh * 3600 + sm * 60, eh * 3600 + em * 60, w.factor))
        day0 = self.t0.replace(hour=0, minute=0, second=0, microsecond=0)
        off = (day0 - self.t0).total_seconds()
        days = int(self.horizon // 86400) + 4
        segs = []
        for d in range(-1, days):
            base = off + d * 86400
            for s, e, f in windows:
                if e <= s:
                    e += 86400
                segs.append((base + s, base + e, f))
        # sweep: factor at any instant = product of the windows containing it (normally one)
        edges = sorted({-1e12, 1e12, *[s for s, _, _ in segs], *[e for _, e, _ in segs]})
        ts, fs = [], []
        for a in edges[:-1]:
            f = 1.0
            for s, e, wf in segs:
                if s <= a < e:
                    f *= wf
            ts.append(a)
            fs.append(f)
        return ts, fs

    def price_factor(self, t: float) -> float:
        return self._price_f[bisect.bisect_right(self._price_t, t) - 1]

    def price_integral(self, a: float, b: float) -> float:
        """Integral of the warehouse price factor over [a, b] (seconds at factor 1 equivalent)."""
        if b <= a:
            return 0.0
        ts, fs = self._price_t, self._price_f
        i = bisect.bisect_right(ts, a) - 1
        total, t = 0.0, a
        while t < b:
            nxt = ts[i + 1] if i + 1 < len(ts) else float("inf")
            seg_end = min(b, nxt)
            total += (seg_end - t) * fs[i]
            t = seg_end
            i += 1
        return total

    def compute_cost(self, start: float, end: float) -> float:
        busy = end - start
        billed = self.price_integral(start, end)
        if busy < self.spec.cost.min_billed_s:
            billed += (self.spec.cost.min_billed_s - busy) * self.price_factor(start)
        return billed * self._wh_rate

    def sync_cost(self, connector: str, start: float, end: float, resync: str | None) -> tuple[float, int]:
        c = self.sc.connectors[connector]
        cost = self.spec.cost
        since = start - min(self.data_time.get(t, start) for t in c.tables)
        hours = min(max(since, 0.0), 48 * 3600) / 3600
        if resync:
            hours = 24 * (4 if resync == "full_resync" else 1)
        rows = int(c.rows_per_hour * hours)
        usd = rows / 1e6 * cost.usd_per_million_rows * (1.0 if resync else cost.new_row_share)
        usd += cost.sync_fixed_usd + self.price_integral(start, end) * self._wh_rate * cost.sync_load_share
        return usd, rows

    # -- policies / audit ------------------------------------------------------------------------
    def set_resolution(self, resolution) -> None:
        self.resolution = resolution
        self.auditor = SafetyAudit(resolution, self.t0)

    def _charge(self, rec: CostRecord, keys: tuple[str, ...], source: str = "", what: str = "",
                approved: bool = False) -> None:
        self.costs.append(rec)
        self.total_cost += rec.amount_usd
        self.auditor.charge(keys, self.now, rec.amount_usd, source, what, approved=approved)

    # -- units -----------------------------------------------------------------------------------
    def unit_of(self, key: str) -> str | None:
        """The step that produces an asset: its connector, itself (model) or None (dashboard)."""
        node = self.graph.get(key)
        if node is None:
            return None
        if node.connector:
            return node.connector if node.connector in self.sc.connectors else None
        if node.role == DASHBOARD:
            return None
        return key

    def assets_of(self, unit: str) -> tuple[str, ...]:
        c = self.sc.connectors.get(unit)
        return c.tables if c else (unit,)

    # -- submitting work -------------------------------------------------------------------------
    def submit(self, keys, *, priority: int = 0, source: str = "manual", retry: RetrySpec | None = None,
               not_before: float | None = None, approved: bool = False, resync: str | None = None,
               action_id: str | None = None, audit: bool = True, units: list[str] | None = None) -> SimRun | None:
        """A run over asset keys (connector tables pull in their connector's sync)."""
        self._snapshot_cache = None
        keys = tuple(dict.fromkeys(keys))
        if units is None:
            units = []
            for k in keys:
                u = self.unit_of(k)
                if u is not None:
                    units.append(u)
            units = list(dict.fromkeys(units))
        if not units:
            return None
        if audit:
            self.auditor.launch(keys or tuple(t for u in units for t in self.assets_of(u)), self.now, source,
                                f"run {source}")
        run = SimRun(f"sim-{next(self._rid)}", keys or tuple(t for u in units for t in self.assets_of(u)),
                     priority, source, self.now, retry, approved, not_before or 0.0, action_id=action_id)
        self.runs[run.run_id] = run
        self.inflight_runs[run.run_id] = run
        steps: dict[str, Step] = {}
        for u in units:
            is_sync = u in self.sc.connectors
            pool = self.sc.connectors[u].pool if is_sync else self.sc.model_pool[u]
            steps[u] = Step(next(self._sid), run, u, is_sync, pool, resync=resync if is_sync else None)
        for u, st in steps.items():
            if st.is_sync:
                continue
            seen = set()
            for p in self.graph.parents(u):
                pu = self.unit_of(p)
                if pu is not None and pu in steps and pu not in seen and pu != u:
                    seen.add(pu)
                    st.deps += 1
                    steps[pu].children.append(st)
        run.steps = list(steps.values())
        run.open_steps = len(run.steps)
        for st in run.steps:
            self.active_units[st.unit] = self.active_units.get(st.unit, 0) + 1
            self._note_action(st.unit)
        for st in run.steps:
            if st.deps == 0:
                self._ready(st)
        return run

    def _note_action(self, unit: str) -> None:
        inc = self.open_incidents.get(unit)
        if inc is not None and inc.first_action is None:
            inc.first_action = self.now

    def _ready(self, st: Step, delay: float = 0.0) -> None:
        t = max(self.now + delay, st.run.not_before)
        if t > self.now:
            self.at(t, self._enqueue, st)
        else:
            self._enqueue(st)

    def _enqueue(self, st: Step) -> None:
        if st.state not in ("pending", "retry"):
            return
        if st.run.not_before > self.now:  # deferred after it became ready
            self.at(st.run.not_before, self._enqueue, st)
            return
        if st.retries:
            self._note_action(st.unit)
        if st.is_sync and st.unit in self.paused and st.run.source == "native":
            self._finish(st, False, "connector paused", None, cost=False, skipped=True)
            return
        st.state = "queued"
        pool = self.pools[st.pool]
        heapq.heappush(pool.heap, (-st.run.priority, self.now, st.sid, st))
        self._dispatch(pool)

    def _dispatch(self, pool: _Pool) -> None:
        while pool.busy < pool.cap and pool.heap:
            _, _, _, st = heapq.heappop(pool.heap)
            if st.state != "queued":
                continue
            if st.is_sync and st.unit in self.running_sync and not st.resync:
                # the connector is already syncing: wait for that sync (Fivetran/Airbyte behaviour)
                st.state = "running"
                self.sync_waiters.setdefault(st.unit, []).append(st)
                continue
            pool.busy += 1
            self._start(st)

    def _active_cause(self, unit: str) -> tuple[str, FaultEpisode | None, str | None, str | None]:
        """(cause id, episode, message, fault name) of what makes an attempt fail now."""
        for i, ep in self._episodes.get(unit, ()):
            if ep.start > self.now:
                break
            if i in self._fixed:
                continue
            if ep.end is not None and self.now >= ep.end:
                continue
            return f"ep{i}", ep, ep.message, ep.fault
        return "", None, None, None

    def _start(self, st: Step) -> None:
        self._snapshot_cache = None
        st.state = "running"
        st.start = self.now
        k = self.attempts.get(st.unit, 0)
        self.attempts[st.unit] = k + 1
        st.attempt = k
        dur = self.world.duration(st.unit, k) * RESYNC_FACTOR.get(st.resync or "", 1.0)
        if st.is_sync:
            self.running_sync[st.unit] = st
            st.data_time = self.now
            self._silent_hit(st)
            if self.precursors is not None:
                dur = self.precursors.sync_started(st, dur)
        else:
            parents = self.graph.parents(st.unit)
            st.data_time = min((self.data_time[p] for p in parents), default=self.now) if parents else self.now
            if self.apparent:
                st.apparent = min((self.apparent.get(p, self.data_time[p]) for p in parents),
                                  default=self.now) if parents else self.now
        cause, ep, message, fault = self._active_cause(st.unit)
        if ep is not None and st.resync and ep.fix == "resync_table":
            # a resync is the fix for schema drift: it clears the episode and succeeds (the
            # episode's cause and message are cleared too: before, the attempt that cleared it
            # still failed with the drift message)
            self._fixed[int(cause[2:])] = self.now
            cause, ep, message, fault = "", None, None, None
        if ep is None:
            u = self.world.draw(st.unit, k)
            acc = 0.0
            for f, targets, msg in self._attempt_faults:
                if st.unit in targets:
                    acc += f.probability or 0.0
                    if u < acc:
                        cause, message, fault = f"af:{f.name}", msg, f.name
                        break
        if message is not None:
            end = self.now + max(1.0, dur * self.spec.fail_after)
            self.at(end, self._finish, st, False, message, (cause, ep, fault))
        else:
            self.at(self.now + dur, self._finish, st, True, None, None)

    def _finish(self, st: Step, ok: bool, message: str | None, cause, *, cost: bool = True,
                skipped: bool = False) -> None:
        if st.state not in ("running", "queued", "pending", "retry"):
            return  # canceled meanwhile
        self._snapshot_cache = None
        was_running = st.start is not None and st.state == "running"
        st.end = self.now
        if was_running:
            pool = self.pools[st.pool]
            pool.busy -= 1
        if st.is_sync and self.running_sync.get(st.unit) is st:
            del self.running_sync[st.unit]
        keys = self.assets_of(st.unit)
        if cost and was_running:
            if st.is_sync and self.precursors is not None:
                self.precursors.sync_ended(st, ok)
            if st.is_sync:
                usd, rows = self.sync_cost(st.unit, st.start, self.now, st.resync) if ok else (0.0, 0)
                self.syncs.append(SyncRecord(st.unit, f"{st.run.run_id}:{st.sid}",
                                             "succeeded" if ok else "failed", self.dt(st.start), self.dt(),
                                             triggered_by="schedule" if st.run.source == "native" else "dagster",
                                             error_message=message, rows=rows, tables=keys))
                if usd:
                    self._charge(CostRecord(self.dt(), usd, "sync", connector=st.unit,
                                            compute_s=self.now - st.start,
                                            detail={"rows": rows, "triggered_by": "schedule" if st.run.source == "native"
                                                    else "dagster"}), keys,
                                 st.run.source, f"run {st.run.source} step {st.unit}", approved=st.run.approved)
            else:
                usd = self.compute_cost(st.start, self.now)
                self._charge(CostRecord(self.dt(), usd, "run", asset_key=st.unit,
                                        compute_s=self.now - st.start), keys,
                             st.run.source, f"run {st.run.source} step {st.unit}", approved=st.run.approved)
        if was_running:
            self.auditor.step_ran(keys, st.start, self.now, st.run.source, f"run {st.run.source} step {st.unit}",
                                  approved=st.run.approved)
        if ok:
            self._succeed(st, keys)
        elif not skipped:
            self._fail(st, keys, message or "failed", cause)
        else:
            st.state = "skipped"
            self._close_step(st)
        # piggy-backed syncs share the outcome
        if st.is_sync and st.unit in self.sync_waiters and not st.resync:
            for w in self.sync_waiters.pop(st.unit):
                w.start, w.end, w.data_time = st.start, self.now, st.data_time
                if ok:
                    w.state = "success"
                    self._release_children(w, True)
                    self._close_step(w)
                else:
                    self._fail(w, keys, message or "failed", cause, record=False)
        if was_running:
            self._dispatch(self.pools[st.pool])

    def _succeed(self, st: Step, keys: tuple[str, ...]) -> None:
        st.state = "success"
        dur = self.now - (st.start or self.now)
        for k in keys:
            self.last_success[k] = self.now
            self._land(st, k)
            self.materializations.append(Materialization(k, self.dt(), st.run.run_id, None, dur))
            h = self.history.setdefault(k, [])
            h.append(round(dur, 1))
            if len(h) > self.history_limit:
                del h[0]
            if k in self.watch:
                self.watch[k].append((self.now, self.data_time[k]))
            for d in self._dash_children.get(k, ()):
                self._update_dashboard(d)
        inc = self.open_incidents.pop(st.unit, None)
        if inc is not None:
            inc.resolved = self.now
            human = st.run.approved or any(
                int(c[2:]) in self._human_fixed for c in [inc.cause] if c.startswith("ep")
            )
            inc.resolved_by = "human" if human else "auto"
        self._release_children(st, True)
        self._close_step(st)
        for lst in self.listeners:
            lst.on_step_end(self, st, True)

    def _update_dashboard(self, d: str) -> None:
        parents = self.graph.parents(d)
        dt = min(self.data_time[p] for p in parents) if parents else self.now
        if self.apparent:
            app = min(self.apparent.get(p, self.data_time[p]) for p in parents) if parents else self.now
            if app > max(dt, self.data_time[d]):
                self.apparent[d] = max(self.apparent.get(d, app), app)
                self.last_success[d] = self.now  # refreshed on data the shell believes new
        if dt > self.data_time[d]:
            self.data_time[d] = dt
            self.last_success[d] = self.now
            if self.apparent.get(d, dt) <= dt:
                self.apparent.pop(d, None)
            if d in self.watch:
                self.watch[d].append((self.now, dt))

    def _fail(self, st: Step, keys: tuple[str, ...], message: str, cause, *, record: bool = True) -> None:
        cause_id, ep, fault = cause if cause else ("", None, None)
        if record:
            system = st.unit.split(":", 1)[0] if st.is_sync else "dbt"
            self.failures.append(FailureRecord(
                f"f{len(self.failures)}-{st.sid}-{st.retries}", self.dt(), message, system,
                asset_key=None if st.is_sync else st.unit, connector=st.unit if st.is_sync else None,
                run_id=st.run.run_id,
            ))
            if cause_id.startswith("ep"):
                self._observed.add(int(cause_id[2:]))
            inc = self.open_incidents.get(st.unit)
            if inc is None and cause_id:
                category = ep.category if ep else next(
                    (f.category for f, _, _ in self._attempt_faults if f"af:{f.name}" == cause_id), "unknown")
                recurring = ep.recurring if ep else True
                fix = ep.fix if ep else next(
                    (f.effective_fix for f, _, _ in self._attempt_faults if f"af:{f.name}" == cause_id), "retry")
                inc = Incident(st.unit, cause_id, fault or "", category, message, recurring, self.now,
                               needs_person=fix == "human")
                self.incidents.append(inc)
                self.open_incidents[st.unit] = inc
                if ep is not None and ep.fix in ("human", "resync_table"):
                    idx = int(cause_id[2:])
                    self.at(self.now + self.spec.human_fix_delay.total_seconds(), self._human_fix, idx)
        retry = st.run.retry
        if retry is not None and st.retries < retry.max_retries and not st.run.canceled:
            st.retries += 1
            delay = retry.delay.total_seconds()
            if retry.backoff == "exponential":
                delay *= 2 ** (st.retries - 1)
            elif retry.backoff == "linear":
                delay *= st.retries
            st.state = "retry"
            st.start = None
            self.at(self.now + delay, self._enqueue, st)
            return
        st.state = "failure"
        st.run.failed = True
        self._release_children(st, False)
        self._close_step(st)
        for lst in self.listeners:
            lst.on_step_end(self, st, False)

    def _human_fix(self, idx: int) -> None:
        if idx not in self._fixed:
            self._fixed[idx] = self.now
            self._human_fixed.add(idx)

    def human_fix_unit(self, unit: str, reported: frozenset[int] | set[int] | None = None) -> None:
        """An approver fixed the cause of this unit's current failure (credentials, code...): what
        had been reported when they were asked (``reported``; default: everything reported now)."""
        seen = self._observed if reported is None else reported
        for i, ep in self._episodes.get(unit, ()):
            if i in seen and i not in self._fixed and ep.fix == "human":
                self._human_fix(i)

    def _release_children(self, st: Step, ok: bool) -> None:
        for ch in st.children:
            if ch.state != "pending":
                continue
            if ok:
                ch.deps -= 1
                if ch.deps == 0:
                    self._ready(ch)
            else:
                ch.state = "skipped"
                self._release_children(ch, False)
                self._close_step(ch)

    def _close_step(self, st: Step) -> None:
        n = self.active_units.get(st.unit, 0) - 1
        if n > 0:
            self.active_units[st.unit] = n
        else:
            self.active_units.pop(st.unit, None)
        run = st.run
        run.open_steps -= 1
        if run.open_steps == 0:
            run.ended = self.now
            self.inflight_runs.pop(run.run_id, None)
            self.finished_runs.append(run)
            for lst in self.listeners:
                if hasattr(lst, "on_run_end"):
                    lst.on_run_end(self, run)

    def cancel(self, run: SimRun) -> None:
        self._snapshot_cache = None
        run.canceled = True
        for st in run.steps:
            if st.state in ("pending", "queued", "retry"):
                st.state = "canceled"
                self._close_step(st)
            elif st.state == "running" and st.start is not None:
                self._finish(st, False, "This attempt was cancelled", None)
                if st.state == "retry":
                    st.state = "canceled"
                    self._close_step(st)

    def defer(self, run: SimRun, until: float) -> None:
        run.not_before = max(run.not_before, until)
        for st in run.steps:
            if st.state == "queued":
                st.state = "pending"
                self.at(until, self._enqueue, st)

    # -- connectors' own schedulers (Fivetran/Airbyte sync frequency) ----------------------------
    def start_native_schedules(self) -> None:
        for cid, c in self.sc.connectors.items():
            self.cron(c.schedule, lambda sim, cid=cid: sim.submit((), units=[cid], source="native", audit=False))

    # -- approvals -------------------------------------------------------------------------------
    def request_approval(self, action: Action, on_approved: Callable[[Action], None]) -> None:
        """A person answers later (``approvals.answer_at``). Approving an action fixes what it
        reported on its units; approving a *standing approval* (``orchestrator.core.standing``)
        fixes nothing: it is recorded (``standing_granted``) as the scope of routine refreshes the
        person authorised, which the safety audit checks on its own."""
        from orchestrator.core.standing import extension_scopes

        self.approvals_requested += 1
        standing = action.type == "standing_approval"
        if not standing:
            for u in self._units_of_action(action):
                self._note_action(u)
        approve = self._rng.random() < self.spec.approvals.approve
        reported = frozenset(self._observed)  # the person fixes what the request could tell them

        def answer() -> None:
            if approve:
                if standing:
                    self.standing_granted[action.action_id] = frozenset(action.asset_keys)
                    # a budget extension (one policy, or several asked together): the amount and
                    # days the person granted each policy named
                    for policy, _, first, days, usd in extension_scopes(action):
                        self.auditor.extend(policy, first, usd, days)
                else:
                    for u in self._units_of_action(action):
                        self.human_fix_unit(u, reported)
                self.actions.append(ActionLog(action, "approved", self.now))
                on_approved(action)
            else:
                self.actions.append(ActionLog(action, "declined", self.now))

        self.at(self.spec.approvals.answer_at(self.t0, self.now), answer)

    def _units_of_action(self, action: Action) -> list[str]:
        units = [u for k in action.asset_keys if (u := self.unit_of(k))]
        if action.connector and action.connector in self.sc.connectors:
            units.append(action.connector)
        if action.run_id and action.run_id in self.runs:
            units.extend(st.unit for st in self.runs[action.run_id].steps if st.state in ("failure", "skipped"))
        return list(dict.fromkeys(units))

    # -- executing actions -----------------------------------------------------------------------
    def execute(self, action: Action, *, approved: bool = False, decision: str = "execute",
                standing: str | None = None) -> ActionLog:
        """Carry out one action on the simulated fleet (after the safety audit). ``standing``:
        the standing approval(s) (comma-separated ids) the planner names as its authorisation;
        the audit accepts only what a person granted here (``standing_granted``)."""
        keys = tuple(action.asset_keys)
        if action.connector and action.connector in self.sc.connectors and not keys:
            keys = self.sc.connectors[action.connector].tables
        log = ActionLog(action, decision, self.now, self.now)
        granted = None
        if standing:
            scopes = [self.standing_granted.get(s) for s in standing.split(",")]
            granted = frozenset().union(*scopes) if all(sc is not None for sc in scopes) else None
        log.unsafe = self.auditor.action(
            action, keys, self.now, approved=approved, known_assets=self.graph, known_connectors=self.sc.connectors,
            inflight=[(r.run_id, r.assets) for r in self.inflight_runs.values()], standing=granted)
        self.actions.append(log)
        t = action.type
        nb = self.secs(action.not_before) if action.not_before else None
        if t in ("materialize", "backfill"):
            old = self.runs.get(action.run_id or "")
            if old is not None and old.ended is None:
                self.cancel(old)  # re-prioritisation: cancel the queued run, re-submit it
            self.submit(keys, priority=action.priority, source=f"action:{t}", not_before=nb, approved=approved,
                        action_id=action.action_id, audit=False)
        elif t == "retry":
            run = self.runs.get(action.run_id or "")
            retry_keys = keys
            if run is not None and not keys:
                retry_keys = tuple(k for st in run.steps if st.state in ("failure", "skipped", "canceled")
                                   for k in self.assets_of(st.unit))
            self.submit(retry_keys, priority=action.priority, source="action:retry", not_before=nb,
                        approved=approved, action_id=action.action_id, audit=False)
        elif t in ("resync_table", "full_resync"):
            cid = action.connector or next((self.graph.node(k).connector for k in keys
                                            if k in self.graph and self.graph.node(k).connector), None)
            if cid in self.sc.connectors:
                self.submit((), units=[cid], priority=action.priority, source=f"action:{t}", not_before=nb,
                            approved=approved, resync=t, action_id=action.action_id, audit=False)
        elif t == "pause_connector" and action.connector:
            self.paused.add(action.connector)
        elif t == "resume_connector" and action.connector:
            self.paused.discard(action.connector)
        elif t == "defer":
            run = self.runs.get(action.run_id or "")
            if run is not None and nb is not None:
                self.defer(run, nb)
            elif keys:
                self.submit(keys, priority=action.priority, source="action:defer", not_before=nb,
                            approved=approved, action_id=action.action_id, audit=False)
        elif t == "cancel_run":
            run = self.runs.get(action.run_id or "")
            if run is not None:
                self.cancel(run)
        # reschedule_connector: recorded only (the action carries no new schedule)
        return log

    # -- snapshot --------------------------------------------------------------------------------
    def at_dt(self, v: float) -> datetime:
        """``t0 + v`` seconds as a datetime (memoised: the same few instants recur every tick)."""
        if not perf.enabled():
            return self.t0 + timedelta(seconds=v)
        hit = self._dt_memo.get(v)
        if hit is None:
            if len(self._dt_memo) > 200_000:
                self._dt_memo.clear()
            hit = self._dt_memo[v] = self.t0 + timedelta(seconds=v)
        return hit

    def _run_record(self, run: SimRun) -> RunRecord:
        if run.ended is not None and perf.enabled():
            # an ended run's record changes only if it is cancelled afterwards
            key = (run.ended, run.canceled, run.failed)
            hit = self._record_memo.get(run.run_id)
            if hit is None or hit[0] != key:
                hit = self._record_memo[run.run_id] = (key, self._make_run_record(run))
                if len(self._record_memo) > 4 * (self.finished_runs.maxlen or 300):
                    keep = {r.run_id for r in self.finished_runs}
                    self._record_memo = {k: v for k, v in self._record_memo.items() if k in keep}
            return hit[1]
        return self._make_run_record(run)

    def _make_run_record(self, run: SimRun) -> RunRecord:
        if run.ended is None:
            status = RunStatus.running if any(st.state == "running" for st in run.steps) else RunStatus.queued
        else:
            status = RunStatus.canceled if run.canceled else (RunStatus.failure if run.failed else RunStatus.success)
        started = min((st.start for st in run.steps if st.start is not None), default=None)
        return RunRecord(run.run_id, status, run.assets, self.dt(run.created),
                         self.dt(started) if started is not None else None,
                         self.dt(run.ended) if run.ended is not None else None,
                         priority=run.priority, tags={"dagster/priority": str(run.priority), "sim/source": run.source,
                                                      **({"sim/action": run.action_id} if run.action_id else {})})

    def snapshot(self) -> Snapshot:
        """What a sensor would see now (the same record types the Dagster shell fills)."""
        if self._snapshot_cache and self._snapshot_cache[0] == self.now:
            return self._snapshot_cache[1]
        t0 = self.t0
        at_dt = self.at_dt
        last = {k: at_dt(v) for k, v in self.last_success.items()}
        runs = [self._run_record(r) for r in self.inflight_runs.values()]
        runs += [self._run_record(r) for r in self.finished_runs]
        cutoff = self.dt() - timedelta(hours=24)
        running_syncs = [SyncRecord(cid, f"{st.run.run_id}:{st.sid}", "running", self.dt(st.start),
                                    tables=self.assets_of(cid)) for cid, st in self.running_sync.items()]
        snap = Snapshot(
            taken_at=self.dt(), graph=self.graph, last_success=last,
            materializations=list(self.materializations), runs=runs,
            durations={k: list(v) for k, v in self.history.items()},
            syncs=list(self.syncs) + running_syncs,
            failures=[f for f in self.failures if f.at >= cutoff],
            costs=list(self.costs),
        )
        self._snapshot_cache = (self.now, snap)
        return snap
