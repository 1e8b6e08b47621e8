"""One decision cycle: assess -> plan -> [review] -> ledger -> validate -> gate (no Dagster imports).

    from orchestrator.core.decide import decide
    d = decide(snapshot, resolution, memory=memory, breaker=breaker, reviewer=None, now=now,
               ledger=ledger)
    d.decisions          # [GateDecision]: execute | await_approval | record_only
    d.rejected           # [(Action, reason)] from validation
    d.suppressed         # [(Action, reason)] already pending, or already done for this cycle
    d.standing_requests  # [GateDecision] standing approvals to ask (await_approval, once per policy)

Every caller runs this one function: the planning sensor and ``orchestrator plan`` (through
``Proposals.run_cycle``), the digest's sample cycle, and the simulator's ``sla`` adapter. What a
caller does with the decisions (record a proposal, launch runs) stays with the caller.

``reviewer``: ``callable(plan, snapshot, assessment, resolution, durations) -> Review`` (the LLM
agent, see :func:`llm_reviewer`); it sees the baseline plan and may replace it; whatever it
returns is validated and gated like the baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from orchestrator.core.datatime import next_cron_tick
from orchestrator.core.incidents import OPEN, ActionLedger, IncidentView, LedgerEntry, action_subjects
from orchestrator.core.pricing import CostHistory, ResyncPrices
from orchestrator.core.records import Action, Assessment, Snapshot
from orchestrator.core.standing import BudgetBook, BudgetCover, StandingBook, StandingCover
from orchestrator.core.vocab import ActionType, FailureClass

UTC = timezone.utc


@dataclass
class Review:
    """What a reviewer (the LLM agent) returns: a plan and what it cost."""

    plan: object  # AgentPlan
    calls: list = field(default_factory=list)
    fallback_reason: str | None = None
    context_tokens: int | None = None


Reviewer = Callable[..., Review]


@dataclass
class Decision:
    """The typed result of one cycle."""

    now: datetime
    assessment: Assessment
    baseline: object  # AgentPlan from the deterministic planner
    plan: object  # AgentPlan after review (the baseline when there is no reviewer)
    accepted: list[Action]
    rejected: list[tuple[Action, str]]
    decisions: list  # [GateDecision]
    suppressed: list[tuple[Action, str]] = field(default_factory=list)
    review: Review | None = None
    # standing approvals asked this cycle (orchestrator.core.standing): await_approval decisions
    # of their own, apart from the plan's; the caller records them like any other
    standing_requests: list = field(default_factory=list)
    # [(pending action id, why)]: requests still waiting for a person whose work the gate now
    # runs by itself (re-proposed this cycle and executed); the caller withdraws them
    superseded: list[tuple[str, str]] = field(default_factory=list)

    def by_decision(self, kind: str) -> list:
        return [d for d in self.decisions if d.decision == kind]

    @property
    def to_execute(self) -> list:
        return self.by_decision("execute")

    @property
    def awaiting_approval(self) -> list:
        return self.by_decision("await_approval")

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ("execute", "await_approval", "record_only")}
        for d in self.decisions:
            out[d.decision] = out.get(d.decision, 0) + 1
        out["rejected"], out["suppressed"] = len(self.rejected), len(self.suppressed)
        return out


def llm_reviewer(config, client=None) -> Reviewer:
    """The LLM agent as a reviewer (``orchestrator.agent``): context of the at-risk subgraph,
    one review, the baseline on any failure."""

    def review(plan, snapshot, assessment, resolution, durations) -> Review:
        import time

        from orchestrator.agent import review as agent_review
        from orchestrator.planning import build_context

        started = time.monotonic()  # the review's bound counts the context too
        ctx, tokens = build_context(plan, snapshot, assessment, resolution, durations,
                                    max_tokens=config.max_context_tokens, time_budget_s=config.timeout_s / 2)
        out = agent_review(plan, ctx, config=config, client=client, started=started)
        return Review(out.plan, list(out.calls), out.fallback_reason, tokens)

    return review


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _starts_later(held: Action, a: Action, now: datetime) -> bool:
    """``held`` (an open action in the ledger) is deferred to a later start while ``a`` is needed
    now (an ``a`` merely deferred less far waits for the answer about ``held``: no second ask)."""
    if held.not_before is None or (a.not_before is not None and _aware(a.not_before) > now):
        return False
    return _aware(held.not_before) > now


def screen(actions: list[Action], ledger: ActionLedger | None, snapshot: Snapshot) -> tuple[list[Action], list[tuple[Action, str]]]:
    """Drop what the ledger says was already asked (still open) or already done for this cycle."""
    if ledger is None or not ledger.entries:
        return list(actions), []
    kept: list[Action] = []
    dropped: list[tuple[Action, str]] = []
    graph = snapshot.graph
    index = ledger.index()  # one pass over the ledger, then a lookup per action
    now = _aware(snapshot.taken_at)
    for a in actions:
        dup = index.open_duplicate(a)
        if dup is not None and dup.action.action_id != a.action_id and _starts_later(dup.action, a, now):
            # asked/approved for a later start: it does not serve work needed now (another open
            # action starting in time may; rare, so a scan)
            subs = action_subjects(a)
            dup = next((e for e in ledger.entries.values()
                        if e.status in OPEN and e.action.type == a.type and e.action.cause == a.cause
                        and subs and subs <= e.subjects and not _starts_later(e.action, a, now)), None)
        if dup is not None:
            dropped.append((a, f"already {dup.status}: {dup.action.action_id} ({a.type}, {a.cause or 'same cause'})"))
            continue
        declined = index.declined_before(a)
        if declined is not None:
            # the same failure's remedy (or the same cycle's work) a person said no to: asked once
            dropped.append((a, f"declined by a person at {declined.at:%Y-%m-%d %H:%M} UTC: "
                               f"{declined.action.action_id} ({a.type}, {a.cause or 'same cause'}): not asked again"))
            continue
        done = index.done_before(a)
        if done is not None:
            t = ActionType.parse(a.type)
            if t is not None and t.starts_run:
                # a run is the same only if none of its inputs changed since it ran
                keys = set(a.asset_keys)
                changed = any(
                    p not in keys and (ls := snapshot.last_success.get(p)) is not None and _aware(ls) > done.at
                    for k in keys for p in (graph.parents(k) if k in graph else ()))
                if changed:
                    kept.append(a)
                    continue
            dropped.append((a, f"already done for this cycle: {done.action.action_id} succeeded "
                               f"at {done.at:%Y-%m-%d %H:%M} UTC"))
            continue
        kept.append(a)
    return kept, dropped


def decide(
    snapshot: Snapshot,
    resolution,
    *,
    memory=None,
    breaker=None,
    reviewer: Reviewer | None = None,
    now: datetime | None = None,
    durations=None,
    assessment: Assessment | None = None,
    ledger: ActionLedger | None = None,
    planner_config=None,
    gate_config=None,
    validation_config=None,
) -> Decision:
    """One cycle. ``assessment`` may be given when the caller already assessed this snapshot.

    It runs with the cyclic garbage collector paused (:func:`orchestrator.core.datatime.gc_paused`):
    a cycle allocates hundreds of thousands of short-lived containers that reference counting
    frees (it leaves next to no reference cycles), and each full collection they set off walks
    the whole heap -- the snapshot, the graph and the resolution, 10x larger at 100,000 assets
    than at 10,000 -- so what it costs per cycle grew faster than the fleet (0.2-0.3 s of the
    cycle's 1.4 s CPU at 100,000 assets on ``benchmarks/bench_decide.py``'s bad day)."""
    from orchestrator.core.datatime import gc_paused

    with gc_paused():
        return _decide(snapshot, resolution, memory=memory, breaker=breaker, reviewer=reviewer, now=now,
                       durations=durations, assessment=assessment, ledger=ledger, planner_config=planner_config,
                       gate_config=gate_config, validation_config=validation_config)


def _decide(snapshot: Snapshot, resolution, *, memory, breaker, reviewer: Reviewer | None, now: datetime | None,
            durations, assessment: Assessment | None, ledger: ActionLedger | None, planner_config, gate_config,
            validation_config) -> Decision:
    from dataclasses import replace

    from orchestrator.assessment import assess
    from orchestrator.planning import gate, plan, validate
    from orchestrator.policies import DurationModel

    now = _aware(now or snapshot.taken_at)
    if durations is None:
        durations = DurationModel(snapshot.durations)
    elif not isinstance(durations, DurationModel):
        durations = DurationModel(durations)
    if assessment is None:
        assessment = assess(snapshot, resolution, durations, memory=memory, now=now)
    paused = set(snapshot.paused_connectors or ())
    if ledger is not None:
        paused |= ledger.paused_connectors()
    book = StandingBook.from_ledger(ledger) if ledger is not None else StandingBook()
    cover = StandingCover(book, resolution, now)
    budget_book = BudgetBook.from_ledger(ledger) if ledger is not None else BudgetBook()
    budget_cover = BudgetCover(budget_book, resolution, now)
    incidents = IncidentView(paused=frozenset(paused), ledger=ledger, standing=cover)
    if breaker is not None and getattr(breaker, "close_recovered", None) is not None:
        # a subject that succeeded since its breaker opened (its own schedule, a person): closed
        breaker.close_recovered(snapshot.last_success, snapshot.graph.connector_tables)
    planner_config = with_connector_settings(planner_config, snapshot)
    costs = CostHistory(snapshot.costs)  # one pass over the cost records for the whole cycle
    baseline = plan(snapshot, assessment, resolution, durations, now=now, config=planner_config,
                    incidents=incidents, costs=costs)
    if getattr(snapshot, "anomalous_loads", None):  # re-sync untrusted loads (orchestrator.health)
        from orchestrator.health.actions import resync_untrusted

        extra = resync_untrusted(snapshot, assessment, baseline.actions, now=now)
        if extra:
            baseline = replace(baseline, actions=list(baseline.actions) + extra)
    if getattr(snapshot, "connector_risk", None):  # pre-emptive syncs of at-risk connectors (orchestrator.health)
        from orchestrator.health.early import early_pauses, preempt

        tick = getattr(planner_config, "tick_interval_s", None) or 300.0
        extra = preempt(snapshot, assessment, baseline.actions, now=now, tick_s=tick, resolution=resolution,
                        ours=early_pauses(ledger) if ledger is not None else None,
                        kinds=getattr(planner_config, "preempt_kinds", None))
        if extra:
            baseline = replace(baseline, actions=list(baseline.actions) + extra)
    final, review, envelope = baseline, None, None
    if reviewer is not None and baseline.actions:
        review = reviewer(baseline, snapshot, assessment, resolution, durations)
        final = review.plan
        if review.fallback_reason is None and final is not baseline:
            # the reviewer's plan only within the envelope (orchestrator/agent/envelope.py)
            from orchestrator.agent.envelope import enforce

            envelope = enforce(baseline, final, snapshot, assessment, now=now)
            final = envelope.plan
    kept, suppressed = screen(list(final.actions), ledger, snapshot)
    if suppressed:
        final = replace(final, actions=kept)
    if validation_config is None and getattr(gate_config, "unknown_usd_per_hour", None):
        from orchestrator.planning import ValidationConfig

        validation_config = ValidationConfig(unknown_usd_per_hour=gate_config.unknown_usd_per_hour,
                                             bound_model_runs=getattr(gate_config, "bound_model_runs", False))
    resyncs = ResyncPrices.observe(snapshot, ledger)  # what the resyncs that ran cost: a resync's floor
    # work a person is still asked for goes to the gate again: what it now runs by itself (a sync
    # priced since, a budget day turned) runs instead of waiting for the answer
    rechecked = pending_rechecks(ledger, now)
    to_check = replace(final, actions=list(final.actions) + [a for a, _ in rechecked.values()]) if rechecked else final
    accepted, rejected = validate(to_check, snapshot, resolution, now=now, config=validation_config,
                                  budgets=budget_cover, durations=durations, resyncs=resyncs)
    probes = drift_probes(rejected, accepted, snapshot, resolution, now, breaker)
    if probes:  # validated like any action: a probe over the budget too is rejected, never run
        ok, no = validate(replace(final, actions=probes), snapshot, resolution, now=now, config=validation_config,
                          budgets=budget_cover, durations=durations, resyncs=resyncs)
        accepted = accepted + ok
        suppressed += [(a, f"probe not run: {why}") for a, why in no]  # the resync it stands in for is rejected already
    decisions = gate(accepted, snapshot, assessment, resolution, memory=memory, breaker=breaker, now=now,
                     config=gate_config, durations=durations, standing=cover, budgets=budget_cover,
                     repairs=incident_cover(ledger, snapshot, assessment), costs=costs, resyncs=resyncs)
    superseded: list[tuple[str, str]] = []
    if rechecked:
        decisions, rejected, superseded, still = settle_rechecks(decisions, rejected, rechecked)
        suppressed += still
    # ask ahead, once per policy: a standing approval of its routine refreshes, and a budget
    # extension when its deadlines ahead will need more than its daily budget
    # over-budget work no deadline can use yet is held without asking anyone (planned again later),
    # and so is a refresh whose answer would come after the deadline it is for
    decisions, idle = hold_idle(decisions)
    suppressed += idle
    decisions, unasked = hold_probes(decisions)
    suppressed += unasked
    answer_at = getattr(gate_config, "answer_at", None)
    decisions, late = answer_too_late(decisions, assessment, now,
                                      answer_at if getattr(gate_config, "late_refreshes_unasked", True) else None,
                                      snapshot.graph, durations)
    suppressed += late
    # and a retry of a failure that clears by itself, which the connector's own scheduled sync
    # runs before a person could answer
    decisions, first = native_sync_first(decisions, snapshot, now, answer_at)
    suppressed += first
    asks = standing_requests(resolution, snapshot.graph, book, now, gate_config)
    held, names_of = over_budget(decisions, rejected, resolution, snapshot.graph, snapshot, now)
    # asked together with a standing approval (one question): every day the forecast needs it, not
    # only today and tomorrow, so that the same person is not asked again for it the next day
    extensions = extension_requests(resolution, snapshot, assessment, budget_book, now, durations, gate_config,
                                    held=held, ahead=bool(asks), costs=costs)
    asks += extensions
    # routine work held only for the approval a standing approval being asked would give waits for
    # that one answer instead of a request of its own
    decisions, waits = wait_for_standing(decisions, book, asks, snapshot, assessment, resolution, memory=memory,
                                         breaker=breaker, now=now, gate_config=gate_config, durations=durations,
                                         budgets=budget_cover, costs=costs, resyncs=resyncs)
    suppressed += waits
    decisions, unpriced = one_unpriced_ask(decisions, ledger, snapshot)
    suppressed += unpriced
    # work held only by a budget whose extension is being asked waits for that one answer instead
    # of asking a person for each action (it is planned again next cycle and runs once granted)
    waiting = {name for a in extensions for name in a.action.cause.split(":", 1)[1].split(",")} | {
        n for n in held if budget_book.pending(n)}
    if waiting:
        keep = []
        for g in decisions:
            names = names_of.get(g.action.action_id)
            if g.decision == "await_approval" and names and names <= waiting:
                suppressed.append((g.action, f"over the budget of {', '.join(sorted(names))}: waits for the "
                                             f"budget extension asked of a person"))
            else:
                keep.append(g)
        decisions = keep
    if envelope is not None:
        from orchestrator.agent.envelope import hold_for_approval

        rejected, decisions = envelope.rejected + rejected, hold_for_approval(decisions, envelope)
    return Decision(now=now, assessment=assessment, baseline=baseline, plan=final, accepted=accepted,
                    rejected=rejected, decisions=decisions, suppressed=suppressed, review=review,
                    standing_requests=one_question(asks, now), superseded=superseded)


def pending_rechecks(ledger: ActionLedger | None, now: datetime) -> dict[int, tuple[Action, LedgerEntry]]:
    """Requests still waiting for a person (ledger ``pending``; not a standing approval, not the
    LLM's, not deferred to a later start), each as a copy under a new id for the gate to judge
    again with the rest of the cycle's work (one budget count): by ``id()`` of the copy -> (copy,
    the request). The planner does not propose work a person is asked for again, so without this
    a sync no history priced when it was asked, once priced by the connector's own schedule, still
    waited for the answer (generated world 14008: held at 05:30 as unpriced, priceable from 08:37,
    run at the 12:30 answer, past two deadlines)."""
    if ledger is None or not ledger.entries:
        return {}
    from dataclasses import replace

    from orchestrator.core.standing import STANDING

    out: dict[int, tuple[Action, LedgerEntry]] = {}
    for e in ledger.entries.values():
        a = e.action
        if e.status != "pending" or a.type == STANDING or a.source == "llm" or ActionType.parse(a.type) is None:
            continue
        if a.not_before is not None and _aware(a.not_before) > now:
            continue
        copy = replace(a, action_id=f"{a.action_id}-rejudged-{now:%Y%m%d%H%M}")
        out[id(copy)] = (copy, e)
    return out


def settle_rechecks(decisions, rejected, rechecked: dict[int, tuple[Action, LedgerEntry]]):
    """(decisions, rejected, [(pending id, why)] superseded, [(copy, reason)] not asked): a
    re-judged request (:func:`pending_rechecks`) the gate executes supersedes the request; any
    other outcome leaves it to the person, as if never re-judged (nothing is asked twice)."""
    kept, superseded, still = [], [], []
    for g in decisions:
        hit = rechecked.get(id(g.action))
        if hit is None:
            kept.append(g)
        elif g.decision == "execute":
            kept.append(g)
            superseded.append((hit[1].action.action_id, f"superseded by {g.action.action_id}: the gate runs it "
                                                        f"by itself now ({g.reason})"))
        else:
            still.append((g.action, f"still waits for the answer to {hit[1].action.action_id}: {g.reason}"))
    kept_rejected = []
    for a, why in rejected:
        hit = rechecked.get(id(a))
        if hit is None:
            kept_rejected.append((a, why))
        else:
            still.append((a, f"still waits for the answer to {hit[1].action.action_id}: {why}"))
    return kept, kept_rejected, superseded, still


def one_question(asks: list, now: datetime) -> list:
    """The standing approval and the budget extension asked in the same cycle as one request
    (:func:`orchestrator.core.standing.joint`), waiting for the owners of both: a person answers
    one question about the same policies' routine refreshes, not two at the same moment."""
    from orchestrator.core.standing import BUDGET_PREFIX, CAUSE_PREFIX, joint

    standing = [g for g in asks if (g.action.cause or "").startswith(CAUSE_PREFIX)]
    budget = [g for g in asks if (g.action.cause or "").startswith(BUDGET_PREFIX)]
    if len(standing) != 1 or len(budget) != 1 or len(asks) != 2:
        return asks
    from orchestrator.planning.gate import GateDecision

    s, b = standing[0], budget[0]
    owners = tuple(dict.fromkeys(s.owners + b.owners))
    return [GateDecision(joint(s.action, b.action, now), s.decision, s.risk, s.risk_score, s.confidence,
                         f"{s.reason}; {b.reason}", owners)]


