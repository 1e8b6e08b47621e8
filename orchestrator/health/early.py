"""Early warning turned into pre-emptive actions (no Dagster imports).

``connector_risk`` reads a connector's sync signals (``orchestrator.health.signals``) into a
``ConnectorRisk``: the early warning of ``orchestrator.health.score`` (``p_fail``: recency-weighted
failures, odds raised by a rising warning/429 rate and duration creep; the next sync's duration
from a log-linear trend of the last 20) plus the connector's announced maintenance windows.

``preempt`` (called by ``orchestrator.core.decide`` when the snapshot carries
``connector_risk``) proposes, for an at-risk connector whose tables a governed asset reads before
a deadline, a sync that starts *earlier* than the planner would (its plan assumes the usual
duration and no failure):

* **maintenance ahead**: a known window of the source falls between now and the deadline and a
  just-in-time sync would land in it: sync now, the last tick before the window opens (a sync
  that starts inside the window fails until it ends);
* **failure risk** (a rising warning/429 rate, or ``p_fail`` >= 0.3): start ``FAIL_LEAD_S``
  earlier than the latest start, leaving room for the failure and a retry;
* **overrun risk** (the trend puts the next sync at >= 1.3 x its usual duration): start by the
  latest start computed from the trend's duration instead of the usual one.

Only when a sync now counts for the deadline (now >= the deadline's window opening) and the
tables are not already fresh for it; never for a paused connector, a connector already syncing,
one whose latest sync failed (the retry path owns it) or one the plan already syncs. The action is an ordinary ``materialize`` of the connector's
tables and the models between them and the governed asset (the whole chain starts earlier)
with ``cause: early_warning`` and the reason (probabilities, trend, window): validation
and the gate decide as for any sync.

Two more pre-emptive actions, each with ``cause: early_warning`` and its reason:

* **pause ahead of a known maintenance window**: at the last tick before an announced window
  opens, ``pause_connector`` -- only when no governed deadline needs a sync inside it (a stale
  asset due after the window opens whose latest start falls before it closes); after the window
  closes, ``resume_connector`` for a pause the early warning made (``early_pauses`` reads the
  ledger; without one, a window that ended within ``RESUME_GRACE_S`` and a latest sync that did
  not fail);
* **move to off-peak**: an at-risk connector whose next sync no deadline needs before its
  policy's next off-peak window gets a ``defer`` of its tables to the window's opening (every
  governed deadline it feeds is still met from there).

Each kind (``KINDS``: ``earlier``, ``pause``, ``off_peak``) can be left out (``preempt(kinds=...)``,
``PlannerConfig.preempt_kinds``), which is how ``benchmarks/bench_early_warning.py --kinds``
measures the gain of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from orchestrator.health.signals import SyncSignal, aware

P_FAIL = 0.3  # p_fail at which a connector is at risk of failing
CREEP = 1.3  # the trend's next duration over the usual one at which it is at risk of overrunning
FAIL_LEAD_S = 2 * 3600.0  # how much earlier an at-risk-of-failing connector syncs
MARGIN = 1.25  # on the expected sync duration
DEFAULT_MODEL_S = 300.0  # a model's duration when none is known
DEFAULT_SYNC_S = 1800.0
CHAIN_S = 2 * 3600.0  # governed assets due this long after the first deadline start with it
# the kinds of pre-emptive action (``preempt(kinds=...)``, ``PlannerConfig.preempt_kinds``):
# ``earlier`` a sync that starts earlier, ``pause`` pause ahead of a window and resume after it,
# ``off_peak`` move the next sync to the off-peak window
KINDS = ("earlier", "pause", "off_peak")


@dataclass(frozen=True)
class ConnectorRisk:
    connector: str
    p_fail: float
    p_overrun: float
    next_s: float | None  # the next sync's duration from the trend
    usual_s: float | None  # the median successful duration before the last day
    maintenance: tuple[tuple[datetime, datetime], ...] = ()
    why: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()  # detector kinds on the latest load (duration_creep, warning_rate ...)

    @property
    def failing(self) -> bool:
        return self.p_fail >= P_FAIL or bool({"warning_rate", "rate_limit_rate"} & set(self.kinds))

    @property
    def creeping(self) -> bool:
        return bool(self.next_s and self.usual_s and self.next_s >= CREEP * self.usual_s)

    @property
    def at_risk(self) -> bool:
        return self.failing or self.creeping or self.p_overrun >= P_FAIL

    def expected_s(self) -> float:
        cands = [x for x in (self.next_s if self.creeping else None, self.usual_s) if x]
        return max(cands) if cands else DEFAULT_SYNC_S

    def to_dict(self) -> dict:
        return {"connector": self.connector, "p_fail": round(self.p_fail, 3), "p_overrun": round(self.p_overrun, 3),
                "next_s": round(self.next_s) if self.next_s else None,
                "usual_s": round(self.usual_s) if self.usual_s else None, "at_risk": self.at_risk,
                "maintenance": [[a.isoformat(), b.isoformat()] for a, b in self.maintenance],
                "why": list(self.why), "kinds": list(self.kinds)}


def connector_risk(signals: list[SyncSignal], now: datetime, *, maintenance=(), connector: str | None = None,
                   slot_s: float | None = None) -> ConnectorRisk:
    """The early warning of one connector from its signals (every table) and its windows."""
    from orchestrator.health.detect import TableSeries
    from orchestrator.health.score import early_warning

    now = aware(now)
    sigs = sorted((s for s in signals if aware(s.started_at) <= now), key=lambda s: s.started_at)
    latest = []
    for table in sorted({s.table for s in sigs}):
        series = TableSeries([s for s in sigs if s.table == table])
        if series.all:
            latest += series.detect(series.all[-1])
    recent = [s for s in sigs if aware(s.started_at) >= now - timedelta(days=30)]
    ew = early_warning(recent, latest, now, slot_s)
    by_sync: dict[str, float] = {}
    for s in sigs:
        if s.succeeded and s.duration_s and aware(s.started_at) < now - timedelta(days=1):
            by_sync[s.sync_id] = s.duration_s
    usual = float(np.median(list(by_sync.values()))) if by_sync else None
    # windows ahead, and one that ended within the grace (its paused connector is resumed)
    windows = tuple(sorted((aware(a), aware(b)) for a, b in maintenance
                           if aware(b) > now - timedelta(seconds=RESUME_GRACE_S)))
    why = list(ew.why)
    if usual and ew.next_s and ew.next_s >= CREEP * usual:
        why.append(f"the trend puts the next sync at {ew.next_s:.0f}s against the usual {usual:.0f}s")
    for a, b in windows:
        if b <= now:
            continue
        why.append(f"maintenance window {a:%Y-%m-%d %H:%M}-{b:%H:%M} UTC announced")
    return ConnectorRisk(connector=connector or (sigs[0].connector if sigs else "?"), p_fail=ew.p_fail,
                         p_overrun=ew.p_overrun, next_s=ew.next_s, usual_s=usual, maintenance=windows,
                         why=tuple(why), kinds=tuple(sorted({a.kind for a in latest})))


def _median(snapshot, key: str, default: float) -> float:
    d = snapshot.durations.get(key) if snapshot.durations else None
    return float(np.median(d)) if d else default


def _downstream_s(snapshot, tables: set[str], target: str) -> float:
    """The longest chain of model durations from ``tables`` to ``target`` (medians)."""
    graph = snapshot.graph
    between = graph.downstream_closure(*tables) & graph.upstream_closure(target, include_self=True)
    memo: dict[str, float] = {}

    def longest(k: str) -> float:
        if k in memo:
            return memo[k]
        node = graph.get(k)
        own = 0.0 if node is None or node.role in ("dashboard", "connector_table") else _median(snapshot, k, DEFAULT_MODEL_S)
        memo[k] = own + max((longest(p) for p in graph.parents(k) if p in between), default=0.0)
        return memo[k]

    return longest(target) if target in between or target in tables else 0.0


def _sync_cost(snapshot, conn: str, tables) -> float:
    per = [c.amount_usd for c in snapshot.costs if c.connector == conn and c.source == "sync"] if snapshot.costs else []
    return round(float(np.mean(per)), 4) if per else 0.0


def early_pauses(ledger) -> dict[str, datetime]:
    """Connectors whose current pause (the last successful pause/resume in ``ledger``) is an
    early-warning pause ahead of a maintenance window, with the end of that window."""
    from orchestrator.core.incidents import DONE_OK
    from orchestrator.core.vocab import ActionType

    last: dict[str, tuple[datetime, object]] = {}
    for e in getattr(ledger, "entries", {}).values():
        conn = e.action.connector
        if not conn or e.status != DONE_OK:
            continue
        if ActionType.parse(e.action.type) not in (ActionType.pause_connector, ActionType.resume_connector):
            continue
        if conn not in last or aware(e.at) >= last[conn][0]:
            last[conn] = (aware(e.at), e.action)
    out = {}
    for conn, (_, act) in last.items():
        cyc = act.cycle or ""
        if act.type == "pause_connector" and act.cause == "early_warning" and cyc.startswith(PAUSE_MARK):
            out[conn] = aware(datetime.fromisoformat(cyc.rsplit("|", 1)[1]))
    return out


PAUSE_MARK = "early_warning|pause|"
RESUME_GRACE_S = 3600.0  # an ended window is kept this long so the paused connector is resumed


def _governed(assessment, below: set, now: datetime) -> list:
    return sorted(((k, fa) for k, fa in assessment.freshness.items()
                   if k in below and fa.deadline is not None and fa.window_open is not None
                   and aware(fa.deadline) > now), key=lambda kv: kv[1].deadline)


def _stale_for(snapshot, tables, opens: datetime) -> bool:
    dts = snapshot.data_time or {}
    return any((dt := dts.get(t) or snapshot.last_success.get(t)) is None or aware(dt) < opens for t in tables)


def _maintenance_actions(snapshot, conn, risk, tables, governed, *, now, tick_s, paused, running) -> list:
    """Pause ahead of an announced window (at the last tick before it opens); ``_resumes`` resumes.

    A pause only when a sync during the window would fail (an announced maintenance window is one
    in which the source refuses syncs) and no deadline needs a sync inside it: no governed asset
    fed by the connector, stale for its cycle, whose deadline falls after the window opens and
    whose latest start (usual sync + models, with margin) falls before it closes."""
    from orchestrator.core.records import Action
    from orchestrator.planning.common import action_id

    out = []
    sync_s = risk.expected_s() * MARGIN
    if conn in paused:
        return out
    if conn in running:
        return out
    for a, b in risk.maintenance:
        if not (now < a <= now + timedelta(seconds=tick_s)):
            continue
        needs = []
        for key, fa in governed:
            d = aware(fa.deadline)
            need = sync_s + _downstream_s(snapshot, tables, key)
            if d > a and d - timedelta(seconds=need) < b and _stale_for(snapshot, tables, aware(fa.window_open)):
                needs.append(key)
        if needs:
            continue  # a deadline needs a sync inside the window: leave it to the sync-earlier path
        mark = f"{PAUSE_MARK}{a.isoformat()}|{b.isoformat()}"
        out.append(Action(
            action_id=action_id("pause_connector", conn, mark), type="pause_connector", connector=conn,
            cause="early_warning", cycle=mark,
            reason=(f"early warning on {conn}: the source's announced maintenance window "
                    f"{a:%Y-%m-%d %H:%M}-{b:%H:%M} UTC opens before the next tick and a sync that starts inside "
                    f"it fails; no deadline needs a sync before it closes: pause {conn} now and resume it at "
                    f"{b:%H:%M}")))
        break
    return out


def _resumes(risks, paused, failing_now, ours, now) -> list:
    """``resume_connector`` for a connector the early warning paused ahead of a window that has
    closed (``ours``: from the ledger; without one, a window of its that ended within
    ``RESUME_GRACE_S`` and a latest sync that did not fail)."""
    from orchestrator.core.records import Action
    from orchestrator.planning.common import action_id

    out = []
    for conn in sorted(paused):
        if ours is None and conn in failing_now:
            continue  # without a ledger: perhaps paused by the failure path (a person repairs it)
        risk = risks.get(conn)
        windows = risk.maintenance if risk is not None else ()
        if any(a <= now < b for a, b in windows):
            continue  # still inside a window
        if ours is not None:
            end = ours.get(conn)
        else:
            end = max((b for _, b in windows if b <= now < b + timedelta(seconds=RESUME_GRACE_S)), default=None)
        if end is None or now < end:
            continue
        mark = f"early_warning|resume|{end.isoformat()}"
        out.append(Action(
            action_id=action_id("resume_connector", conn, mark), type="resume_connector", connector=conn,
            cause="early_warning", cycle=mark,
            reason=(f"early warning on {conn}: the source's announced maintenance window closed at "
                    f"{end:%Y-%m-%d %H:%M} UTC: resume {conn} (paused ahead of it)")))
    return out


def _off_peak_action(snapshot, conn, risk, tables, governed, resolution, *, now):
    """Move the next sync of an at-risk connector into its policy's off-peak window, when no
    deadline needs it before then (every governed deadline it feeds is still met from there)."""
    from orchestrator.core.records import Action
    from orchestrator.planning.common import action_id

    if resolution is None or not risk.at_risk:
        return None
    slas = [s for k in sorted(tables) + [k for k, _ in governed] if (s := resolution.sla(k)) is not None]
    sla = next((s for s in slas if s.off_peak), None)
    if sla is None or sla.off_peak_at(now) is not None:
        return None
    opens = sla.next_off_peak(now)
    if opens is None or aware(opens) - now > timedelta(days=1):
        return None
    opens = aware(opens)
    sync_s = risk.expected_s() * MARGIN
    for key, fa in governed:
        if not _stale_for(snapshot, tables, aware(fa.window_open)):
            continue
        need = sync_s + _downstream_s(snapshot, tables, key)
        if opens + timedelta(seconds=need) > aware(fa.deadline):
            return None  # a deadline needs the sync before the off-peak window: no move
    keys = tuple(sorted(tables))
    mark = f"early_warning|off_peak|{opens.isoformat()}"
    return Action(
        action_id=action_id("defer", conn, keys, mark), type="defer", asset_keys=keys, connector=conn,
        not_before=opens, cause="early_warning", cycle=mark, estimated_cost_usd=_sync_cost(snapshot, conn, keys),
        reason=(f"early warning on {conn}: at risk ({'; '.join(risk.why) or f'p_fail {risk.p_fail:.2f}'}) and "
                f"no deadline needs its next sync before the off-peak window: move it to "
                f"{opens:%Y-%m-%d %H:%M} UTC (quieter source, cheaper warehouse)"))


def preempt(snapshot, assessment, planned=(), *, now: datetime, tick_s: float = 300.0, resolution=None,
            ours: dict[str, datetime] | None = None, kinds=None) -> list:
    """Pre-emptive actions for at-risk connectors (see the module docstring). ``kinds``: the
    kinds of ``KINDS`` allowed (None: all); what the benchmark switches one at a time."""
    from orchestrator.core.records import Action
    from orchestrator.planning.common import action_id, units_of_work

    kinds = set(KINDS if kinds is None else kinds)
    unknown = kinds - set(KINDS)
    if unknown:
        raise ValueError(f"unknown pre-emptive action kind(s) {sorted(unknown)}: expected some of {list(KINDS)}")

    risks: dict[str, ConnectorRisk] = getattr(snapshot, "connector_risk", None) or {}
    if not risks and not ours:
        return []
    now = aware(now)
    graph = snapshot.graph
    paused = set(snapshot.paused_connectors or ())
    running = {s.connector for s in snapshot.syncs if s.status in ("running", "rescheduled")}
    planned_keys = {k for a in planned for k in a.asset_keys} | {a.connector for a in planned if a.connector}
    last: dict[str, object] = {}
    for sy in snapshot.syncs:
        if sy.status != "running" and (sy.connector not in last or aware(sy.started_at) > aware(last[sy.connector].started_at)):
            last[sy.connector] = sy
    failing_now = {c for c, sy in last.items() if sy.status == "failed"}  # the retry path owns it
    # resumes stay on without ``pause``: a pause made earlier must still be lifted
    out = _resumes(risks, paused, failing_now, ours, now)
    for conn, risk in sorted(risks.items()):
        tables = set(graph.connector_tables(conn))
        if "pause" in kinds and tables and conn not in planned_keys and not (tables & planned_keys) \
                and risk.maintenance:
            gov = _governed(assessment, graph.downstream_closure(*tables), now)
            acts = _maintenance_actions(snapshot, conn, risk, tables, gov, now=now, tick_s=tick_s, paused=paused,
                                        running=running)
            if acts:
                out += acts
                continue
        n_before = len(out)
        if (not (risk.at_risk or risk.maintenance) or conn in paused or conn in running or conn in planned_keys
                or conn in failing_now):
            continue
        tables = set(graph.connector_tables(conn))
        if not tables or tables & planned_keys:
            continue
        below = graph.downstream_closure(*tables)
        governed = sorted(((k, fa) for k, fa in assessment.freshness.items()
                           if k in below and fa.deadline is not None and fa.window_open is not None
                           and aware(fa.deadline) > now), key=lambda kv: kv[1].deadline)
        if "earlier" not in kinds:
            governed = []  # no sync-earlier action: only the off-peak move below
        for key, fa in governed:
            deadline, opens = aware(fa.deadline), aware(fa.window_open)
            if now < opens:
                continue  # a sync now would not count for this deadline
            dts = snapshot.data_time or {}
            stale = [t for t in tables if (dt := dts.get(t) or snapshot.last_success.get(t)) is None
                     or aware(dt) < opens]
            if not stale:
                continue
            sync_s = risk.expected_s() * MARGIN
            need = sync_s + _downstream_s(snapshot, tables, key)
            latest = deadline - timedelta(seconds=need)
            why = None
            for a, b in risk.maintenance:
                if a >= deadline or b <= now or now >= a:
                    continue
                if b > latest and now + timedelta(seconds=tick_s + sync_s) >= a:
                    why = (f"the source's maintenance window {a:%H:%M}-{b:%H:%M} UTC would catch a just-in-time "
                           f"sync (latest start {latest:%H:%M}): sync now, the last tick before it opens")
                    break
            if why is None and risk.failing and now + timedelta(seconds=tick_s) >= latest - timedelta(seconds=FAIL_LEAD_S):
                why = (f"at risk of failing (p_fail {risk.p_fail:.2f}; {'; '.join(risk.why) or 'rising warnings'}): "
                       f"start {FAIL_LEAD_S / 3600:.0f} h before the latest start {latest:%H:%M} to leave room for "
                       f"a retry")
            if why is None and risk.creeping and now + timedelta(seconds=tick_s) >= latest:
                why = (f"at risk of overrunning: the trend puts the next sync at {risk.next_s:.0f}s against the "
                       f"usual {risk.usual_s:.0f}s, so its latest start is {latest:%H:%M}")
            if why is None:
                continue
            # the sync and what it feeds up to the governed asset: the whole chain starts earlier
            # (a sync alone would leave the models to a just-in-time build behind a failing source)
            # (a model's own deadline comes before its dashboard's: every governed asset due
            # within CHAIN_S of this deadline is on the chain)
            due = [k for k, f in governed if aware(f.deadline) <= deadline + timedelta(seconds=CHAIN_S)]
            chain = graph.downstream_closure(*tables) & graph.upstream_closure(*due, include_self=True)
            keys = tuple(sorted(tables)) + tuple(k for k in graph.topological_order() if k in chain)
            if units_of_work(keys, graph) > max(1, min(200, len(graph) // 2)):
                keys = tuple(sorted(tables))  # the chain would be too broad for validation: the sync alone
            marker = f"early_warning|{deadline.isoformat()}"
            out.append(Action(
                action_id=action_id("materialize", conn, keys, marker), type="materialize", asset_keys=keys,
                estimated_cost_usd=_sync_cost(snapshot, conn, keys), cause="early_warning", cycle=marker,
                reason=f"early warning on {conn}: {why}; for the deadline {deadline.isoformat()} of {key}",
            ))
            break
        if len(out) == n_before and "off_peak" in kinds and resolution is not None and tables and conn not in paused | running \
                | failing_now | planned_keys and not (tables & planned_keys):
            act = _off_peak_action(snapshot, conn, risk, tables,
                                   _governed(assessment, graph.downstream_closure(*tables), now), resolution, now=now)
            if act is not None:
                out.append(act)
    return out
