"""The monotone envelope around the LLM's plan (pure Python): what the model may change, enforced
here and not trusted to the model.

    env = enforce(baseline, llm_plan, snapshot, assessment, now=now)
    env.plan            # the plan validation and the gate see
    env.rejected        # [(action, reason)]: LLM actions refused here (bounded, mass refusals summarised)
    env.hold            # action ids that wait for approval whatever the gate says
    decisions = hold_for_approval(gate(...), env)

The model **may** reorder (priorities), raise priorities, delay an action within its slack, and
propose extra actions. It **may never**

* push a baseline action past its *latest start* (now + the slack of the tightest deadline it
  feeds, minus ``margin``): a later ``not_before`` is put back to the baseline's;
* lower the priority of work on a target at risk or breached (put back), or raise other work
  (or its own new actions) above it: a raised priority stays below the lowest priority of the work
  for a target at risk;
* drop a baseline action or change its subject: the baseline action stays in the plan (a drop or
  a changed subject is a suggestion its approver sees in the reason; the changed version is a new
  LLM action, below); safety actions (pause, escalations) are never dropped;
* make a baseline action less likely to run: its confidence, cost and source stay the planner's;
* make anything run automatically that the planner would not: every LLM-originated action is
  priced with the planner's cost model (mean cost per asset/connector from the snapshot; an asset
  or connector with no cost history costs ``unknown_cost_usd``, a full resync at least that),
  must be justified by a need the snapshot shows (a recorded failure on what it touches whose
  class the action resolves: retry/transient, resync/schema drift or bad data, pause/credentials
  or configuration, backfill/the failed partition; for a run, data late for a deadline: a target
  at risk, its blocker or the path between; for a cancel, a queued run and a target at risk),
  must not repeat what the planner already does (a planner run covering its assets, a planner
  action on its connector, an escalation of its subject), and waits for approval (``hold``) unless
  it is identical to a baseline action (then it *is* that action); its priority is at most the
  lowest of the planner's actions (which come first in the plan), so the gate, which hands a
  budget to the highest priorities first, judges all of the planner's work before it and a held
  proposal never takes the budget the planner's work needs.

Bounded work per cycle: at most ``max_llm_actions`` LLM-originated actions are considered; at
most ``max_rejection_rows`` refusals are listed one by one, the rest become one summary row.
Baseline actions come first in the plan (the planner's order), so an LLM action can never make
validation refuse a baseline one as "already covered".
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from orchestrator.core.records import Action, Assessment, FreshnessStatus, Snapshot
from orchestrator.planning.common import UTC, AgentPlan
from orchestrator.scrubbing import scrub_pii

SAFETY_TYPES = frozenset({"pause_connector"})
# An LLM's drop (or change of subject) of a baseline action, as a proposal of its own: it always
# waits for a person; approving it cancels that baseline action if it has not started
# (``Proposals.approve``), rejecting it keeps the action. Never executed by the sensor.
DROP_TYPE = "drop_action"
RUN_TYPES = frozenset({"materialize", "defer"})  # justified by data late for a deadline


@dataclass
class EnvelopeConfig:
    margin: timedelta = timedelta(minutes=15)  # kept between an LLM delay and the latest start
    unknown_cost_usd: float = 1000.0  # an asset/connector with no cost history ("expensive")
    max_llm_actions: int = 25
    max_rejection_rows: int = 20
    priority_bounds: tuple[int, int] = (-1000, 1000)
    max_reason_chars: int = 600
    max_drop_proposals: int = 10  # drops/subject changes proposed one by one per cycle (the rest noted)


@dataclass
class EnvelopeResult:
    plan: AgentPlan
    rejected: list[tuple[Action, str]] = field(default_factory=list)
    hold: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)  # what was put back, for the rationale / audit
    drops: list[Action] = field(default_factory=list)  # DROP_TYPE proposals (``cause`` = "drop:<baseline id>")
    now: datetime | None = None


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _sig(a: Action) -> tuple:
    return (a.type, tuple(sorted(a.asset_keys)), tuple(sorted(a.partitions)), a.connector, a.run_id,
            tuple(sorted((s, tuple(sorted(v))) for s, v in a.tables.items())))


def _costs(snapshot: Snapshot) -> tuple[dict[str, float], dict[str, float]]:
    """The planner's own cost model: mean recorded cost per asset and per connector."""
    from orchestrator.planning.planner import _cost_per_asset

    return _cost_per_asset(snapshot)