def hold_idle(decisions) -> tuple[list, list[tuple[Action, str]]]:
    """(decisions kept, [(action, reason)] held): work the gate found over its policies' own
    budgets while no deadline it feeds has its window open (:data:`orchestrator.planning.gate.IDLE`)
    is not asked of a person: it is planned again each cycle and judged again once a window opens."""
    from orchestrator.planning.gate import IDLE

    kept, held = [], []
    for g in decisions:
        if g.decision == "await_approval" and g.reason.startswith(IDLE):
            held.append((g.action, g.reason))
        else:
            kept.append(g)
    return kept, held


def hold_probes(decisions) -> tuple[list, list[tuple[Action, str]]]:
    """(decisions kept, [(action, reason)] not asked): a probe (the planner's one attempt on a
    subject held back by an escalated failure, its ``cycle`` prefixed ``probe:``) runs only when
    the gate lets it run; its incident is already escalated to the owners, so it is never a
    request of its own."""
    from orchestrator.planning.planner import PROBE

    kept, held = [], []
    for g in decisions:
        if g.decision == "await_approval" and (g.action.cycle or "").startswith(PROBE):
            held.append((g.action, f"probe not asked of a person (the incident is escalated already): {g.reason}"))
        else:
            kept.append(g)
    return kept, held


