"""What the decision core already did, so that incidents close and nothing is asked twice.

An :class:`ActionLedger` holds the actions of earlier cycles with their status (``pending``,
``approved``, ``executing``, ``succeeded``, ``failed``, ``declined``, ``expired``,
``record_only``, ``rejected``) and whether a person approved them. ``decide`` reads it:

* **never twice while open**: an action is dropped when an open (pending / approved / executing)
  action of the same type and cause already covers its subjects;
* **not again once done**: an action is dropped when one of the same type, subjects, cause and
  cycle (the deadline cycle, the failure) already ran and succeeded;
* **not again once declined**: ... or when a person declined one of the same type, subjects,
  cause and cycle (``LedgerIndex.declined_before``: the same failure's remedy is asked once);
* **repairs close incidents**: a failure that needs a person (credentials, grants, setup) counts
  as repaired once a person approved an action about it on that subject and it succeeded (the
  approver fixed the cause; the simulator models exactly that), or a manual repair was recorded
  (:meth:`ActionLedger.record_repair`). The planner then proposes ``resume_connector`` (when the
  connector is paused) and a retry, instead of asking for the pause again. A repair recorded for
  any other class (an applied schema patch fixes ``schema_drift`` on the models it broke) lets the
  held subject be retried at once, however many attempts failed before it.

The project store (``orchestrator.proposals``) and the simulator's ``sla`` adapter fill it the
same way. Pure Python, no Dagster imports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from orchestrator.core.records import Action
from orchestrator.core.vocab import ActionType, FailureClass

OPEN = frozenset({"pending", "approved", "executing"})
# a repair of whatever made the subject fail (a schema patch applied: the broken models failed with
# binder, conversion or contract errors, diagnosed as drift, data quality or code errors)
ANY_CLASS = "*"
DONE_OK = "succeeded"
DECLINED = "declined"


def action_subjects(action: Action) -> frozenset[str]:
    out = {f"asset:{k}" for k in action.asset_keys}
    if action.connector:
        out.add(f"connector:{action.connector}")
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    action: Action
    status: str
    at: datetime  # last status change
    by_person: bool = False  # approved by a person (not by policy)

    @property
    def subjects(self) -> frozenset[str]:
        return action_subjects(self.action)


class LedgerIndex:
    """A read-only index of a ledger as it is now, for screening many actions at once:
    ``open_duplicate`` and ``done_before`` answer what :class:`ActionLedger`'s methods of the same
    names answer (the same entry), by looking up (type, cause[, cycle], one subject) instead of
    scanning every entry per action. Build it after the ledger's last change (``ledger.index()``)."""

    def __init__(self, ledger: ActionLedger):
        self.entries = ledger.entries
        self._pos: dict[str, int] = {}
        # (type, cause, subject) -> [(position, entry, subjects)] of open entries, in ledger order
        self._open: dict[tuple, list[tuple[int, LedgerEntry, frozenset[str]]]] = {}
        # (type, cause, cycle, subject | None) -> the same, for succeeded entries
        self._done: dict[tuple, list[tuple[int, LedgerEntry, frozenset[str]]]] = {}
        # ... and for entries a person declined (or never answered)
        self._declined: dict[tuple, list[tuple[int, LedgerEntry, frozenset[str]]]] = {}
        for pos, (aid, e) in enumerate(ledger.entries.items()):
            self._pos[aid] = pos
            subs = e.subjects
            if e.status in OPEN:
                for s in subs:
                    self._open.setdefault((e.action.type, e.action.cause, s), []).append((pos, e, subs))
            elif e.status in (DONE_OK, DECLINED):
                into = self._done if e.status == DONE_OK else self._declined
                head = (e.action.type, e.action.cause, e.action.cycle)
                into.setdefault((*head, None), []).append((pos, e, subs))
                for s in subs:
                    into.setdefault((*head, s), []).append((pos, e, subs))

    def open_duplicate(self, action: Action) -> LedgerEntry | None:
        subs = action_subjects(action)
        best: tuple[int, LedgerEntry] | None = None
        same = self.entries.get(action.action_id)
        if same is not None and same.status in OPEN:
            best = (self._pos[action.action_id], same)
        if subs:
            for pos, e, e_subs in self._open.get((action.type, action.cause, next(iter(subs))), ()):
                if best is not None and pos > best[0]:
                    break
                if subs <= e_subs:
                    best = (pos, e)
                    break
        return best[1] if best is not None else None

    def done_before(self, action: Action) -> LedgerEntry | None:
        return self._same_cycle(action, DONE_OK, self._done)

    def declined_before(self, action: Action) -> LedgerEntry | None:
        """A person declined this action, or one of the same type, subjects, cause and cycle (the
        same failure, the same deadline cycle): not a question to ask them again."""
        return self._same_cycle(action, DECLINED, self._declined)

    def _same_cycle(self, action: Action, status: str, by_cycle: dict) -> LedgerEntry | None:
        e = self.entries.get(action.action_id)
        if e is not None and e.status == status:
            return e
        if action.cycle is None:
            return None
        subs = action_subjects(action)
        pick = next(iter(subs)) if subs else None
        for _, e, e_subs in by_cycle.get((action.type, action.cause, action.cycle, pick), ()):
            if subs <= e_subs:
                return e
        return None


