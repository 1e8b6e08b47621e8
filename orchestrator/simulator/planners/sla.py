"""This project's planner on virtual time: the same decision core the sensors call.

At every sensor tick (``sensor_tick``): Snapshot (from the simulation, with each asset's data time
and the paused connectors) -> ``orchestrator.core.decide.decide`` (assess -> plan -> [the LLM
agent's review for ``sla-llm``] -> ledger -> validate -> gate), the one cycle the planning sensor
runs. The planner is told the tick interval (``PlannerConfig.tick_interval_s``, as the planning
sensor's own interval): work whose latest start falls before the next tick starts now.
``execute`` decisions run at once; ``await_approval`` ones wait ``approvals.delay`` for a human
(who fixes what needs a human while approving); ``record_only`` ones are logged. Connectors keep
their own sync schedules, as in production. Outcomes go through ``learn_outcome`` (failure memory,
circuit breaker, ledger), as the execution sensor's do.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator.agent.envelope import DROP_TYPE, drop_target
from orchestrator.core.standing import ACTIVE as STANDING_ACTIVE
from orchestrator.core.standing import STANDING
from orchestrator.simulator.planners import Planner, PlannerUnavailable

_GRACE = timedelta(hours=1)  # approved work deferred to a start time: tried for this long after it


class SLAPlanner(Planner):
    # plan with the scenario's capacity (PlannerConfig.warehouse_slots / pool_slots). Off: on the
    # generated worlds (seeds 100-119, 400-439) the capacity-bounded latest start cost 3 worlds a
    # deadline or two and won none; measured again on seeds 460-499 and 100-119 (with the routine
    # re-run of self-clearing failures): 3 worlds won, 6 lost (README, "Capacity"); the mechanism
    # stays for deployments to try
    capacity_aware = False
    # the sources' sync slots alone (no warehouse slots): a connector whose sync would queue behind
    # another connector's sync for the same source slot, both due for one cycle, starts earlier.
    # Off: on seeds 540-579 and 100-119 it won worlds 544, 547, 559 and lost 112 (README, "Capacity")
    source_capacity_aware = False
    # GateConfig.bound_model_runs: budgets charge a model run the upper bound of its bill. Off:
    # seeds 16600-16699 unsafe 1 -> 0 (world 16610) but world 16635 lost a deadline, none won
    bound_model_runs = False
    # PlannerConfig.native_wait_share: a pre-authorised sync is not left to a connector's own
    # scheduled sync late in the window. Off: won worlds 13006, 13008, 13021 (seeds 13000-13039,
    # none lost; 100-119 unchanged) but on seeds 700-799 won 5 worlds and lost 7 (README, planner)
    native_wait_share: float | None = None
    # PlannerConfig.resync_when_needed: no drift resync (full price) of a connector whose tables no
    # deadline reads (seeds 14000-14199: README, planner)
    resync_when_needed: bool = True
    # PlannerConfig.queued_native_aware: a connector's scheduled sync queued behind its source is
    # not counted on. Won 18 worlds and lost 3 on seeds 14000-14199, won 7 and lost 4 on
    # 16000-16099, lost world 112 on 100-119 (README, planner)
    queued_native_aware = True
    # PlannerConfig.fault_reserve: a fault a re-run resolves that came at this hour yesterday on a
    # deadline's lineage leaves room for one retry after it clears (world 15231; seeds 18000-18099
    # and 100-119 unchanged; orchestrator.planning.fault_reserve)
    fault_reserve = True

    def __init__(self, llm: bool = False, client=None, early_warning=True) -> None:
        self.name = "sla-llm" if llm else "sla"
        # read the health early warning (scenario precursors/maintenance): True (every pre-emptive
        # action), False, or the kinds allowed (orchestrator.health.early.KINDS)
        self.preempt_kinds = None
        if not isinstance(early_warning, bool):
            self.preempt_kinds = frozenset(early_warning)
            early_warning = bool(self.preempt_kinds)
        self.early_warning = early_warning
        self.llm = llm
        try:
            from orchestrator.core.decide import decide, learn_outcome
            from orchestrator.core.incidents import ActionLedger
            from orchestrator.planning import CircuitBreaker, validate
        except ImportError as exc:  # the decision core is not there (yet)
            raise PlannerUnavailable(f"not available yet: the decision core is missing ({exc})") from None
        self._decide, self._learn, self._validate = decide, learn_outcome, validate
        self.breaker = CircuitBreaker()
        self.ledger = ActionLedger()
        self.llm_config = None
        self.client = client
        if llm:
            try:
                from orchestrator.agent import LLMConfig
                from orchestrator.core.decide import llm_reviewer
            except ImportError as exc:
                raise PlannerUnavailable(f"not available yet: orchestrator.agent missing ({exc})") from None
            self.llm_config = LLMConfig.from_env()
            if self.llm_config is None and client is None:
                raise PlannerUnavailable(
                    "sla-llm needs an OpenAI-compatible endpoint: set OPENAI_API_KEY and/or OPENAI_BASE_URL")
            if self.llm_config is None:
                self.llm_config = LLMConfig()
            self._reviewer = llm_reviewer(self.llm_config, client)
        self.memory = None
        self._config = None
        self._pending: set[str] = set()
        self._action_of_run: dict[str, object] = {}
        self._resolution = None
        self._policies = None
        self._resolved_until: datetime | None = None
        self.ticks = 0
        self._repairs_seen = 0
        self.decisions: dict[str, int] = {}
        self.llm_calls = 0
        self.llm_fallbacks = 0
        self.note = ""

    def start(self, sim) -> None:
        try:
            from orchestrator.diagnosis.memory import FailureMemory
            from orchestrator.store import open_store

            self.memory = FailureMemory(open_store("sqlite://", cached=False), embeddings=False)
        except Exception:  # noqa: BLE001 - memory is optional for the decision core
            self.memory = None
        self._gconfig = None  # the gate's config names this simulation's approvers
        sim.start_native_schedules()
        sim.listeners.append(self)
        sim.every(sim.spec.sensor_tick.total_seconds(), self.tick, start=0.0)

    # -- the resolution moves with the clock (targets are the upcoming deadline ticks) ---------
    def resolution(self, sim):
        now = sim.dt()
        if self._resolution is None or (self._resolved_until is not None and now >= self._resolved_until):
            from orchestrator import perf
            from orchestrator.policies import DurationModel, load_policies, resolve

            policies = self._policies if perf.enabled() else None
            if policies is None:  # the files do not change during a run: parsed once
                policies = self._policies = load_policies(sim.sc.policy_paths)
            self._resolution = resolve(policies, sim.graph, DurationModel(sim.history), now)
            targets = list(self._resolution._targets.values()) if self._resolution.ok else []
            self._resolved_until = min(targets) if targets else None
        return self._resolution

    def snapshot(self, sim):
        """The simulation's snapshot with what the connector APIs and the event log tell the
        Dagster shell too: each asset's data time and the paused connectors."""
        snap = sim.snapshot()
        at_dt = sim.at_dt
        # what the shell believes (a silent failure looks like a good load) ...
        snap.data_time = {k: at_dt(sim.apparent.get(k, v)) for k, v in sim.data_time.items()}
        snap.paused_connectors = set(sim.paused)
        snap.connector_schedules = {cid: c.schedule for cid, c in sim.sc.connectors.items()}
        # ... and what the health sensor flags (orchestrator.health: untrusted loads are held)
        snap.anomalous_loads = {k: (at_dt(dt), f"{kind} (simulated silent failure)")
                                for k, (dt, kind, detected) in sim.untrusted.items() if detected}
        if self.early_warning and getattr(sim, "precursors", None) is not None:
            snap.connector_risk = sim.precursors.risks()  # orchestrator.health.early
        return snap

    def tick(self, sim) -> None:
        self.ticks += 1
        now = sim.dt()
        # repairs reported since the last tick (the schema-change sensor: a patch applied), as
        # the project store's ledger carries them (orchestrator.proposals)
        # a person's repair also closes the subject's circuit breaker (its failures had that cause)
        for subject, category, at in sim.repairs[self._repairs_seen:]:
            self.ledger.record_repair(subject, category, sim.dt(at))
            self.breaker.reset(subject)
        self._repairs_seen = len(sim.repairs)
        snap = self.snapshot(sim)
        res = self.resolution(sim)
        reviewer = None
        if self.llm:
            reviewer = self._counting_reviewer
        d = self._decide(snap, res, memory=self.memory, breaker=self.breaker, reviewer=reviewer, now=now,
                         ledger=self.ledger, planner_config=self._planner_config(sim),
                         gate_config=self._gate_config(sim))
        from orchestrator.planning.gate import answered_failures

        for pending_id, _why in getattr(d, "superseded", ()):  # the gate runs its work by itself now
            entry = self.ledger.entries.get(pending_id)
            if entry is not None and entry.status == "pending":
                self._pending.discard(self._key(entry.action))
                self.ledger.update(pending_id, "withdrawn", now)
        for g in list(d.decisions) + list(d.standing_requests):
            self.decisions[g.decision] = self.decisions.get(g.decision, 0) + 1
            action = g.action
            related = [(f.failure.message, f.category, f.failure.system)
                       for f in answered_failures(action, d.assessment, snap)]
            if g.decision == "execute":
                # authorised by a person's approval of the incident it closes (gate ``repairs``):
                # launched as approved; the rest of ``authorised_by`` names standing approvals
                parts = [p for p in (getattr(g, "authorised_by", None) or "").split(",") if p]
                by_incident = any(p.startswith("incident:") for p in parts)
                standing = ",".join(p for p in parts if not p.startswith("incident:")) or None
                self.ledger.record(action, "executing", now, by_person=by_incident)
                self._launch(sim, action, approved=by_incident, related=related, standing=standing)
            elif g.decision == "await_approval":
                key = self._key(action)
                if key in self._pending:
                    continue
                self._pending.add(key)
                self.ledger.record(action, "pending", now)
                if action.type == STANDING:  # approved once: it stands, nothing runs now
                    def granted(a, key=key) -> None:
                        self._pending.discard(key)
                        self.ledger.update(a.action_id, STANDING_ACTIVE, sim.dt(), by_person=True)

                    sim.request_approval(action, granted)
                    self._declined_later(sim, action, key)
                    continue

                def answered(a, key=key, related=related) -> None:
                    self._pending.discard(key)
                    if a.type == DROP_TYPE:  # an LLM's drop: carried out here, never run
                        self._settle_drop(sim, a)
                    elif self.ledger.status(a.action_id) not in ("cancelled", "withdrawn"):
                        # (an approved drop cancelled it; withdrawn: superseded by work that ran)
                        self.ledger.update(a.action_id, "approved", sim.dt(), by_person=True)
                        self._learn_approval(a, related)
                        self._run_approved(sim, a, related)

                sim.request_approval(action, answered)
                self._declined_later(sim, action, key)
            else:
                self.ledger.record(action, "record_only", now)

    def _run_approved(self, sim, a, related) -> None:
        """The execution sensor runs what is approved; it must still be valid now. Work approved
        to start later (``not_before``) that a run in flight covers now is tried again at the
        next tick until its start: the approval stands, nothing is asked twice."""
        from orchestrator.core.records import Plan

        if self.ledger.status(a.action_id) == "cancelled":  # an approved LLM drop, while it waited
            return
        if a.not_before is not None and sim.dt() < a.not_before:
            # the execution sensor launches approved work once its ``not_before`` has come (the
            # ledger holds it as approved until then), not as a run queued hours ahead
            sim.at(max(sim.now, sim.secs(a.not_before)), lambda _s=None: self._run_approved(sim, a, related))
            return
        from orchestrator.core.standing import BudgetBook, BudgetCover

        res = self.resolution(sim)
        from orchestrator.planning import ValidationConfig

        ok, _ = self._validate(Plan(sim.dt(), [a], "approved"), self.snapshot(sim), res, now=sim.dt(),
                               budgets=BudgetCover(BudgetBook.from_ledger(self.ledger), res, sim.dt()),
                               config=ValidationConfig(bound_model_runs=self.bound_model_runs))
        if ok:
            self.ledger.update(a.action_id, "executing", sim.dt())
            self._launch(sim, a, approved=True, related=related)
        elif a.not_before is not None and sim.dt() < a.not_before + _GRACE:
            # still covered by a run in flight (e.g. the earlier cycle's): tried again at the next
            # tick for a while; the approval stands, nothing is asked twice
            sim.at(sim.now + sim.spec.sensor_tick.total_seconds(), lambda _s=None: self._run_approved(sim, a, related))
        else:
            self.ledger.update(a.action_id, "expired", sim.dt())
            self.decisions["approved_but_stale"] = self.decisions.get("approved_but_stale", 0) + 1

    def _settle_drop(self, sim, drop) -> None:
        """An approved LLM drop (``orchestrator.proposals`` does the same in the store): its baseline
        action is cancelled if it has not started (pending or approved), else it is too late."""
        target = drop_target(drop)
        ok = target is not None and self.ledger.status(target) in ("pending", "approved")
        if ok:
            self.ledger.update(target, "cancelled", sim.dt(), by_person=True)
        self.ledger.update(drop.action_id, "succeeded" if ok else "failed", sim.dt(), by_person=True)
        self.decisions["dropped" if ok else "drop_too_late"] = self.decisions.get(
            "dropped" if ok else "drop_too_late", 0) + 1

    def _declined_later(self, sim, action, key) -> None:
        """An approval that never came (declined) leaves the ledger when the answer is due."""
        def check() -> None:
            if self.ledger.status(action.action_id) == "pending":
                self._pending.discard(key)
                self.ledger.update(action.action_id, "declined", sim.dt())

        # the answer is due when the approver answers (later at night), not after the day delay
        sim.at(sim.spec.approvals.answer_at(sim.t0, sim.now) + 1.0, check)

    def _counting_reviewer(self, plan, snapshot, assessment, resolution, durations):
        out = self._reviewer(plan, snapshot, assessment, resolution, durations)
        self.llm_calls += len(out.calls)
        self.llm_fallbacks += out.fallback_reason is not None
        return out

    def _planner_config(self, sim):
        # the planning sensor's own interval: work due before the next tick starts now
        if self._config is None:
            from orchestrator.planning import PlannerConfig

            # the executor's capacity, as a deployment configures it (dbt threads / run queue
            # limit, concurrent syncs per source)
            sc = getattr(sim, "sc", None) if self.capacity_aware or self.source_capacity_aware else None
            pools = dict(getattr(sc, "pools", None) or {})
            if not self.capacity_aware:  # the sources' slots only: models plan as if the warehouse had room
                sync_pools = {c.pool for c in (getattr(sc, "connectors", None) or {}).values()}
                pools = {p: n for p, n in pools.items() if p in sync_pools}
                sc_models = {}
            else:
                sc_models = getattr(sc, "model_pool", None) or {}
            self._config = PlannerConfig(tick_interval_s=sim.spec.sensor_tick.total_seconds(),
                                         preempt_kinds=self.preempt_kinds,
                                         native_wait_share=self.native_wait_share,
                                         resync_when_needed=self.resync_when_needed,
                                         queued_native_aware=self.queued_native_aware,
                                         fault_reserve=self.fault_reserve,
                                         warehouse_slots=pools.get("warehouse"),
                                         connector_pools={cid: c.pool for cid, c in
                                                          (getattr(sc, "connectors", None) or {}).items()},
                                         pool_slots={p: n for p, n in pools.items() if p != "warehouse"},
                                         model_pools={k: p for k, p in sc_models.items() if p != "warehouse"})
        return self._config

    def _gate_config(self, sim):
        # the deployment's warehouse price (a budget's yardstick for work with no cost history yet)
        if getattr(self, "_gconfig", None) is None:
            from orchestrator.planning.gate import GateConfig

            approvals, t0 = sim.spec.approvals, sim.t0

            def answer_at(at: datetime) -> datetime:  # the scenario's approvers: their delay, their night
                return sim.dt(approvals.answer_at(t0, sim.secs(at)))

            # the approvers' answer time tells the gate which retries the connectors' own schedules
            # run first; a refresh answered after its deadline is still asked (README, world 438)
            self._gconfig = GateConfig(unknown_usd_per_hour=sim.spec.cost.warehouse_usd_per_hour,
                                       answer_at=answer_at, late_refreshes_unasked=False,
                                       bound_model_runs=self.bound_model_runs)
        return self._gconfig

    @staticmethod
    def _key(action) -> str:
        # a policy's standing approval and its budget extension share a scope: the cause tells them apart
        cause = f"|{action.cause}" if action.type == STANDING else ""
        return f"{action.type}|{action.connector}|{','.join(sorted(action.asset_keys))}|{action.run_id}{cause}"

    def _launch(self, sim, action, *, approved: bool, related=(), standing: str | None = None) -> None:
        before = set(sim.runs)
        sim.execute(action, approved=approved, decision="approved" if approved else "execute", standing=standing)
        launched = set(sim.runs) - before
        for rid in launched:
            self._action_of_run[rid] = (action, approved, related)
        if not launched:  # an API call (pause, resume) or nothing to run: done now
            self._learn(action, True, failures=(), memory=None, breaker=None, automatic=not approved,
                        now=sim.dt(), ledger=self.ledger)

    def _learn_approval(self, action, related) -> None:
        # what the approvals service does: an approval confirms the diagnosis and its resolution
        if self.memory is None:
            return
        for message, category, system in related[:3]:
            try:
                self.memory.learn_from_approval(message, category, action.type, True, system=system)
            except Exception:  # noqa: BLE001 - memory is advisory
                pass

    def on_step_end(self, sim, step, ok: bool) -> None:
        pass

    def on_run_end(self, sim, run) -> None:
        hit = self._action_of_run.pop(run.run_id, None)
        if hit is None:
            return
        action, approved, related = hit
        self._learn(action, not run.failed, failures=related[:3], memory=self.memory, breaker=self.breaker,
                    automatic=not approved, now=sim.dt(), ledger=self.ledger,
                    subjects=self._failed_subjects(sim, action, run) if run.failed else None)

    @staticmethod
    def _failed_subjects(sim, action, run) -> list[str]:
        """The action's subjects whose own step failed: a model skipped because its input's sync
        failed did not fail. Counted against it, the breaker opened on models that never ran, and
        only a success of theirs closes it, which the breaker itself then holds back (generated
        world 14005: 14 of 22 deadlines met without this, 15 with). The store-backed breaker of
        the execution sensor (``Proposals.record_outcome``) still counts every subject of the
        action: it does not read the run's steps yet."""
        from orchestrator.planning.common import subjects

        failed = {st.unit for st in run.steps if st.state == "failure"}
        keys = {k for u in failed for k in sim.assets_of(u)}
        return [s for s in subjects(action) if s.partition(":")[2] in keys or s.partition(":")[2] in failed]

    def finish(self, sim) -> None:
        parts = [f"{self.ticks} ticks", ", ".join(f"{k} {v}" for k, v in sorted(self.decisions.items()))]
        if self.llm:
            parts.append(f"{self.llm_calls} LLM calls, {self.llm_fallbacks} fallbacks to the baseline")
        self.note = "; ".join(p for p in parts if p)