DRIFT_PROBE_SPACING = timedelta(hours=3)  # without a circuit breaker to read it from (see drift_probes)


def drift_probes(rejected, accepted, snapshot: Snapshot, resolution, now: datetime, breaker=None) -> list[Action]:
    """Plain syncs in place of schema-drift resyncs that validation rejected as over a budget: a
    refresh of the drifted tables (one sync of the connector at its backlog's price, not a full
    re-read), as a planner probe (``cycle`` ``probe:``; :func:`hold_probes` drops it when the gate
    would ask a person). The drift is often fixed by someone else (on-call, the source's owner)
    without it being reported; the rejected resync blocked its tables, so the lineage waited for
    days while a cron schedule's plain sync landed them within the budget (generated world 15233:
    a $59 resync against a $44.55 daily budget rejected 169 times, both deadlines lost). One probe
    per connector when its latest failure and sync start are at least a spacing old, and only when
    a deadline can use the data now: a drift that persists then fails a probe at most every
    ``window / (threshold - 1)`` of the circuit breaker, fewer than would open it."""
    from orchestrator.planning.gate import serves_open_window
    from orchestrator.planning.planner import PROBE

    spacing = DRIFT_PROBE_SPACING
    if breaker is not None and getattr(breaker, "threshold", 0) > 1 and getattr(breaker, "window", None):
        spacing = breaker.window / (breaker.threshold - 1)
    busy = {a.connector for a in accepted if a.connector} | {
        n.connector for a in accepted for k in a.asset_keys if (n := snapshot.graph.get(k)) is not None and n.connector}
    out: list[Action] = []
    memo: dict = {}
    for a, why in rejected:
        conn = a.connector
        if (ActionType.parse(a.type) is not ActionType.resync_table or a.cause != FailureClass.schema_drift.value
                or not why.startswith("over budget") or not conn or not a.asset_keys or conn in busy
                or a.source == "llm"):  # the reviewer's own proposals stay its own
            continue
        last = max([_aware(f.at) for f in snapshot.failures if f.connector == conn]
                   + [_aware(s.started_at) for s in snapshot.syncs if s.connector == conn and s.started_at], default=None)
        if (last is not None and now - last < spacing) or any(
                s.connector == conn and s.status == "running" for s in snapshot.syncs):
            continue
        if not serves_open_window(a.asset_keys, resolution, now, memo):
            continue
        busy.add(conn)
        out.append(Action(
            action_id=f"{a.action_id}-probe-{now:%Y%m%d%H%M}", type=ActionType.materialize.value,
            asset_keys=a.asset_keys, priority=a.priority, cause="freshness", cycle=PROBE + (a.cycle or conn),
            reason=(f"probe: a plain sync of {conn} instead of the resync of its drifted tables, which is over "
                    f"the budget ({why}); it lands them if someone fixed the drift since, and fails early "
                    "if not"),
        ))
    return out


