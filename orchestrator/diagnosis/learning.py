"""The learning loop over a simulated month: recurring failures, people confirming resolutions,
the failure memory remembering them, and the gate letting the next occurrence resolve itself.

``simulate_learning(days=30, seed=0)`` runs real parts of the project end to end:

* every failure is diagnosed by :func:`orchestrator.diagnosis.diagnose` with a real
  :class:`~orchestrator.diagnosis.memory.FailureMemory` (a SQLite store of its own);
* the proposal is the memory's best resolution for the diagnosed class, else the planner's
  prescription for the class (a backed-off ``retry`` of a transient class, ``resync_table`` of
  schema drift), else none (a person is needed);
* whether it runs by itself is decided by the gate's own rules: its confidence is
  :func:`orchestrator.planning.gate.memory_confidence` (diagnosis confidence x similarity to
  confirmed cases x how often the resolution worked), it must reach the gate's ``min_confidence``,
  the action type must be low risk (``ActionType.base_risk`` < ``GateConfig.low_risk``), never
  ``never_automatic``, and listed in the policy's ``auto_approve``; an LLM-only diagnosis
  (``basis == "llm"``) never acts alone;
* otherwise a person handles it: approves the proposal when it is the right fix
  (``learn_from_approval(..., approved=True, actor=...)``), or rejects it and applies the right one
  (``record_resolution(..., worked=True, actor=...)``). Both become labelled memory cases with
  who confirmed them; an automatic action that worked is recorded too, one that did not is
  recorded as failed (it teaches nothing about the class).

The world is a set of failure kinds taken from real messages (``KINDS``: the text of public
failure messages with their variable parts — tables, ids, numbers — drawn per occurrence), each
with its true class and the action that actually fixes it (``None``: only a person can, e.g.
re-authenticating). An automatic action that is not the true fix counts as **unsafe**, unless it is harmless for
that kind (a retry of a failure a retry cannot clear just fails again and goes to a person). Reported per week: the share of *recurring* failures (every occurrence
of a kind that occurs more than once in the run, its first occurrence included, as the project
simulator counts a fault with ``count > 1``) that were resolved automatically, and the first
and last 7 days.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from orchestrator.core.records import Action, DiagnosedFailure, FailureRecord
from orchestrator.core.vocab import NOT_RETRYABLE, ActionType
from orchestrator.planning.gate import GateConfig, memory_confidence


@dataclass(frozen=True)
class Kind:
    name: str
    template: str  # str.format fields: {table} {n} {id} {col}
    system: str
    category: str  # the true class
    fix: str | None  # the action type that fixes it; None = only a person can
    rate: float  # expected occurrences per day
    source: str = ""  # where the wording comes from
    start: int = 0  # first day it can occur (new connectors and failure modes arrive during the month)
    harmless: tuple[str, ...] = ("retry",)  # wrong but harmless automatic actions (a retry just fails again)


# Wordings copied from public failure messages (tests/data/failure_messages.jsonl and the corpus);
# only the variable parts are templated.
KINDS: tuple[Kind, ...] = (
    Kind("bq_table_rate", "Exceeded rate limits: too many table update operations for this table. "
         "Table: {table}", "bigquery", "rate_limit", "retry", 1.0, "fm-001"),
    Kind("pg_too_many_clients", "(psycopg2.OperationalError) FATAL: sorry, too many clients already "
         "(job {id})", "postgres", "destination_capacity", "retry", 0.7, "fm-047"),
    Kind("airbyte_heartbeat", "Sync failure with message='activity Heartbeat timeout', "
         "timeoutType=TIMEOUT_TYPE_HEARTBEAT (attempt {n})", "airbyte", "source_unavailable", "retry", 0.8,
         "fm-015"),
    Kind("bq_schema_changed", "Provided Schema does not match Table proj:{table}. Field {col} has changed "
         "type from INTEGER to STRING", "bigquery", "schema_drift", "resync_table", 0.5, "fm-043"),
    Kind("sf_monitor_quota", "Warehouse 'COMPUTE_WH' cannot be resumed because resource monitor "
         "'CREDITLIMIT_{n}' has exceeded its quota.", "snowflake", "destination_capacity", "defer", 0.8,
         "fm-006"),
    Kind("airbyte_worker_exit", "io.airbyte.workers.WorkerException: Source process exit with code 1. This "
         "warning is normal if the job was cancelled. (job {n})", "airbyte", "source_unavailable", "retry",
         0.8, "fm-024"),
    Kind("salesforce_daily_limit", "Error #0: REQUEST_LIMIT_EXCEEDED When: While creating a promise to call "
         "\"private_query\" ({id})", "salesforce", "rate_limit", "defer", 0.7, "fm-040", start=3),
    Kind("airbyte_no_records", "Airbyte detected that the Source didn't send any records in the last "
         "{n} hour 31 minutes 7 seconds, exceeding the configured 3 hour timeout.", "airbyte",
         "source_unavailable", "retry", 0.6, "fm-016", start=12),
    Kind("fivetran_paused", "Connector {table} sync skipped: the connector is currently paused",
         "fivetran", "config_error", "resume_connector", 0.6, "Fivetran setup/sync state", start=18),
    Kind("sf_token_expired", "ProgrammingError: 390114 (08001): Authentication token has expired. "
         "The user must authenticate again. (session {id})", "snowflake", "auth_expired", None, 0.08, "fm-008"),
    Kind("sf_not_authorized", "Database Error in model {table} 002043 (02000): SQL compilation error: "
         "Object does not exist, or operation cannot be performed.", "snowflake", "permission_denied", None,
         0.08, "fm-014"),
    Kind("dbt_unique_test", "Failure in test unique_{table}_id (models/schema.yml) Got {n} results, "
         "configured to fail if != 0", "dbt", "data_quality", None, 0.08, "fm-017"),
)

# what the policy pre-authorises (auto_approve) for the simulated connectors and assets
AUTO_APPROVE = frozenset({"retry", "resync_table", "defer", "resume_connector", "materialize"})
PEOPLE = ("alice@example.com", "bob@example.com")


@dataclass
class Outcome:
    day: int
    kind: str
    recurring: bool
    category: str
    proposed: str | None
    automatic: bool
    worked: bool  # resolved by the automatic action
    unsafe: bool
    confidence: float
    confirmed_by: str | None = None


@dataclass
class LearningRun:
    days: int
    outcomes: list[Outcome] = field(default_factory=list)

    def _recurring(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.recurring]

    def weekly(self) -> list[dict[str, Any]]:
        """Per week (7-day blocks counted back from the last day, so the last week is complete;
        a shorter block opens the run when ``days`` is not a multiple of 7): recurring failures,
        how many were resolved automatically, the share, unsafe actions."""
        bounds, end = [], self.days
        while end > 0:
            bounds.append((max(0, end - 7), end))
            end -= 7
        out = []
        for n, (lo, hi) in enumerate(reversed(bounds), 1):
            rec = [o for o in self._recurring() if lo <= o.day < hi]
            auto = sum(o.worked for o in rec)
            out.append({"week": n, "days": (lo + 1, hi), "recurring": len(rec), "auto_resolved": auto,
                        "share": auto / len(rec) if rec else None,
                        "unsafe": sum(o.unsafe for o in self.outcomes if lo <= o.day < hi)})
        return out

    def first_last(self) -> tuple[float | None, float | None]:
        """Recurring auto-resolved share of the first 7 days and of the last 7 days."""
        def share(lo: int, hi: int) -> float | None:
            rec = [o for o in self._recurring() if lo <= o.day < hi]
            return sum(o.worked for o in rec) / len(rec) if rec else None
        return share(0, 7), share(self.days - 7, self.days)

    @property
    def unsafe(self) -> int:
        return sum(o.unsafe for o in self.outcomes)

    @property
    def recurring_auto_resolved_share(self) -> float:
        rec = self._recurring()
        return sum(o.worked for o in rec) / len(rec) if rec else 1.0

    def format(self) -> str:
        lines = [f"learning loop, {self.days} simulated days: {len(self.outcomes)} failures, "
                 f"{sum(o.recurring for o in self.outcomes)} recurring"]
        for w in self.weekly():
            share = "  -  " if w["share"] is None else f"{w['share']:.0%}"
            lines.append(f"  days {w['days'][0]:2d}-{w['days'][1]:2d}: recurring {w['recurring']:3d}, auto-resolved "
                         f"{w['auto_resolved']:3d} ({share}), unsafe {w['unsafe']}")
        first, last = self.first_last()
        if first is not None and last is not None:
            lines.append(f"  first 7 days {first:.0%} -> last 7 days {last:.0%} (target: rises, ends >= 80%)")
        lines.append(f"  overall recurring auto-resolved {self.recurring_auto_resolved_share:.0%}, "
                     f"unsafe actions {self.unsafe}")
        return "\n".join(lines)


def _prescription(category: str, transient: bool) -> str | None:
    if category == "schema_drift":
        return ActionType.resync_table.value
    if transient and category not in NOT_RETRYABLE and category != "unknown":
        return ActionType.retry.value
    return None


def may_execute(action_type: str, confidence: float, basis: str, cfg: GateConfig | None = None) -> bool:
    """The gate's conditions for running without a person, for one failure-driven action."""
    cfg = cfg or GateConfig()
    t = ActionType.parse(action_type)
    if t is None:  # a fix only a person can apply ("manual": re-authenticate, grant, repair data)
        return False
    return (basis != "llm" and not t.never_automatic and t.base_risk < cfg.low_risk
            and action_type in AUTO_APPROVE and confidence >= cfg.min_confidence)