class _Facts:
    """What the snapshot and the assessment say, computed once per cycle."""

    def __init__(self, snapshot: Snapshot, assessment: Assessment, now: datetime, cfg: EnvelopeConfig):
        self.graph = graph = snapshot.graph
        self.now, self.cfg = now, cfg
        self.cost_asset, self.cost_conn = _costs(snapshot)
        self.urgent = {k for k, fa in assessment.freshness.items()
                       if fa.status in (FreshnessStatus.at_risk, FreshnessStatus.breached) and k in graph}
        self.slack = {k: fa.slack_s for k, fa in assessment.freshness.items() if fa.slack_s is not None and k in graph}
        # what is stale for a deadline: targets at risk, their blockers, and the path between
        blockers = {fa.blocking_asset for k, fa in assessment.freshness.items()
                    if k in self.urgent and fa.blocking_asset and fa.blocking_asset in graph}
        path = graph.downstream_closure(*blockers, include_self=True) if blockers else set()
        self.needed = self.urgent | blockers | (path & graph.upstream_closure(*self.urgent)) if self.urgent else set()
        roots = [d for d in assessment.failures if d.root_failure_id is None]
        self.failures = roots
        self.failed_assets = {d.failure.asset_key for d in roots if d.failure.asset_key}
        self.failed_conns = {d.failure.connector for d in roots if d.failure.connector}
        self.baseline: list[Action] = []
        self.escalations: list = []
        self.conn_tables: dict[str, list[str]] = {}
        for n in graph:
            if n.connector:
                self.conn_tables.setdefault(n.connector, []).append(n.key)
        self.queued = {r.run_id for r in snapshot.in_flight()}
        self._closure: dict[tuple, set[str]] = {}

    def touched(self, a: Action) -> list[str]:
        keys = [k for k in a.asset_keys if k in self.graph]
        return keys or list(self.conn_tables.get(a.connector or "", []))

    def downstream(self, a: Action) -> set[str]:
        key = tuple(sorted(self.touched(a)))
        hit = self._closure.get(key)
        if hit is None:
            hit = self.graph.downstream_closure(*key, include_self=True) if key else set()
            self._closure[key] = hit
        return hit

    def latest_start(self, a: Action) -> datetime | None:
        """now + the slack of the tightest deadline this action feeds; None: no deadline known."""
        slacks = [self.slack[k] for k in self.downstream(a) if k in self.slack]
        if not slacks:
            return None
        return self.now + timedelta(seconds=max(0.0, min(slacks)))

    def on_urgent_path(self, a: Action) -> bool:
        return bool(self.downstream(a) & self.urgent)

    def price(self, a: Action) -> float:
        unknown = self.cfg.unknown_cost_usd
        cost = 0.0
        keys = [k for k in a.asset_keys if k in self.graph]
        conns = {a.connector} if a.connector else set()
        for k in keys:
            node = self.graph.node(k)
            if node.connector:
                conns.add(node.connector)
            elif k in self.cost_asset:
                cost += self.cost_asset[k]
            else:
                cost += unknown
        for c in conns:
            cost += self.cost_conn.get(c, unknown)
        cost *= max(1, len(a.partitions))
        if a.type == "full_resync":
            cost = max(cost * 10, unknown)
        if not keys and not conns and a.type not in ("cancel_run",):
            cost = max(cost, unknown)
        return round(cost, 4)

    def _failures_of(self, a: Action) -> list:
        touched = set(self.touched(a))
        conns = ({a.connector} if a.connector else set()) | {
            self.graph.node(k).connector for k in a.asset_keys if k in self.graph and self.graph.node(k).connector}
        return [d for d in self.failures
                if (d.failure.asset_key and d.failure.asset_key in touched)
                or (d.failure.connector and d.failure.connector in conns)]

    def planned(self, a: Action) -> str | None:
        """The baseline action that already addresses this: a run of the planner covering its
        assets (whatever the run's type), or a planner action on the same connector; or an
        escalation of one of its subjects (a person fixes that first)."""
        keys, parts = set(a.asset_keys), set(a.partitions)
        run_types = RUN_TYPES | {"retry", "backfill"}
        for b in self.baseline:
            if a.type in run_types and b.type in run_types and keys and keys <= set(b.asset_keys) and (
                    not parts or not b.partitions or parts <= set(b.partitions)):
                return b.action_id
            if a.connector is not None and a.connector == b.connector and a.type not in run_types:
                return b.action_id
            if a.type == b.type and a.run_id and a.run_id == b.run_id:
                return b.action_id
        subjects = {f"asset:{k}" for k in keys} | ({f"connector:{a.connector}"} if a.connector else set())
        for e in self.escalations:
            if e.subject in subjects:
                return f"escalation of {e.subject}"
        return None

    def need(self, a: Action) -> str | None:
        """The need the snapshot shows for ``a`` (None: not justified). The resolution must fit
        the failure class, as the planner's would: a retry for a transient failure, a resync for
        schema drift or bad data, a pause for credentials or configuration, a backfill for a
        failed partition; a run for data that is late for a deadline."""
        from orchestrator.planning.common import ESCALATE_CATEGORIES
        from orchestrator.planning.gate import NOT_RETRYABLE

        fails = self._failures_of(a)
        fitting = {
            "retry": [d for d in fails if d.transient and d.category not in NOT_RETRYABLE],
            "backfill": [d for d in fails if d.failure.partition and d.failure.partition in a.partitions],
            "resync_table": [d for d in fails if d.category in ("schema_drift", "data_quality")],
            "full_resync": [d for d in fails if d.category in ("schema_drift", "data_quality")],
            "pause_connector": [d for d in fails if d.category in ESCALATE_CATEGORIES],
            "resume_connector": fails,
            "reschedule_connector": fails,
        }
        if a.type in fitting:
            hit = fitting[a.type]
            return f"{hit[0].category} failure {hit[0].failure.failure_id}" if hit else None
        if a.type in RUN_TYPES:
            hit = sorted(set(a.asset_keys) & self.needed)
            return f"{hit[0]} is late for a deadline" if hit else None
        if a.type == "cancel_run":
            return "queued run while a target is at risk" if a.run_id in self.queued and self.urgent else None
        return None


