"""Standing approvals: a person approves a policy's routine deadline refreshes once (no Dagster imports).

A policy that does not pre-authorise ``materialize`` (``rollout: recommend``, or ``auto`` without
``materialize`` in ``auto_approve``) makes every routine refresh of its deadline (the connector
syncs and model builds of its lineage, every cycle) wait for a person, where a team's cron job is a
standing authorisation. The decision core therefore asks **once**, as soon as it sees such a
policy, for a *standing approval* of a precise scope:

* the **policy** (by name) and its **definition** (a digest of the policy as parsed: a changed
  policy file is a new question);
* its **lineage**: the assets it selects and every asset upstream of them (connector tables
  included), frozen in the request;
* **routine freshness work only**: ``materialize`` actions the planner proposes for a deadline
  (``cause == "freshness"``), recurring per cycle; never a remedial action (retry, resync,
  backfill, pause/resume, reschedule), a full resync, a re-prioritisation (a cancel), or anything
  the LLM proposed;
* an **expiry**: :data:`STANDING_TTL` after the approval (then asked again).

Once a person approved it, the gate lets later routine actions of that scope execute with the
standing approval named as their authorisation (``GateDecision.authorised_by`` and the reason).
What the gate holds for other reasons still waits: over budget, a blackout window, a full
resync, an open circuit breaker, a ``shadow`` rollout, assets outside the scope or governed by a
policy without its own standing approval. Rejecting or cancelling it revokes it; it is never
asked again for the same policy definition.

The request is an :class:`~orchestrator.core.records.Action` of type :data:`STANDING` (a proposal
kind, not an :class:`~orchestrator.core.vocab.ActionType`: it never runs). The project store keeps
it as a proposal action (status ``pending`` -> ``standing`` when approved -> ``cancelled`` /
``declined``); the ledger (:class:`~orchestrator.core.incidents.ActionLedger`) carries it back
into the next cycles, in the store and in the simulator alike.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.core.records import Action
from orchestrator.core.vocab import ActionType

STANDING = "standing_approval"  # the proposal kind (Action.type)
ACTIVE = "standing"  # ledger/store status of an approved standing approval
PENDING = "pending"
REVOKED = frozenset({"declined", "cancelled", "rejected", "withdrawn"})
STANDING_TTL = timedelta(days=30)
ROUTINE_TYPES = frozenset({ActionType.materialize})
ROUTINE_CAUSE = "freshness"
CAUSE_PREFIX = "standing:"


def _val(x) -> str:
    return str(getattr(x, "value", x))


def policy_digest(policy) -> str:
    """A digest of the policy as parsed: any change to it asks again."""
    try:
        body = policy.model_dump(mode="json")
    except Exception:  # noqa: BLE001 - not a pydantic model: its repr
        body = repr(policy)
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def needs_standing(policy) -> bool:
    """Routine refreshes of this policy wait for a person (and may: ``shadow`` never acts)."""
    rollout = _val(policy.rollout)
    if rollout == "shadow":
        return False
    if rollout == "recommend":
        return True
    return ActionType.materialize not in set(policy.auto_approve)


def lineage(resolution, graph, policy_name: str) -> frozenset[str]:
    """The assets the policy selects and everything upstream of them: one breadth-first walk of
    the graph's upstream index (no per-asset generator). Kept on the resolution per policy, for
    the same graph and the same governed set (both are built once per code location load and the
    answer depends on nothing else): a planning cycle after the first does not walk again."""
    governed = resolution.governed_by(policy_name)
    memo = getattr(resolution, "__dict__", {}).get("_standing_lineage")
    if memo is not None:
        hit = memo.get(policy_name)
        if hit is not None and hit[0] is governed and hit[1]() is graph:
            return hit[2]
    starts = [k for k in governed if k in graph]
    scope = frozenset(graph.upstream_closure(*starts, include_self=True)) if starts else frozenset()
    try:
        if memo is None:
            memo = resolution.__dict__.setdefault("_standing_lineage", {})
        memo[policy_name] = (governed, weakref.ref(graph), scope, tuple(sorted(scope)))
    except (AttributeError, TypeError):  # no instance dict, or a graph without weak references: not kept
        pass
    return scope


def _sorted(resolution, policy_name: str, scope: frozenset[str]) -> Iterable[str]:
    """``scope`` in order, from the lineage memo when it holds this very scope (a request's keys
    are sorted again, which is linear on sorted input)."""
    hit = getattr(resolution, "__dict__", {}).get("_standing_lineage", {}).get(policy_name)
    return hit[3] if hit is not None and hit[2] is scope else scope


def is_routine(action: Action) -> bool:
    """A deadline refresh: a planner's ``materialize`` for freshness, not a re-prioritisation."""
    return (ActionType.parse(action.type) in ROUTINE_TYPES and action.cause == ROUTINE_CAUSE
            and action.source != "llm" and not action.run_id)


