"""Circuit breaker over automatic actions (pure Python; state is a plain dict).

After ``threshold`` failed *automatic* actions on one subject (``asset:<key>`` or
``connector:<id>``) within ``window``, the breaker opens for that subject: the gate stops acting
on it automatically (everything touching it is recorded only), the connector is paused where the
policy allows it, and its owners are told. It stays open until a person resets it, until the subject
succeeds again whoever ran it (``close_recovered``, each decision cycle: the cause has gone), or,
when ``cooldown`` is set, until the cooldown has passed. Half-open: every ``trial_after`` (one hour)
one automatic attempt may run again (``trial_due``); its failure keeps it open for another hour.
``to_dict``/``from_dict`` round-trip the state, so the same breaker lives in the project store and
in the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.planning.common import aware as _aware

# an open breaker lets one automatic attempt through this long after it opened or after its last
# failed trial (half-open); None: it stays open until a success or a person's reset
TRIAL_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Trip:
    subject: str
    failures: int
    opened_at: datetime
    reason: str


def schedule_allowance(action_type: str, categories) -> int:
    """The failed attempts the backoff schedule of the failures an automatic re-run answers
    allows (the first attempt and each of the class's ``max_attempts`` retries; 0: none): a
    ``retry`` or ``materialize`` of a failure whose prescribed response is a plain re-run (rate
    limit, outage, destination capacity, memory). Without it a threshold of 3 opened the breaker
    on the third failure of a destination-capacity fault, one retry before the schedule's last,
    and every later attempt was only recorded while the fault had cleared (generated world
    14005: the 17:30 deadline lost on three days, a cron job retrying 3 x 30 min met it)."""
    from orchestrator.core.vocab import NOT_RETRYABLE, ActionType, FailureClass

    if ActionType.parse(action_type) not in (ActionType.retry, ActionType.materialize):
        return 0
    out = 0
    for cat in categories:
        fc = FailureClass.parse(cat)
        if fc.rerun_resolves and fc.value not in NOT_RETRYABLE and fc.backoff is not None:
            out = max(out, fc.backoff.max_attempts + 1)
    return out


class CircuitBreaker:
    def __init__(self, threshold: int = 3, window: timedelta = timedelta(hours=6),
                 cooldown: timedelta | None = None, trial_after: timedelta | None = TRIAL_AFTER):
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.threshold = threshold
        self.window = window
        self.cooldown = cooldown
        self.trial_after = trial_after
        self._failures: dict[str, list[datetime]] = {}
        self._open: dict[str, dict] = {}  # subject -> {"opened_at", "reason"}

    # -- events ---------------------------------------------------------------------------------
    def record(self, subject: str, success: bool, at: datetime, *, automatic: bool = True,
               allowance: int = 0) -> Trip | None:
        """Record the outcome of an action on ``subject``; returns a ``Trip`` when it opens now.
        ``allowance``: the failed attempts a prescribed retry schedule may make on the subject
        (:func:`schedule_allowance`); it opens at ``max(threshold, allowance)`` failures then, so
        the breaker does not cut the schedule short: the planner escalates once it is spent."""
        at = _aware(at)
        if not automatic:
            return None
        if success:
            self._failures.pop(subject, None)
            return None
        if subject in self._open:  # a failed trial (half-open): open again from now
            self._open[subject]["last_attempt"] = at
        recent = [t for t in self._failures.get(subject, []) if at - t <= self.window]
        recent.append(at)
        self._failures[subject] = recent
        if len(recent) >= max(self.threshold, allowance) and subject not in self._open:
            reason = (f"{len(recent)} failed automatic actions on {subject} within "
                      f"{int(self.window.total_seconds() // 60)} min")
            self._open[subject] = {"opened_at": at, "reason": reason}
            return Trip(subject, len(recent), at, reason)
        return None

    def reset(self, subject: str) -> None:
        self._open.pop(subject, None)
        self._failures.pop(subject, None)

    def close_recovered(self, last_success, tables_of=None) -> list[str]:
        """Close the open subjects that have succeeded since they opened, whoever ran them (the
        connector's own schedule, a person, a cron): the cause has gone, so the gate may act on
        them again (a half-open breaker closing on a success). ``last_success``: asset key ->
        its latest success; ``tables_of(connector)``: the connector's tables (all must have
        landed). A paused connector does not sync on its own and stays open until a person
        resets it. Returns the subjects closed."""
        closed = []
        for subject, st in list(self._open.items()):
            kind, _, name = subject.partition(":")
            keys = [name] if kind == "asset" else (list(tables_of(name)) if kind == "connector" and tables_of else [])
            opened = _aware(st["opened_at"])
            if keys and all((ls := last_success.get(k)) is not None and _aware(ls) > opened for k in keys):
                self.reset(subject)
                closed.append(subject)
        return closed

    # -- queries --------------------------------------------------------------------------------
    def is_open(self, subject: str, at: datetime | None = None) -> bool:
        st = self._open.get(subject)
        if st is None:
            return False
        if self.cooldown is not None and at is not None and _aware(at) - st["opened_at"] >= self.cooldown:
            self.reset(subject)
            return False
        return not self.trial_due(subject, at)

    def trial_due(self, subject: str, at: datetime | None) -> bool:
        """Half-open: ``trial_after`` since the breaker opened on ``subject`` or since its last
        failed trial, one automatic attempt may run again (a success closes the breaker through
        ``close_recovered``, a failure opens it for another ``trial_after``). Without it, an open
        breaker on a connector's tables held every deadline's work on them as record-only until
        the connector's own schedule synced again, 12 hours later, long after the capacity fault
        that opened it had cleared (generated world 14005)."""
        st = self._open.get(subject)
        if st is None or self.trial_after is None or at is None:
            return False
        last = max(_aware(st["opened_at"]), _aware(st.get("last_attempt") or st["opened_at"]))
        return _aware(at) - last >= self.trial_after

    def open_subjects(self, at: datetime | None = None) -> list[str]:
        """Every open subject, half-open ones (a trial due) included: still open until a success."""
        return [s for s in list(self._open) if self.is_open(s, at) or self.trial_due(s, at)]

    def reason(self, subject: str) -> str | None:
        st = self._open.get(subject)
        return st["reason"] if st else None

    # -- state ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "window_s": self.window.total_seconds(),
            "cooldown_s": self.cooldown.total_seconds() if self.cooldown else None,
            "failures": {s: [t.isoformat() for t in ts] for s, ts in self._failures.items()},
            "open": {s: {"opened_at": v["opened_at"].isoformat(), "reason": v["reason"],
                         **({"last_attempt": v["last_attempt"].isoformat()} if v.get("last_attempt") else {})}
                     for s, v in self._open.items()},
            "trial_after_s": self.trial_after.total_seconds() if self.trial_after else None,
        }

    @classmethod
    def from_dict(cls, data: dict | None, **defaults) -> CircuitBreaker:
        data = data or {}
        cd = data.get("cooldown_s", None)
        trial = data.get("trial_after_s", "default")
        br = cls(
            threshold=int(data.get("threshold", defaults.get("threshold", 3))),
            window=timedelta(seconds=float(data.get("window_s", defaults.get("window", timedelta(hours=6)).total_seconds()))),
            cooldown=timedelta(seconds=float(cd)) if cd else defaults.get("cooldown"),
            trial_after=(defaults.get("trial_after", TRIAL_AFTER) if trial == "default"
                         else timedelta(seconds=float(trial)) if trial else None),
        )
        br._failures = {s: [datetime.fromisoformat(t) for t in ts] for s, ts in (data.get("failures") or {}).items()}
        br._open = {s: {"opened_at": datetime.fromisoformat(v["opened_at"]), "reason": v["reason"],
                        "last_attempt": datetime.fromisoformat(v["last_attempt"]) if v.get("last_attempt") else None}
                    for s, v in (data.get("open") or {}).items()}
        return br