def one_unpriced_ask(decisions, ledger: ActionLedger | None, snapshot: Snapshot) -> tuple[list, list[tuple[Action, str]]]:
    """(decisions kept, [(action, reason)] not asked): while no connector has a priced sync yet,
    the gate holds every budgeted run that syncs one for a person
    (:data:`orchestrator.planning.gate.UNPRICED`) -- the same unknown each time, and the first
    sync that runs prices the others (``orchestrator.core.pricing``: a connector without its own
    history borrows the fleet's). So only the most urgent is asked; the others are planned again
    each cycle, priced once an answered one has synced, and, while a request that syncs a
    connector is still open, no new one is asked (generated worlds 437, 447: three such requests
    in one cycle, each an approval asked)."""
    from orchestrator.core.pricing import synced_connectors
    from orchestrator.planning.gate import UNPRICED

    blind = [g for g in decisions if g.decision == "await_approval" and g.reason.startswith(UNPRICED)]
    if not blind:
        return decisions, []
    graph = snapshot.graph
    # (the gate holds work as unpriced only while no sync anywhere is priced: an open action that
    # syncs a connector is still what the others wait for)
    asked = next((e.action for e in (ledger.entries.values() if ledger is not None else ())
                  if e.status in OPEN and synced_connectors(e.action, graph)), None)
    first = None if asked is not None else max(blind, key=lambda g: g.action.priority)
    waits_for = asked.action_id if asked is not None else first.action.action_id
    blind_ids = {id(g) for g in blind}  # by identity: comparing decisions by value was quadratic
    kept, held = [], []
    for g in decisions:
        if id(g) in blind_ids and g is not first:
            held.append((g.action, f"not asked: no sync is priced yet, and the request {waits_for} will price "
                                   f"one once it runs (planned again each cycle): {g.reason}"))
        else:
            kept.append(g)
    return kept, held