@dataclass
class ActionLedger:
    entries: dict[str, LedgerEntry] = field(default_factory=dict)  # action id -> entry
    # subject -> (failure class, when) of repairs a person reported outside any action
    repairs: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[LedgerEntry]) -> ActionLedger:
        return cls({e.action.action_id: e for e in entries})

    # -- writing ---------------------------------------------------------------------------------
    def record(self, action: Action, status: str, at: datetime, *, by_person: bool | None = None) -> None:
        old = self.entries.get(action.action_id)
        person = by_person if by_person is not None else (old.by_person if old else False)
        self.entries[action.action_id] = LedgerEntry(action, status, at, person)

    def update(self, action_id: str, status: str, at: datetime, *, by_person: bool | None = None) -> None:
        old = self.entries.get(action_id)
        if old is not None:
            self.entries[action_id] = replace(old, status=status, at=at,
                                              by_person=old.by_person if by_person is None else by_person)

    def record_repair(self, subject: str, category: str, at: datetime) -> None:
        """A person reports having fixed ``category`` on ``subject`` (e.g. re-authenticated);
        :data:`ANY_CLASS`: whatever made it fail (e.g. the schema change a patch fixed)."""
        self.repairs[subject] = (category, at)

    # -- reading ---------------------------------------------------------------------------------
    def index(self) -> LedgerIndex:
        """A lookup index of the ledger as it is now (for screening a whole plan)."""
        return LedgerIndex(self)

    def status(self, action_id: str) -> str | None:
        e = self.entries.get(action_id)
        return e.status if e else None

    def open_duplicate(self, action: Action) -> LedgerEntry | None:
        """An open action of the same type and cause covering this one's subjects."""
        subs = action_subjects(action)
        for e in self.entries.values():
            if e.status not in OPEN:
                continue
            if e.action.action_id == action.action_id:
                return e
            if e.action.type != action.type:
                continue
            if e.action.cause != action.cause:
                continue
            if subs and subs <= e.subjects:
                return e
        return None

    def done_before(self, action: Action) -> LedgerEntry | None:
        """The same action (or one of the same type, subjects, cause and cycle) ran and succeeded."""
        e = self.entries.get(action.action_id)
        if e is not None and e.status == DONE_OK:
            return e
        if action.cycle is None:
            return None
        subs = action_subjects(action)
        for e in self.entries.values():
            if (e.status == DONE_OK and e.action.type == action.type and e.action.cause == action.cause
                    and e.action.cycle == action.cycle and subs <= e.subjects):
                return e
        return None

    def repaired_since(self, subject: str, category: str, since: datetime) -> datetime | None:
        """When a person repaired ``category`` on ``subject`` after ``since`` (None: not repaired)."""
        best: datetime | None = None
        rep = self.repairs.get(subject)
        if rep is not None and rep[0] in (category, ANY_CLASS) and rep[1] >= since:
            best = rep[1]
        for e in self.entries.values():
            if not e.by_person or e.status != DONE_OK or e.at < since or subject not in e.subjects:
                continue
            if e.action.cause in (category, None) and FailureClass.parse(category).needs_person:
                if best is None or e.at > best:
                    best = e.at
        return best

    def repair_approval(self, subject: str, category: str, since: datetime) -> str | None:
        """Who authorised closing the incident ``category`` on ``subject`` (failed at ``since``):
        the id of the latest action about it a person approved and that succeeded after ``since``
        (approving an incident's request covers closing it once repaired), or ``manual:<subject>``
        for a repair a person reported (:meth:`record_repair`); None when nobody did."""
        if not FailureClass.parse(category).needs_person:
            return None
        best: LedgerEntry | None = None
        for e in self.entries.values():
            if (e.by_person and e.status == DONE_OK and e.at >= since and subject in e.subjects
                    and e.action.cause in (category, None) and (best is None or e.at > best.at)):
                best = e
        if best is not None:
            return best.action.action_id
        rep = self.repairs.get(subject)
        if rep is not None and rep[0] == category and rep[1] >= since:
            return f"manual:{subject}"
        return None

    def paused(self, connector: str) -> bool:
        """The last pause/resume of ``connector`` that succeeded was a pause."""
        return self.standing_pause(connector) is not None

    def standing_pause(self, connector: str) -> LedgerEntry | None:
        """The pause of ``connector`` still in force: the entry of its last pause/resume that
        succeeded, when that was a pause; None when it was a resume or nothing of ours paused it."""
        last: LedgerEntry | None = None
        for e in self.entries.values():
            t = ActionType.parse(e.action.type)
            if e.status != DONE_OK or e.action.connector != connector or t not in (
                    ActionType.pause_connector, ActionType.resume_connector):
                continue
            if last is None or e.at >= last.at:
                last = e
        return last if last is not None and ActionType.parse(last.action.type) is ActionType.pause_connector else None

    def paused_connectors(self) -> set[str]:
        """Every connector ``paused`` is true for, in one pass over the ledger (not one per connector)."""
        last: dict[str, tuple[datetime, bool]] = {}
        for e in self.entries.values():
            conn = e.action.connector
            if not conn or e.status != DONE_OK:
                continue
            t = ActionType.parse(e.action.type)
            if t not in (ActionType.pause_connector, ActionType.resume_connector):
                continue
            prev = last.get(conn)
            if prev is None or e.at >= prev[0]:
                last[conn] = (e.at, t is ActionType.pause_connector)
        return {c for c, (_, paused) in last.items() if paused}


@dataclass(frozen=True, slots=True)
class IncidentView:
    """What the planner needs from the ledger and the snapshot about incidents."""

    paused: frozenset[str] = frozenset()  # connectors paused now
    # subject -> (failure class, repaired at) for failures that need a person and were repaired
    repaired: Mapping[str, datetime] = field(default_factory=dict)
    ledger: ActionLedger | None = None
    standing: object = None  # orchestrator.core.standing.StandingCover: approved routine scopes

    def repaired_at(self, subject: str, category: str, since: datetime) -> datetime | None:
        if self.ledger is None:
            return None
        return self.ledger.repaired_since(subject, category, since)

    def reported_repair(self, subject: str, category: str, since: datetime) -> datetime | None:
        """When a repair of ``category`` on ``subject`` was reported after ``since`` outside any
        action (:meth:`ActionLedger.record_repair`: an applied schema patch, a reload), whatever
        the class; None when none was."""
        if self.ledger is None:
            return None
        rep = self.ledger.repairs.get(subject)
        return rep[1] if rep is not None and rep[0] in (category, ANY_CLASS) and rep[1] >= since else None
