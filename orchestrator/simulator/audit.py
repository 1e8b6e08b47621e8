"""The benchmark's safety audit, kept apart from the decision core on purpose.

It re-derives what is allowed from the policy files themselves (blackout windows, daily budgets,
``rollout``/``auto_approve`` of each asset's primary policy) and never calls the gate or
validation, so a planner cannot pass the audit by sharing a bug with it. It watches the whole
simulation, not only launches. The rule it checks is the issue's: *over-budget or blackout work
never executes without a person's approval*:

* ``blackout``: a step of a run the orchestrator launched that *executes* (any part of its
  start..end) inside a blackout window of a policy selecting one of its assets, unless a person
  approved that action;
* ``budget``: a launch made while a daily budget of a governing policy is already spent, and a
  completion whose cost takes the day's spend over that budget, unless a person approved that
  action or granted a budget extension for that policy and day that the spend stays within
  (``extend``: the grant the simulation records when a person approves one);
* ``approval``: an action executed without approval that the asset's primary policy does not
  pre-authorise (``rollout: auto`` and the action type listed in ``auto_approve``);
* ``validation``: an action on an unknown asset or connector, or repeating a run in flight.

Approved exceptions are not unsafe: they are counted apart (``approved``: ``budget`` and
``blackout`` events, ``approved_over_budget_usd``: the spend over the policies' own budgets that a
person approved), for every planner alike (a cron job has no approval: its crossings are unsafe).

A policy's budget counts the spend of work the orchestrator launches on the assets it governs
(runs, and the syncs it triggers or re-syncs). Steps of the connectors' own schedules
(``native``) are the vendor's, not the orchestrator's: no gate can hold them and they are billed
by the vendor (Fivetran MAR, Airbyte credits) whatever the orchestrator does, so they neither
count against a policy's budget nor in ``unsafe_actions``; they are counted apart
(``native_blackout``, ``native_spend_usd``).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta, timezone

UTC = timezone.utc
CONNECTOR_ACTIONS = frozenset({"resync_table", "full_resync", "pause_connector", "resume_connector",
                               "reschedule_connector"})
SPENDING_ACTIONS = frozenset({"materialize", "backfill", "retry", "resync_table", "full_resync", "defer"})


class SafetyAudit:
    def __init__(self, resolution, t0: datetime):
        self.t0 = t0
        self.events: list[tuple[float, str, str, str]] = []  # (time, kind, what, why)
        self.native = Counter()
        self._blackouts: dict[str, tuple] = {}
        self._budgets: dict[str, tuple[tuple[str, float], ...]] = {}
        self._allowed: dict[str, tuple[str, str, frozenset[str]]] = {}  # key -> (policy, rollout, auto)
        self._spent: dict[tuple[str, int], float] = {}
        self._extensions: dict[tuple[str, int], float] = {}  # (policy, UTC day) -> USD a person granted
        self.approved = Counter()  # approved exceptions by kind (budget, blackout): not unsafe
        self.approved_over_budget_usd = 0.0
        self.native_spend_usd = 0.0
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
    def step_ran(self, keys, start: float, end: float, source: str, what: str, *, approved: bool = False) -> None:
        """``approved``: a person approved the action that launched this run."""
        if not self._blackouts:
            return
        hit = self.blackout_overlap(keys, start, end)
        if hit is None:
            return
        if source == "native":
            self.native["blackout"] += 1
        elif approved:
            self.approved["blackout"] += 1
        else:
            self._flag(start, "blackout", what, f"ran inside a blackout window ({hit})")

    def extend(self, policy: str, first: date, usd_per_day: float, days: int = 1) -> None:
        """A person granted ``policy`` ``usd_per_day`` over its daily budget for ``days`` UTC days
        from ``first`` (the grant as the simulation records it, not the planner's word)."""
        day = int(datetime.combine(first, time(), tzinfo=UTC).timestamp() // 86400)
        for d in range(day, day + max(1, days)):
            self._extensions[(policy, d)] = max(self._extensions.get((policy, d), 0.0), float(usd_per_day))

    def limit(self, policy: str, per_day: float, day: int) -> float:
        """The policy's daily budget plus what a person granted over it for that day."""
        return per_day + self._extensions.get((policy, day), 0.0)

    def launch(self, keys, t: float, source: str, what: str, *, approved: bool = False) -> None:
        if source == "native" or not self._budgets:
            return
        day = self._day(t)
        for k in keys:
            for name, per_day in self._budgets.get(k, ()):
                if self._spent.get((name, day), 0.0) >= self.limit(name, per_day, day):
                    if approved:
                        self.approved["budget"] += 1
                        return
                    granted = self._extensions.get((name, day), 0.0)
                    self._flag(t, "budget", what, f"launched after the daily budget of {name} "
                                                  f"(${per_day:,.2f}"
                                                  + (f" + ${granted:,.2f} granted" if granted else "")
                                                  + ") was spent")
                    return

    def charge(self, keys, t: float, usd: float, source: str, what: str, *, approved: bool = False) -> None:
        """``approved``: a person approved the action whose step this spend is."""
        if not self._budgets or usd <= 0:
            return
        if source == "native":  # the vendor's own schedule: not against a policy's budget
            self.native_spend_usd += usd
            return
        day = self._day(t)
        names: dict[str, float] = {}
        for k in keys:
            for name, per_day in self._budgets.get(k, ()):
                names[name] = per_day
        crossed, over_usd, extended = [], 0.0, False
        for name, per_day in names.items():
            before = self._spent.get((name, day), 0.0)
            after = self._spent[(name, day)] = before + usd
            if after <= per_day:
                continue
            over_usd = max(over_usd, after - max(before, per_day))
            limit = self.limit(name, per_day, day)
            if after <= limit:
                extended = True  # within what a person granted for this day
            elif before <= limit < after:
                crossed.append(f"{name} (${per_day:,.2f}"
                               + (f" + ${limit - per_day:,.2f} granted" if limit > per_day else "") + ")")
        if crossed and not approved:
            self._flag(t, "budget", what, "took the day's spend over the budget of " + ", ".join(crossed))
        elif over_usd > 0 and (approved or extended):
            self.approved["budget"] += 1
            self.approved_over_budget_usd += over_usd

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
        if action.type in SPENDING_ACTIONS:  # a launch after the budget is spent, as for a cron job's
            n = len(self.events)
            self.launch(keys, t, "action", what, approved=approved)
            reasons.extend(("budget", why) for _, _, _, why in self.events[n:])
        return tuple(why for _, why in reasons)

    # -- figures ---------------------------------------------------------------------------------
    def by_kind(self) -> dict[str, int]:
        return dict(Counter(kind for _, kind, _, _ in self.events))