def answer_too_late(decisions, assessment: Assessment, now: datetime, answer_at, graph,
                    durations=None) -> tuple[list, list[tuple[Action, str]]]:
    """(decisions kept, [(action, reason)] not asked): a routine refresh (``cause == "freshness"``,
    its deadline in ``cycle`` as ``<target>@<ISO time>``) that waits for a person whose answer
    (``answer_at(now)``: when a request made now is answered, e.g. after the approvers' night) plus
    the run's predicted span lands after that deadline: asking is useless, the refresh could not
    make it. It is planned again for the next cycle. Work on a subject with a failure open is
    still asked (the person's answer also repairs it). ``answer_at`` None: nothing is known of the
    approvers' delay, every request is made."""
    if answer_at is None:
        return decisions, []
    from orchestrator.planning.gate import FailureIndex, _run_span_s

    kept, late = [], []
    index = None
    answered = None
    for g in decisions:
        a = g.action
        if g.decision != "await_approval" or a.cause != "freshness" or a.source == "llm" or "@" not in (a.cycle or ""):
            kept.append(g)
            continue
        try:
            deadline = _aware(datetime.fromisoformat(a.cycle.rsplit("@", 1)[1]))
        except ValueError:
            kept.append(g)
            continue
        if answered is None:
            answered = _aware(answer_at(now))
        start = max(answered, _aware(a.not_before)) if a.not_before is not None else answered
        lands = start + timedelta(seconds=_run_span_s(a, graph, durations))
        if lands <= deadline:
            kept.append(g)
            continue
        index = index or FailureIndex(assessment)
        if index.related(a):
            kept.append(g)
            continue
        late.append((a, f"not asked: a person's answer (expected {answered:%Y-%m-%d %H:%M} UTC) and the run "
                        f"would land after the deadline it is for ({deadline:%Y-%m-%d %H:%M} UTC)"))
    return kept, late


