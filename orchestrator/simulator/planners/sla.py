"""This project's planner on virtual time: the same decision core the sensors call.

At every sensor tick (``sensor_tick``): Snapshot (from the simulation) -> ``assess`` -> ``plan``
(-> the LLM agent's ``review`` for ``sla-llm``) -> ``validate`` -> ``gate``. The planner is told
the tick interval (``PlannerConfig.tick_interval_s``, as the planning sensor's own interval):
work whose latest start falls before the next tick starts now. ``execute`` decisions
run at once; ``await_approval`` ones wait ``approvals.delay`` for a human (who fixes what needs a
human while approving); ``record_only`` ones are logged. Connectors keep their own sync
schedules, as in production. The circuit breaker hears the outcome of every automatic action.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.simulator.planners import Planner, PlannerUnavailable


class SLAPlanner(Planner):
    def __init__(self, llm: bool = False, client=None) -> None:
        self.name = "sla-llm" if llm else "sla"
        self.llm = llm
        try:
            from orchestrator.assessment import assess
            from orchestrator.planning import CircuitBreaker, gate, plan, validate
        except ImportError as exc:  # the decision core is not there (yet)
            missing = "orchestrator.planning" if "planning" in str(exc) else "orchestrator.assessment"
            raise PlannerUnavailable(f"not available yet: {missing} missing ({exc})") from None
        self._assess, self._plan, self._validate, self._gate = assess, plan, validate, gate
        self.breaker = CircuitBreaker()
        self.llm_config = None
        self.client = client
        if llm:
            try:
                from orchestrator.agent import LLMConfig, review
                from orchestrator.planning import build_context
            except ImportError as exc:
                raise PlannerUnavailable(f"not available yet: orchestrator.agent missing ({exc})") from None
            self.llm_config = LLMConfig.from_env()
            if self.llm_config is None and client is None:
                raise PlannerUnavailable(
                    "sla-llm needs an OpenAI-compatible endpoint: set OPENAI_API_KEY and/or OPENAI_BASE_URL")
            if self.llm_config is None:
                self.llm_config = LLMConfig()
            self._review, self._context = review, build_context
        self.memory = None
        self._config = None
        self._pending: set[str] = set()
        self._action_of_run: dict[str, object] = {}
        self._resolution = None
        self._resolved_until: datetime | None = None
        self.ticks = 0
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
        sim.start_native_schedules()
        sim.listeners.append(self)
        sim.every(sim.spec.sensor_tick.total_seconds(), self.tick, start=0.0)

    # -- the resolution moves with the clock (targets are the upcoming deadline ticks) ---------
    def resolution(self, sim):
        now = sim.dt()
        if self._resolution is None or (self._resolved_until is not None and now >= self._resolved_until):
            from orchestrator.policies import DurationModel, load_policies, resolve

            self._resolution = resolve(load_policies(sim.sc.policy_paths), sim.graph,
                                       DurationModel(sim.history), now)
            targets = list(self._resolution._targets.values()) if self._resolution.ok else []
            self._resolved_until = min(targets) if targets else None
        return self._resolution

    def tick(self, sim) -> None:
        from orchestrator.policies import DurationModel

        self.ticks += 1
        now = sim.dt()
        snap = sim.snapshot()
        res = self.resolution(sim)
        durations = DurationModel(snap.durations)
        assessment = self._assess(snap, res, durations, memory=self.memory, now=now)
        p = self._plan(snap, assessment, res, durations, now=now, config=self._planner_config(sim))
        envelope = None
        if self.llm and p.actions:
            context, _ = self._context(p, snap, assessment, res, durations)
            outcome = self._review(p, context, config=self.llm_config, client=self.client)
            self.llm_calls += len(outcome.calls)
            self.llm_fallbacks += outcome.fallback_reason is not None
            if outcome.fallback_reason is None:
                from orchestrator.agent.envelope import enforce

                envelope = enforce(p, outcome.plan, snap, assessment, now=now)
            p = envelope.plan if envelope is not None else outcome.plan
        accepted, rejected = self._validate(p, snap, res, now=now)
        if not accepted:
            return
        from orchestrator.agent.envelope import hold_for_approval
        from orchestrator.planning.gate import related_failures

        decisions = self._gate(accepted, snap, assessment, res, memory=self.memory, breaker=self.breaker, now=now)
        for d in hold_for_approval(decisions, envelope):
            self.decisions[d.decision] = self.decisions.get(d.decision, 0) + 1
            action = d.action
            related = [(f.failure.message, f.category, f.failure.system) for f in related_failures(action, assessment)]
            if d.decision == "execute":
                self._launch(sim, action, approved=False, related=related)
            elif d.decision == "await_approval":
                key = self._key(action)
                if key in self._pending:
                    continue
                self._pending.add(key)

                def approved(a, key=key, related=related) -> None:
                    self._pending.discard(key)
                    self._learn_approval(a, related)
                    # the execution sensor re-validates an approved proposal against the fleet now
                    from orchestrator.core.records import Plan

                    snap_now = sim.snapshot()
                    ok, _ = self._validate(Plan(sim.dt(), [a], "approved"), snap_now, self.resolution(sim),
                                           now=sim.dt())
                    if ok:
                        self._launch(sim, a, approved=True, related=related)
                    else:
                        self.decisions["approved_but_stale"] = self.decisions.get("approved_but_stale", 0) + 1

                sim.request_approval(action, approved)

    def _planner_config(self, sim):
        # the planning sensor's own interval: work due before the next tick starts now
        if self._config is None:
            from orchestrator.planning import PlannerConfig

            self._config = PlannerConfig(tick_interval_s=sim.spec.sensor_tick.total_seconds())
        return self._config

    @staticmethod
    def _key(action) -> str:
        return f"{action.type}|{action.connector}|{','.join(sorted(action.asset_keys))}|{action.run_id}"

    def _launch(self, sim, action, *, approved: bool, related=()) -> None:
        before = set(sim.runs)
        sim.execute(action, approved=approved, decision="approved" if approved else "execute")
        for rid in set(sim.runs) - before:
            self._action_of_run[rid] = (action, approved, related)

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
        from orchestrator.planning import subjects

        for subject in subjects(action):
            self.breaker.record(subject, not run.failed, sim.dt(), automatic=not approved)
        # what the execution sensor does: remember whether the resolution worked
        if self.memory is not None:
            for message, category, system in related[:3]:
                try:
                    self.memory.record_resolution(message, category, action.type, not run.failed, system=system)
                except Exception:  # noqa: BLE001
                    pass

    def finish(self, sim) -> None:
        parts = [f"{self.ticks} ticks", ", ".join(f"{k} {v}" for k, v in sorted(self.decisions.items()))]
        if self.llm:
            parts.append(f"{self.llm_calls} LLM calls, {self.llm_fallbacks} fallbacks to the baseline")
        self.note = "; ".join(p for p in parts if p)