def _note(text: str, n: int) -> str:
    text = " ".join(scrub_pii(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def enforce(
    baseline: AgentPlan,
    proposed: AgentPlan,
    snapshot: Snapshot,
    assessment: Assessment,
    *,
    now: datetime | None = None,
    config: EnvelopeConfig | None = None,
) -> EnvelopeResult:
    """The LLM's plan (``proposed``, as ``agent.schema.merge`` built it) inside the envelope."""
    cfg = config or EnvelopeConfig()
    now = _aware(now or baseline.created_at or snapshot.taken_at)
    if proposed is baseline or not proposed.planner.startswith("llm"):
        return EnvelopeResult(proposed)
    facts = _Facts(snapshot, assessment, now, cfg)
    facts.baseline, facts.escalations = list(baseline.actions), list(baseline.escalations)
    lo, hi = cfg.priority_bounds
    base_ids = {a.action_id for a in baseline.actions}
    base_sigs = {_sig(a): a.action_id for a in baseline.actions}
    by_id = {a.action_id: a for a in proposed.actions if a.action_id in base_ids}
    notes: list[str] = []
    actions: list[Action] = []

    # 1. every baseline action, in the planner's order, with only what the envelope allows
    drop_reasons = dict(getattr(proposed, "drop_reasons", None) or {})
    drops: list[Action] = []
    for b in baseline.actions:
        p = by_id.get(b.action_id)
        if p is None:
            safety = b.type in SAFETY_TYPES
            why = ("a safety action: never dropped" if safety
                   else "dropped or changed by the LLM: kept; the drop waits for approval as its own proposal")
            actions.append(replace(b, reason=_note(f"{b.reason} | {why}", cfg.max_reason_chars)))
            notes.append(f"{b.action_id} {why}")
            if not safety and len(drops) < cfg.max_drop_proposals:
                drops.append(drop_proposal(b, drop_reasons.get(b.action_id, ""), cfg))
            continue
        prio = max(lo, min(hi, int(p.priority)))
        if prio < b.priority and facts.on_urgent_path(b):
            notes.append(f"{b.action_id}: priority {p.priority} below the planner's {b.priority} on work for a target "
                         "at risk: put back")
            prio = b.priority
        # not_before: the planner's, or later within the slack of the deadlines it feeds
        nb, base_nb = _aware(p.not_before), _aware(b.not_before)
        final_nb = base_nb
        if nb is not None and nb > (base_nb or now):
            latest = facts.latest_start(b)
            if latest is not None and nb <= latest - cfg.margin:
                final_nb = nb
            else:
                notes.append(f"{b.action_id}: not_before {nb:%Y-%m-%d %H:%M} past its latest start "
                             f"({'no deadline known' if latest is None else f'{latest:%H:%M}'}): put back")
        nb = final_nb
        actions.append(replace(b, priority=prio, not_before=nb,
                               reason=_note(p.reason, cfg.max_reason_chars) if p.reason else b.reason))

    # 1b. raising other work above the work for a target at risk lowers that work's priority
    #     relatively (the queue orders by priority): raised priorities stay below it
    urgent_ids = {b.action_id for b in baseline.actions if facts.on_urgent_path(b)}
    floor = min((a.priority for a in actions if a.action_id in urgent_ids), default=None)
    if floor is not None:
        base_prio = {b.action_id: b.priority for b in baseline.actions}
        for i, a in enumerate(actions):
            if a.action_id in urgent_ids or a.priority <= base_prio[a.action_id] or a.priority < floor:
                continue
            capped = max(base_prio[a.action_id], floor - 1)
            notes.append(f"{a.action_id}: priority {a.priority} would overtake work for a target at risk "
                         f"({floor}): {capped}")
            actions[i] = replace(a, priority=capped)

    # 2. LLM-originated actions: priced, justified, bounded, held for approval
    rejected: list[tuple[Action, str]] = []
    hold: set[str] = set()
    extra = [a for a in proposed.actions if a.action_id not in base_ids]
    seen: set[tuple] = set()
    over_cap = extra[cfg.max_llm_actions:]
    ceiling = min((a.priority for a in actions), default=None)  # below or level with every planner action
    for a in extra[: cfg.max_llm_actions]:
        a = replace(a, reason=_note(a.reason, cfg.max_reason_chars), source="llm")
        sig = _sig(a)
        if sig in base_sigs:
            notes.append(f"{a.action_id} is the planner's {base_sigs[sig]}: kept once")
            continue
        if sig in seen:
            rejected.append((a, "duplicate of another LLM action of this answer"))
            continue
        seen.add(sig)
        prio = max(lo, min(hi, int(a.priority)))
        if floor is not None and prio >= floor and not facts.on_urgent_path(a):
            prio = floor - 1  # once approved, it does not overtake the work for a target at risk
        if ceiling is not None:
            # never ahead of the planner's work: the gate hands a budget to the highest priorities
            # first, and an action that then waits for a person must not have taken what it leaves
            prio = min(prio, ceiling)
        a = replace(a, priority=prio)
        if any(k not in facts.graph for k in a.asset_keys) or (a.connector and a.connector not in facts.conn_tables):
            actions.append(a)  # names nothing real: validation refuses it, naming what is unknown
            hold.add(a.action_id)
            continue
        need = facts.need(a)
        if need is None:
            rejected.append((a, f"{a.type} not justified by the snapshot (no recorded failure it resolves, or "
                                "data late for a deadline, on what it touches)"))
            continue
        already = facts.planned(a)
        if already is not None:
            rejected.append((a, f"{a.type} already planned by the planner (action {already})"))
            continue
        priced = replace(a, estimated_cost_usd=max(facts.price(a), float(a.estimated_cost_usd or 0.0)),
                         confidence=min(float(a.confidence), 0.9),
                         reason=_note(f"{a.reason} [need: {need}; waits for approval: proposed by the LLM]",
                                      cfg.max_reason_chars))
        actions.append(priced)
        hold.add(priced.action_id)

    if over_cap:  # never looked at one by one: counted in one row
        by_type = Counter(str(a.type)[:20] for a in over_cap)
        digest = hashlib.sha1("|".join(a.action_id for a in over_cap[:1000]).encode()).hexdigest()[:12]
        rejected.append((Action(action_id=f"llm--overcap-{digest}", type="summary", source="llm", confidence=0.0,
                                reason=f"{len(over_cap)} LLM actions over the cap"),
                         f"{len(over_cap)} more LLM actions over the cap of {cfg.max_llm_actions} per cycle, not "
                         "considered (by type: " + ", ".join(f"{t} {n}" for t, n in by_type.most_common(8)) + ")"))
    rejected = summarise(rejected, cfg.max_rejection_rows)
    rationale = proposed.rationale
    if notes:  # what the approver and the audit see of it (the rest counted)
        shown = "; ".join(n[:160] for n in notes[:5])
        more = f"; +{len(notes) - 5} more" if len(notes) > 5 else ""
        rationale = f"{rationale} [envelope: {len(notes)} change(s) put back or kept: {shown}{more}]"
    plan = AgentPlan(created_at=proposed.created_at, actions=actions, planner=proposed.planner,
                     rationale=_note(rationale, 2000), escalations=list(baseline.escalations),
                     failure_links={k: v for k, v in {**baseline.failure_links, **proposed.failure_links}.items()
                                    if k in {a.action_id for a in actions}},
                     fallback_reason=proposed.fallback_reason)
    return EnvelopeResult(plan, rejected, hold, notes[:50], drops, now)


def drop_proposal(b: Action, rationale: str, cfg: EnvelopeConfig) -> Action:
    """The LLM's suggestion not to run baseline action ``b`` (a drop, or a change of its subject),
    as a proposal a person approves or rejects; the model's rationale scrubbed and clipped."""
    subjects = ", ".join([*b.asset_keys[:3], *([b.connector] if b.connector else [])]) or "-"
    more = f" (+{len(b.asset_keys) - 3})" if len(b.asset_keys) > 3 else ""
    why = " ".join(str(rationale or "no reason given").split())
    return Action(
        action_id="llm-drop-" + hashlib.sha1(b.action_id.encode()).hexdigest()[:12],
        type=DROP_TYPE,
        reason=_note(f"The LLM proposes not to run {b.action_id} ({b.type} on {subjects}{more}): {why}. "
                     f"Approve to cancel {b.action_id} if it has not started; reject to keep it.",
                     cfg.max_reason_chars),
        asset_keys=b.asset_keys, partitions=b.partitions, connector=b.connector, tables=b.tables,
        priority=b.priority, not_before=b.not_before, confidence=0.0, estimated_cost_usd=0.0, source="llm",
        cause=f"drop:{b.action_id}", cycle=b.cycle,
    )


def drop_target(action: Action) -> str | None:
    """The baseline action a DROP_TYPE proposal would cancel."""
    cause = action.cause or ""
    return cause[5:] if action.type == DROP_TYPE and cause.startswith("drop:") else None


def summarise(rejected: list[tuple[Action, str]], max_rows: int) -> list[tuple[Action, str]]:
    """At most ``max_rows`` rows: the first ones as they are, the rest as one summary row."""
    if len(rejected) <= max_rows:
        return rejected
    keep, rest = rejected[: max_rows - 1], rejected[max_rows - 1:]
    by_reason = Counter(r.split(":")[0][:80] for _, r in rest)
    by_type = Counter(str(a.type)[:20] for a, _ in rest)
    digest = hashlib.sha1("|".join(a.action_id for a, _ in rest).encode()).hexdigest()[:12]
    summary = Action(
        action_id=f"llm--rejected-{digest}", type="summary",
        reason=f"{len(rest)} more LLM actions rejected",
        source="llm", confidence=0.0,
    )
    detail = (f"{len(rest)} more LLM actions rejected (by type: "
              + ", ".join(f"{t} {n}" for t, n in by_type.most_common(8)) + "; by reason: "
              + "; ".join(f"{r} x{n}" for r, n in by_reason.most_common(5)) + ")")
    return [*keep, (summary, detail)]


def hold_for_approval(decisions: list, env: EnvelopeResult | None) -> list:
    """Gate decisions with every held (LLM-originated) action waiting for approval, plus one
    pending proposal per drop of a baseline action that has not started by itself (one the gate
    runs now has run as planned: the drop stays a note)."""
    if env is None or not (env.hold or env.drops):
        return decisions
    from orchestrator.planning.gate import AWAIT_APPROVAL, EXECUTE, GateDecision

    out = []
    for d in decisions:
        if d.decision == EXECUTE and d.action.action_id in env.hold:
            d = replace(d, decision=AWAIT_APPROVAL,
                        reason=f"proposed by the LLM, not by the planner: waits for approval ({d.reason})")
        out.append(d)
    by_id = {d.action.action_id: d for d in decisions}
    now = env.now
    for drop in env.drops:
        target = by_id.get(drop_target(drop) or "")
        if target is None or target.decision not in (EXECUTE, AWAIT_APPROVAL):
            continue  # refused, screened out or only recorded: nothing to cancel
        later = target.action.not_before is not None and now is not None and _aware(target.action.not_before) > now
        if target.decision == EXECUTE and not later:
            continue
        out.append(GateDecision(
            action=drop, decision=AWAIT_APPROVAL, risk=target.risk, risk_score=target.risk_score, confidence=0.0,
            reason=f"an LLM drop of {target.action.action_id} ({target.decision}): waits for approval; approving "
                   "cancels that action if it has not started",
            owners=tuple(target.owners)))
    return out