def clears_by_itself(action: Action) -> bool:
    """The action retries failures whose prescribed response is a plain re-run (rate limit, an
    outage, capacity: :attr:`FailureClass.rerun_resolves`), none a person must fix, and it is
    not the close of an incident a person repaired."""
    cause = action.cause or ""
    if not cause or cause.startswith("repair:"):
        return False
    classes = [FailureClass.parse(c) for c in cause.split(",")]
    return all(c.rerun_resolves and not c.needs_person for c in classes)


def native_sync_first(decisions, snapshot: Snapshot, now: datetime, answer_at) -> tuple[list, list[tuple[Action, str]]]:
    """(decisions kept, [(action, reason)] not asked): a connector retry that waits for a person
    (``rollout: recommend``, retry not pre-authorised), of failures that clear by themselves
    (:func:`clears_by_itself`), whose connector's own scheduled sync starts before the retry
    could (a person's answer, ``answer_at(now)``, or its backoff if later): the scheduled sync
    is that retry, and asking a person for it adds a request and no data. It is planned again
    each cycle (asked if the failure is still open once the answer would come first). A paused
    connector, a repair, a class a person must fix, or an unknown schedule or delay: asked as
    before (world 16340: 11 retries of an hourly connector's rate limit asked, 0 incidents
    needing a person)."""
    if answer_at is None:
        return decisions, []
    kept, first = [], []
    answered = None
    schedules = getattr(snapshot, "connector_schedules", None) or {}
    paused = set(getattr(snapshot, "paused_connectors", None) or ())
    for g in decisions:
        a = g.action
        if (g.decision != "await_approval" or a.type != ActionType.retry.value or not a.connector
                or a.source == "llm" or a.connector in paused or not clears_by_itself(a)):
            kept.append(g)
            continue
        if answered is None:
            answered = _aware(answer_at(now))
        start = max(answered, _aware(a.not_before)) if a.not_before is not None else answered
        tick = next_cron_tick(schedules.get(a.connector), now)
        if tick is None or tick > start:
            kept.append(g)
            continue
        first.append((a, f"not asked: {a.connector}'s own scheduled sync at {tick:%Y-%m-%d %H:%M} UTC retries "
                         f"{a.cause} before a person's answer (expected {answered:%Y-%m-%d %H:%M} UTC) could"))
    return kept, first


