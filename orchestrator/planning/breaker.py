"""Circuit breaker over automatic actions (pure Python; state is a plain dict).

After ``threshold`` failed *automatic* actions on one subject (``asset:<key>`` or
``connector:<id>``) within ``window``, the breaker opens for that subject: the gate stops acting
on it automatically (everything touching it is recorded only), the connector is paused where the
policy allows it, and its owners are told. It stays open until a person resets it, until the subject
succeeds again whoever ran it (``close_recovered``, each decision cycle: the cause has gone), or,
when ``cooldown`` is set, until the cooldown has passed. ``to_dict``/``from_dict`` round-trip the
state, so the same breaker lives in the project store and in the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

UTC = timezone.utc


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Trip:
    subject: str
    failures: int
    opened_at: datetime
    reason: str


class CircuitBreaker:
    def __init__(self, threshold: int = 3, window: timedelta = timedelta(hours=6),
                 cooldown: timedelta | None = None):
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.threshold = threshold
        self.window = window
        self.cooldown = cooldown
        self._failures: dict[str, list[datetime]] = {}
        self._open: dict[str, dict] = {}  # subject -> {"opened_at", "reason"}

    # -- events ---------------------------------------------------------------------------------
    def record(self, subject: str, success: bool, at: datetime, *, automatic: bool = True) -> Trip | None:
        """Record the outcome of an action on ``subject``; returns a ``Trip`` when it opens now."""
        at = _aware(at)
        if not automatic:
            return None
        if success:
            self._failures.pop(subject, None)
            return None
        recent = [t for t in self._failures.get(subject, []) if at - t <= self.window]
        recent.append(at)
        self._failures[subject] = recent
        if len(recent) >= self.threshold and subject not in self._open:
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
        return True

    def open_subjects(self, at: datetime | None = None) -> list[str]:
        return [s for s in list(self._open) if self.is_open(s, at)]

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
            "open": {s: {"opened_at": v["opened_at"].isoformat(), "reason": v["reason"]}
                     for s, v in self._open.items()},
        }

    @classmethod
    def from_dict(cls, data: dict | None, **defaults) -> CircuitBreaker:
        data = data or {}
        cd = data.get("cooldown_s", None)
        br = cls(
            threshold=int(data.get("threshold", defaults.get("threshold", 3))),
            window=timedelta(seconds=float(data.get("window_s", defaults.get("window", timedelta(hours=6)).total_seconds()))),
            cooldown=timedelta(seconds=float(cd)) if cd else defaults.get("cooldown"),
        )
        br._failures = {s: [datetime.fromisoformat(t) for t in ts] for s, ts in (data.get("failures") or {}).items()}
        br._open = {s: {"opened_at": datetime.fromisoformat(v["opened_at"]), "reason": v["reason"]}
                    for s, v in (data.get("open") or {}).items()}
        return br