def request(policy, scope: Iterable[str], now: datetime) -> Action:
    """The standing-approval proposal for ``policy`` over ``scope``."""
    keys = tuple(sorted(scope))
    digest = policy_digest(policy)
    conns = f"{len(keys)} asset(s)"
    return Action(
        action_id=f"standing-{policy.name}-{digest[:8]}-{now:%Y%m%d%H%M}",
        type=STANDING, asset_keys=keys, cause=f"{CAUSE_PREFIX}{policy.name}", cycle=digest,
        reason=(f"standing approval for policy {policy.name} (rollout {_val(policy.rollout)}): its routine "
                f"deadline refreshes (connector syncs and model builds of its lineage, {conns}) run without "
                f"asking each cycle, for {STANDING_TTL.days} days or until the policy changes. Remedial "
                f"actions, full resyncs, pauses, work outside these assets, over budget or in a blackout "
                f"window still wait for approval. Reject or cancel to revoke."),
    )


@dataclass(frozen=True)
class Standing:
    action_id: str
    policy: str
    digest: str
    assets: frozenset[str]
    status: str
    at: datetime  # last status change (the approval, for an active one)

    @property
    def expires_at(self) -> datetime:
        return self.at + STANDING_TTL

    def active(self, now: datetime) -> bool:
        return self.status == ACTIVE and now < self.expires_at


class StandingBook:
    """The standing approvals the ledger holds, by policy (the newest entry per policy)."""

    def __init__(self, items: Iterable[Standing] = ()):
        self.by_policy: dict[str, list[Standing]] = {}
        for s in items:
            self.by_policy.setdefault(s.policy, []).append(s)

    @classmethod
    def from_ledger(cls, ledger) -> StandingBook:
        out = []
        for aid, e in (getattr(ledger, "entries", None) or {}).items():
            a = e.action
            if a.type != STANDING or not (a.cause or "").startswith(CAUSE_PREFIX):
                continue
            out.append(Standing(aid, a.cause[len(CAUSE_PREFIX):], a.cycle or "", frozenset(a.asset_keys),
                                e.status, e.at))
        return cls(out)

    def __bool__(self) -> bool:
        return bool(self.by_policy)

    def active(self, policy: str, digest: str | None, now: datetime) -> Standing | None:
        for s in self.by_policy.get(policy, ()):
            if s.active(now) and (digest is None or s.digest == digest):
                return s
        return None

    def settled(self, policy: str, digest: str, now: datetime) -> bool:
        """Nothing to ask: a request for this definition is pending, active, or was refused."""
        for s in self.by_policy.get(policy, ()):
            if s.digest != digest:
                continue
            if s.status == PENDING or s.status in REVOKED or s.active(now):
                return True
        return False


def requests(resolution, graph, book: StandingBook, now: datetime) -> list[Action]:
    """Standing approvals to ask now: one per policy whose routine refreshes wait for a person
    and that has none pending, active or refused for its current definition."""
    if resolution is None or not getattr(resolution, "ok", False) or getattr(resolution, "policy_set", None) is None:
        return []
    out = []
    for p in resolution.policy_set.policies:
        if not needs_standing(p) or book.settled(p.name, policy_digest(p), now):
            continue
        scope = lineage(resolution, graph, p.name)
        if scope:
            out.append(request(p, _sorted(resolution, p.name, scope), now))
    return out


class StandingCover:
    """What the gate (and the planner) ask: which active standing approval authorises a routine
    action on these assets. Every policy governing a touched asset that does not pre-authorise
    the work itself must have an active standing approval (for its current definition) whose
    scope holds that asset."""

    def __init__(self, book: StandingBook, resolution, now: datetime):
        self.book, self.resolution, self.now = book, resolution, now
        self._digest: dict[str, str | None] = {}

    def _active(self, name: str) -> Standing | None:
        if name not in self._digest:
            try:
                self._digest[name] = policy_digest(self.resolution.policy(name))
            except Exception:  # noqa: BLE001 - an unknown policy is never covered
                self._digest[name] = None
        d = self._digest[name]
        return None if d is None else self.book.active(name, d, self.now)

    def covers_keys(self, keys: Iterable[str], types: Iterable[ActionType] = (ActionType.materialize,)) -> list[Standing] | None:
        """The standing approvals that together authorise ``types`` on ``keys``; None when any
        key is not covered (ungoverned, shadow, or a blocking policy without one)."""
        if not self.book or self.resolution is None:
            return None
        types = list(types)
        if any(t not in ROUTINE_TYPES for t in types):
            return None
        used: dict[str, Standing] = {}
        for k in keys:
            sla = self.resolution.sla(k)
            if sla is None:
                return None
            names = list(sla.policies) or list(sla.propagated_from)
            if not names:
                return None
            for name in names:
                try:
                    p = self.resolution.policy(name)
                except Exception:  # noqa: BLE001
                    return None
                rollout = _val(p.rollout)
                if rollout == "shadow":
                    return None
                if rollout == "auto" and all(t in p.auto_approve for t in types):
                    continue
                s = self._active(name)
                if s is None or k not in s.assets:
                    return None
                used[s.action_id] = s
        return list(used.values()) or None

    def covers(self, action: Action) -> list[Standing] | None:
        if not is_routine(action) or not action.asset_keys:
            return None
        return self.covers_keys(action.asset_keys)