def wait_for_standing(decisions, book: StandingBook, asks, snapshot: Snapshot, assessment: Assessment, resolution, *,
                      memory=None, breaker=None, now: datetime, gate_config=None, durations=None,
                      budgets=None, costs: CostHistory | None = None,
                      resyncs: ResyncPrices | None = None) -> tuple[list, list[tuple[Action, str]]]:
    """(decisions kept, [(action, reason)] withdrawn): routine freshness work the gate holds for a
    person that the standing approvals being asked (pending in the ledger, or asked this cycle:
    :func:`orchestrator.core.standing.awaited`) would let execute -- the gate judges it again as if
    they were granted, so over-budget, blackout, breaker, risk or out-of-scope work still asks on
    its own. It is planned again each cycle and runs once the person grants the standing approval."""
    from orchestrator.core.standing import STANDING, awaited, is_routine
    from orchestrator.planning import gate
    from orchestrator.planning.gate import UNPRICED

    held = [g for g in decisions if g.decision == "await_approval" and is_routine(g.action)]
    if not held:
        return decisions, []
    book = awaited(book, [g.action for g in asks if g.action.type == STANDING], now)
    if not book:
        return decisions, []
    ids = {s.action_id for items in book.by_policy.values() for s in items}
    cover = StandingCover(book, resolution, now)
    trial = gate([g.action for g in held], snapshot, assessment, resolution, memory=memory, breaker=breaker, now=now,
                 config=gate_config, durations=durations, standing=cover, budgets=budgets, costs=costs,
                 resyncs=resyncs)
    waiting: dict[str, list[str]] = {}
    for g in trial:
        by = [x for x in (g.authorised_by or "").split(",") if x in ids]
        if g.decision == "execute" and by:
            waiting[g.action.action_id] = by
        elif g.decision == "await_approval" and g.reason.startswith(UNPRICED):
            # held only because no sync is priced yet, and it needs the standing approval being
            # asked anyway: judged again once that is answered (the syncs by then price it)
            need = cover.covers(g.action)
            if need:
                waiting[g.action.action_id] = [s.action_id for s in need if s.action_id in ids]
    if not waiting:
        return decisions, []
    kept, withdrawn = [], []
    for g in decisions:
        by = waiting.get(g.action.action_id) if g.decision == "await_approval" else None
        if by:
            withdrawn.append((g.action, f"routine refresh inside the scope of the standing approval "
                                        f"{', '.join(by)} asked of a person: waits for that answer"))
        else:
            kept.append(g)
    return kept, withdrawn


def incident_cover(ledger: ActionLedger | None, snapshot: Snapshot, assessment: Assessment):
    """``callable(action) -> str | None``: for a planner's action closing incidents a person
    repaired (cause ``repair:<class>``, cycle = the failure ids), the approval(s) that cover it --
    for every failure it answers, the person's approved request about that incident
    (:meth:`ActionLedger.repair_approval`) -- else None. One approval per incident: the person who
    approved the pause and repaired the cause is not asked again to resume and retry."""
    if ledger is None or not ledger.entries and not ledger.repairs:
        return None
    failures = {f.failure_id: f for f in snapshot.failures}
    classes = {d.failure.failure_id: d.category for d in assessment.failures}

    def cover(action: Action) -> str | None:
        if not (action.cause or "").startswith("repair:") or not action.cycle:
            return None
        who: dict[str, None] = {}
        for fid in action.cycle.split(","):
            f, cat = failures.get(fid), classes.get(fid)
            if f is None or cat is None:
                return None
            subject = f"connector:{f.connector}" if f.connector else f"asset:{f.asset_key}"
            by = ledger.repair_approval(subject, cat, _aware(f.at))
            if by is None:
                return None
            who[by] = None
        return "+".join(who) or None

    return cover


def standing_requests(resolution, graph, book: StandingBook, now: datetime, gate_config=None) -> list:
    """Standing approvals to ask this cycle (``orchestrator.core.standing``), as gate decisions
    that wait for a person. None while the operator caps every rollout at recommend/shadow."""
    from orchestrator.core.standing import requests

    if getattr(gate_config, "rollout_cap", None) in ("shadow", "recommend"):
        return []
    return [_ask_policy_owners(a, resolution, "standing approval: routine refreshes of these policies wait for a "
                               "person; approve once for its scope")
            for a in requests(resolution, graph, book, now)]


def _ask_policy_owners(action, resolution, reason: str):
    """A gate decision that waits for the owners of the policies named in ``action.cause``
    (``<kind>:<policy>[,<policy>...]``)."""
    from orchestrator.planning.gate import AWAIT_APPROVAL, GateDecision

    owners: dict[str, None] = {}
    for name in action.cause.split(":", 1)[1].split(","):  # a bundled standing approval names several
        try:
            owners.update(dict.fromkeys(resolution.policy(name).owners))
        except Exception:  # noqa: BLE001 - an unknown policy: the catch-all owners
            continue
    owners = tuple(owners)
    return GateDecision(action, AWAIT_APPROVAL, "low", 0.0, 1.0, reason, owners)