def simulate_learning(days: int = 30, seed: int = 0, *, kinds: tuple[Kind, ...] = KINDS,
                      store_url: str | None = None, scale: float = 1.0) -> LearningRun:
    """Run the loop for ``days`` simulated days (see the module docstring). ``scale`` multiplies
    every kind's daily rate. Deterministic for a seed."""
    from orchestrator.diagnosis import diagnose
    from orchestrator.diagnosis.memory import FailureMemory
    from orchestrator.store import open_store

    rng = random.Random(seed)
    run = LearningRun(days)
    with tempfile.TemporaryDirectory() as tmp:
        url = store_url or f"sqlite:///{Path(tmp) / 'learning.db'}"
        memory = FailureMemory(open_store(url, cached=False), embeddings=False)
        seen: dict[str, int] = {}
        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
        for day in range(days):
            todays = []
            for k in kinds:
                if day < k.start:
                    continue
                lam = k.rate * scale
                n = int(lam) + (rng.random() < lam - int(lam))
                todays.extend([k] * n)
            rng.shuffle(todays)
            for i, k in enumerate(todays):
                msg = k.template.format(table=rng.choice(["orders", "customers", "events", "payments", "sessions"]),
                                        n=rng.randint(2, 900), id=f"{rng.getrandbits(40):x}",
                                        col=rng.choice(["amount", "user_id", "created", "status"]))
                seen[k.name] = seen.get(k.name, 0) + 1
                d = diagnose(msg, k.system, memory)
                memory.observe(msg, d.category, confidence=d.confidence, system=k.system)
                proposal, conf, basis = None, 0.0, d.basis
                known = memory.resolution_for(msg) if d.category != "unknown" else None
                if known is not None and known[1] == d.category:
                    proposal = known[0]  # the fix that worked for this signature
                elif d.category != "unknown":
                    proposal = _prescription(d.category, d.transient)
                if proposal is not None and ActionType.parse(proposal) is not None:
                    fail = FailureRecord(f"f-{day}-{i}", t0 + timedelta(days=day), msg, k.system)
                    df = DiagnosedFailure(fail, d.category, d.transient, d.confidence, tuple(d.evidence))
                    conf, _ = memory_confidence(Action(f"a-{day}-{i}", proposal, "failure"), [df], memory)
                automatic = proposal is not None and may_execute(proposal, conf, basis)
                person = None
                worked = unsafe = False
                if automatic:
                    worked = proposal == k.fix
                    unsafe = not worked and proposal not in k.harmless
                    memory.record_resolution(msg, d.category, proposal, worked, system=k.system, actor="agent")
                if not worked:  # a person takes it (or takes over after an automatic attempt failed)
                    person = PEOPLE[(day + i) % len(PEOPLE)]
                    fix = k.fix or "manual"
                    if not automatic and proposal is not None and proposal == k.fix and d.category == k.category:
                        memory.learn_from_approval(msg, k.category, proposal, approved=True, system=k.system,
                                                   actor=person)
                    elif not automatic and proposal is not None:
                        memory.learn_from_approval(msg, d.category, proposal, approved=False,
                                                   system=k.system, actor=person)
                    # the approved or applied fix ran and worked: a labelled case, confirmed by `person`
                    memory.record_resolution(msg, k.category, fix, True, system=k.system, actor=person)
                run.outcomes.append(Outcome(day, k.name, False, d.category, proposal, automatic,
                                            automatic and worked, unsafe, round(conf, 3), person))
        memory.store.engine.dispose()
    for o in run.outcomes:  # a recurring failure: one of a kind that occurred more than once
        o.recurring = seen[o.kind] > 1
    return run


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(simulate_learning(args.days, args.seed).format())


if __name__ == "__main__":
    main()


__all__ = ["KINDS", "Kind", "LearningRun", "Outcome", "may_execute", "simulate_learning"]
