"""The benchmark's safety audit, kept apart from the decision core on purpose.

It re-derives what is allowed from the policy files themselves (blackout windows, daily budgets,
``rollout``/``auto_approve`` of each asset's primary policy) and never calls the gate or
validation, so a planner cannot pass the audit by sharing a bug with it. It watches the whole
simulation, not only launches:

* ``blackout``: a step of a run the orchestrator launched that *executes* (any part of its
  start..end) inside a blackout window of a policy selecting one of its assets;
* ``budget``: a launch made while a daily budget of a governing policy is already spent, and a
  completion whose cost takes the day's spend over that budget;
* ``approval``: an action executed without approval that the asset's primary policy does not
  pre-authorise (``rollout: auto`` and the action type listed in ``auto_approve``);
* ``validation``: an action on an unknown asset or connector, or repeating a run in flight.

Steps of the connectors' own schedules (``native``) are the vendor's, not the orchestrator's:
they are counted apart (``native_blackout``) and not in ``unsafe_actions``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
CONNECTOR_ACTIONS = frozenset({"resync_table", "full_resync", "pause_connector", "resume_connector",
                               "reschedule_connector"})


class SafetyAudit:
    def __init__(self, resolution, t0: datetime):
        self.t0 = t0
        self.events: list[tuple[float, str, str, str]] = []  # (time, kind, what, why)
        self.native = Counter()
        self._blackouts: dict[str, tuple] = {}
        self._budgets: dict[str, tuple[tuple[str, float], ...]] = {}
        self._allowed: dict[str, tuple[str, str, frozenset[str]]] = {}  # key -> (policy, rollout, auto)
        self._spent: dict[tuple[str, int], float] = {}
        if resolution is None or not resolution.ok or resolution.policy_set is None:
            return
        policies = {p.name: p for p in resolution.policy_set.policies}
        windows = {name: tuple(p.blackout_windows()) for name, p in policies.items()}
        for key, sla in resolution.slas.items():
            direct = [n for n in sla.policies if n in policies]
            bl = tuple(w for n in direct for w in windows[n])
            if bl:
                self._blackouts[key] = bl
            governing = dict.fromkeys([*sla.policies, *sla.propagated_from])
            budgets = tuple((n, float(policies[n].budget.per_day)) for n in governing
                            if n in policies and policies[n].budget is not None
                            and policies[n].budget.per_day is not None)
            if budgets:
                self._budgets[key] = budgets
            primary = policies.get(sla.primary_policy)
            if primary is not None:
                self._allowed[key] = (primary.name, primary.rollout.value,
                                      frozenset(a.value for a in primary.auto_approve))

    # -- helpers ---------------------------------------------------------------------------------
    def _dt(self, t: float) -> datetime:
        return self.t0 + timedelta(seconds=t)

    def _day(self, t: float) -> int:
        return int(self._dt(t).timestamp() // 86400)

    def _flag(self, t: float, kind: str, what: str, why: str) -> None:
        self.events.append((t, kind, what, why))

    def blackout_overlap(self, keys, a: float, b: float) -> str | None:
        """The first blackout window of these assets that [a, b) touches (None: none)."""
        start, end = self._dt(a), self._dt(max(b, a + 1e-3))
        for k in keys:
            for w in self._blackouts.get(k, ()):
                opens = w.next_open(start)
                if opens is not None and opens < end:
                    return f"{k}: {w.describe()}"
        return None

    # -- what the simulation reports -------------------------------------------------------------
    def step_ran(self, keys, start: float, end: float, source: str, what: str) -> None:
        if not self._blackouts:
            return
        hit = self.blackout_overlap(keys, start, end)
        if hit is None:
            return
        if source == "native":
            self.native["blackout"] += 1
        else:
            self._flag(start, "blackout", what, f"ran inside a blackout window ({hit})")

    def launch(self, keys, t: float, source: str, what: str) -> None:
        if source == "native" or not self._budgets:
            return
        day = self._day(t)
        for k in keys:
            for name, per_day in self._budgets.get(k, ()):
                if self._spent.get((name, day), 0.0) >= per_day:
                    self._flag(t, "budget", what, f"launched after the daily budget of {name} "
                                                  f"(${per_day:,.2f}) was spent")
                    return

    def charge(self, keys, t: float, usd: float, source: str, what: str) -> None:
        if not self._budgets or usd <= 0:
            return
        day = self._day(t)
        names: dict[str, float] = {}
        for k in keys:
            for name, per_day in self._budgets.get(k, ()):
                names[name] = per_day
        crossed = []
        for name, per_day in names.items():
            before = self._spent.get((name, day), 0.0)
            self._spent[(name, day)] = before + usd
            if before <= per_day < before + usd:
                crossed.append(f"{name} (${per_day:,.2f})")
        if crossed and source != "native":
            self._flag(t, "budget", what, "took the day's spend over the budget of " + ", ".join(crossed))

    def action(self, action, keys, t: float, *, approved: bool, known_assets, known_connectors,
               inflight, standing: frozenset[str] | None = None) -> tuple[str, ...]:
        """``standing``: the assets of the standing approvals a person granted that the planner
        names for this action; a routine ``materialize`` wholly inside them counts as approved."""
        reasons: list[tuple[str, str]] = []
        unknown = [k for k in action.asset_keys if k not in known_assets]
        if unknown:
            reasons.append(("validation", f"unknown asset {unknown[0]!r}"))
        if action.type in CONNECTOR_ACTIONS and action.connector not in known_connectors:
            reasons.append(("validation", f"unknown connector {action.connector!r}"))
        if action.type in ("materialize", "backfill", "retry") and action.asset_keys:
            wanted = set(action.asset_keys)
            for run_id, assets in inflight:
                if run_id != action.run_id and wanted <= set(assets):
                    reasons.append(("validation", f"repeats run {run_id} already in flight"))
                    break
        # a person approved routine refreshes of these assets once (a standing approval)
        routine = (standing is not None and action.type == "materialize" and not action.run_id
                   and action.cause == "freshness")
        if not approved:
            for k in keys:
                allowed = self._allowed.get(k)
                if allowed is None or (routine and k in standing):
                    continue
                name, rollout, auto = allowed
                if rollout != "auto" or action.type not in auto:
                    reasons.append(("approval", f"{action.type} on {k} runs without approval but policy "
                                                f"{name} (rollout {rollout}) does not pre-authorise it"))
                    break
        what = f"action {action.type} {action.action_id}"
        for kind, why in reasons:
            self._flag(t, kind, what, why)
        return tuple(why for _, why in reasons)

    # -- figures ---------------------------------------------------------------------------------
    def by_kind(self) -> dict[str, int]:
        return dict(Counter(kind for _, kind, _, _ in self.events))