def over_budget(decisions, rejected, resolution, graph, snapshot: Snapshot | None = None,
                now: datetime | None = None) -> tuple[dict[str, float], dict[str, frozenset[str]]]:
    """Work this cycle held or rejected as over a budget: (policy -> what that work would cost,
    held action id -> the budgeted policies it touches)."""
    cost: dict[str, float] = {}
    names_of: dict[str, frozenset[str]] = {}
    # what the gate counted (syncs priced from their backlog, models without history), not only the
    # planner's estimate: an extension sized on less falls short and is asked again
    items = [(g.action, g.reason, getattr(g, "budget_usd", 0.0)) for g in decisions
             if g.decision == "await_approval"] + [(a, why, 0.0) for a, why in rejected]
    pricer = None
    from orchestrator.planning.gate import IDLE, serves_open_window

    memo: dict = {}
    for a, reason, counted in items:
        if not (reason or "").startswith("over budget") or reason.startswith(IDLE) or resolution is None:
            continue
        touched = list(a.asset_keys) or list(graph.connector_tables(a.connector))
        if now is not None and not serves_open_window(touched, resolution, now, memo):
            continue  # no deadline can use it yet: no extension is asked for it
        from orchestrator.core.pricing import budget_keys  # a run's syncs are paid by their tables' policies too

        names = frozenset(n for k in budget_keys(a, graph) if (s := resolution.sla(k)) is not None for n, _ in s.budgets)
        usd = max(a.estimated_cost_usd, counted)
        if snapshot is not None and not counted:  # rejected by validation: priced as it priced it
            from orchestrator.core.pricing import SyncPricer, with_syncs

            pricer = pricer or SyncPricer(snapshot)
            usd = with_syncs(snapshot, a, now, usd, pricer)
        for n in names:
            cost[n] = cost.get(n, 0.0) + usd
        names_of[a.action_id] = names
    return cost, names_of


def extension_requests(resolution, snapshot: Snapshot, assessment: Assessment, book: BudgetBook, now: datetime,
                       durations=None, gate_config=None, held: dict[str, float] | None = None,
                       ahead: bool = False, costs: CostHistory | None = None) -> list:
    """Budget extensions to ask this cycle (``orchestrator.core.standing.budget_requests``), as gate
    decisions that wait for a person. None while the operator caps every rollout at recommend/shadow.
    ``ahead``: for any day of the forecast, not only today and tomorrow."""
    from orchestrator.core.standing import budget_requests

    if getattr(gate_config, "rollout_cap", None) in ("shadow", "recommend"):
        return []
    spent = {c.scope.split(":", 1)[1]: (c.spent_today_usd, c.budget_day_usd) for c in assessment.cost
             if c.scope.startswith("policy:") and c.budget_day_usd is not None}
    rate = getattr(gate_config, "unknown_usd_per_hour", None)
    return [_ask_policy_owners(a, resolution, "budget extension: the deadlines ahead need more than the "
                               "policy's daily budget; approve once for the days named")
            for a in budget_requests(resolution, snapshot, spent, book, now, durations, held=held, ahead=ahead,
                                     costs=costs,
                                     **({"usd_per_hour": rate} if rate else {}))]


def with_connector_settings(planner_config, snapshot: Snapshot):
    """The planner's config with each connector's schema-change setting read from the connector
    API (``Snapshot.schema_change_handling``); settings given in the config win."""
    from dataclasses import replace

    from orchestrator.planning import PlannerConfig

    known = dict(getattr(snapshot, "schema_change_handling", None) or {})
    if not known:
        return planner_config
    cfg = planner_config or PlannerConfig()
    return replace(cfg, schema_change_handling={**known, **dict(cfg.schema_change_handling)})


def learn_outcome(action: Action, success: bool, *, failures=(), memory=None, breaker=None,
                  automatic: bool, now: datetime, ledger: ActionLedger | None = None,
                  subjects: list[str] | None = None) -> list:
    """What happens when an action finishes, wherever it ran (the execution sensor through
    ``Proposals.record_outcome``, the simulator): the failure memory learns whether this resolution
    worked for each related failure (``failures``: (message, category, system)), the circuit
    breaker hears automatic outcomes, the ledger closes the action. Returns breaker trips."""
    if ledger is not None:
        ledger.update(action.action_id, "succeeded" if success else "failed", now)
    failures = list(failures)
    if memory is not None:
        for message, category, system in failures:
            try:
                memory.record_resolution(message, category, action.type, success, system=system)
            except Exception:  # noqa: BLE001 - memory is advisory
                pass
    trips = []
    from orchestrator.planning.planner import PROBE

    # a failed probe is a check on an incident escalated to a person already, made once per
    # deadline cycle: counted by the breaker, two of them opened it and it then held back the
    # probe (and routine work) after the person's unreported fix (generated world 463)
    if breaker is not None and (success or not (action.cycle or "").startswith(PROBE)):
        from orchestrator.planning.breaker import schedule_allowance
        from orchestrator.planning.common import subjects as subjects_of

        allowance = schedule_allowance(action.type, [category for _, category, _ in failures])
        for subject in (subjects if subjects is not None else subjects_of(action)):
            trip = breaker.record(subject, success, now, automatic=automatic, allowance=allowance)
            if trip is not None:
                trips.append(trip)
    return trips
