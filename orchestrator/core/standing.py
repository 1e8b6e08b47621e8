"""Standing approvals: a person approves a policy's routine deadline refreshes once (no Dagster imports).

A policy that does not pre-authorise ``materialize`` (``rollout: recommend``, or ``auto`` without
``materialize`` in ``auto_approve``) makes every routine refresh of its deadline (the connector
syncs and model builds of its lineage, every cycle) wait for a person, where a team's cron job is a
standing authorisation. The decision core therefore asks **once**, as soon as it sees such a
policy, for a *standing approval* of a precise scope (every policy needing one in the same cycle
in **one** request, :func:`bundle`: a person answers one question, not one per policy):

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
import math
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple

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
UTC = timezone.utc


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


def _kept(resolution, slot: str, key, inputs: tuple, build):
    """``build()``, kept on the resolution under ``slot``/``key`` while ``inputs`` are the very
    same objects (as :func:`lineage` keeps its walks): what depends only on the resolution (and
    the graph and lineages it was resolved with) is computed once per code location load, not per
    planning cycle."""
    memo = getattr(resolution, "__dict__", {}).get(slot)
    if memo is not None:
        hit = memo.get(key)
        if hit is not None and len(hit[0]) == len(inputs) and all(a is b for a, b in zip(hit[0], inputs)):
            return hit[1]
    out = build()
    try:
        if memo is None:
            memo = resolution.__dict__.setdefault(slot, {})
        memo[key] = (inputs, out)
    except (AttributeError, TypeError):  # no instance dict: not kept
        pass
    return out


def _direct_targets(resolution) -> dict[str, list[str]]:
    """Policy -> the assets it selects directly, in the resolution's order (one pass over every
    SLA: 100,000 at 100,000 assets), kept on the resolution."""

    def build() -> dict[str, list[str]]:
        targets: dict[str, list[str]] = {}
        for k, sla in resolution.slas.items():
            for name in sla.policies:
                targets.setdefault(name, []).append(k)
        return targets

    return _kept(resolution, "_standing_targets", None, (resolution.slas,), build)


def governed_set(resolution, policy_name: str) -> frozenset[str]:
    """The assets ``policy_name`` governs as a plain set (intersections and membership in C), kept
    on the resolution for the same governed set."""
    governed = resolution.governed_by(policy_name)
    return _kept(resolution, "_standing_scope", policy_name, (governed,), lambda: frozenset(governed))


def governed_connectors(resolution, graph, policy_name: str) -> frozenset[str]:
    """The connectors landing a table ``policy_name`` governs, kept on the resolution for the same
    governed set and graph (a budget pays their triggered syncs: ``orchestrator.planning.validate``)."""
    scope = governed_set(resolution, policy_name)
    return _kept(resolution, "_standing_connectors", policy_name, (scope, graph),
                 lambda: frozenset(n.connector for n in graph if n.connector and n.key in scope))


def _lineage_in_scope(resolution, graph, policy_name: str, budget_policy: str) -> frozenset[str]:
    """The lineage of ``policy_name`` (:func:`lineage`) inside the assets ``budget_policy`` governs
    (a plain set: the intersection runs in C), kept on the resolution for the same lineage and
    governed set."""
    lin = lineage(resolution, graph, policy_name)
    scope = governed_set(resolution, budget_policy)
    return _kept(resolution, "_standing_lineage_in_scope", (policy_name, budget_policy), (lin, scope),
                 lambda: lin & scope)


def _refresh_units_in_scope(resolution, graph, policy_name: str, budget_policy: str) -> RefreshUnits:
    """:func:`refresh_units` of :func:`_lineage_in_scope`, kept on the resolution for the same
    scope (a new graph is a new lineage, so a new scope): each cycle's forecast then reads the
    prices of the models alone, not the graph (a policy's lineage is most of the graph)."""
    scope = _lineage_in_scope(resolution, graph, policy_name, budget_policy)
    return _kept(resolution, "_standing_refresh_units", (policy_name, budget_policy), (scope,),
                 lambda: refresh_units(scope, graph))


def _sorted(resolution, policy_name: str, scope: frozenset[str]) -> Iterable[str]:
    """``scope`` in order, from the lineage memo when it holds this very scope (a request's keys
    are sorted again, which is linear on sorted input)."""
    hit = getattr(resolution, "__dict__", {}).get("_standing_lineage", {}).get(policy_name)
    return hit[3] if hit is not None and hit[2] is scope else scope


def is_routine(action: Action) -> bool:
    """A deadline refresh: a planner's ``materialize`` for freshness, not a re-prioritisation."""
    return (ActionType.parse(action.type) in ROUTINE_TYPES and action.cause == ROUTINE_CAUSE
            and action.source != "llm" and not action.run_id)


def policies_of(action: Action) -> list[tuple[str, str]]:
    """[(policy, digest)] a standing-approval request covers: one policy (``standing:<name>``,
    cycle = its digest), or several asked together (``standing:<a>,<b>``, cycle = their digests
    in the same order, comma-separated)."""
    action = joint_part(action, CAUSE_PREFIX)
    if action is None:
        return []
    names = action.cause[len(CAUSE_PREFIX):].split(",")
    digests = (action.cycle or "").split(",")
    if len(digests) != len(names):
        digests = [action.cycle or ""] * len(names) if len(names) == 1 else [""] * len(names)
    return list(zip(names, digests))


def bundle(items: list[tuple[object, Iterable[str]]], now: datetime) -> Action:
    """One standing-approval request for several policies at once ([(policy, scope)]): a person
    answers one question for every policy whose routine refreshes wait, instead of one per policy
    (a world with five such policies asked five times before any incident). Its scope is the
    union of their lineages; approved, each named policy (at its current definition) has a
    standing approval over it. One policy: the same request as :func:`request`."""
    if len(items) == 1:
        return request(items[0][0], items[0][1], now)
    keys: set[str] = set()
    for _, scope in items:
        keys.update(scope)
    names = [p.name for p, _ in items]
    digests = [policy_digest(p) for p, _ in items]
    tag = hashlib.sha256(",".join(f"{n}={d}" for n, d in zip(names, digests)).encode()).hexdigest()[:8]
    listed = ", ".join(f"{p.name} (rollout {_val(p.rollout)})" for p, _ in items)
    return Action(
        action_id=f"standing-{len(names)}policies-{tag}-{now:%Y%m%d%H%M}",
        type=STANDING, asset_keys=tuple(sorted(keys)), cause=CAUSE_PREFIX + ",".join(names), cycle=",".join(digests),
        reason=(f"standing approval for policies {listed}: their routine deadline refreshes (connector syncs "
                f"and model builds of their lineages, {len(keys)} asset(s)) run without asking each cycle, for "
                f"{STANDING_TTL.days} days or until a policy changes. Remedial actions, full resyncs, pauses, "
                f"work outside these assets, over budget or in a blackout window still wait for approval. "
                f"Reject or cancel to revoke."),
    )


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
            covered = policies_of(a)
            if covered:
                keys = frozenset(a.asset_keys)
                out.extend(Standing(aid, name, digest, keys, e.status, e.at) for name, digest in covered)
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
    """Standing approvals to ask now: one request (:func:`bundle`) for every policy whose routine
    refreshes wait for a person and that has none pending, active or refused for its current
    definition."""
    if resolution is None or not getattr(resolution, "ok", False) or getattr(resolution, "policy_set", None) is None:
        return []
    items = []
    for p in resolution.policy_set.policies:
        if not needs_standing(p) or book.settled(p.name, policy_digest(p), now):
            continue
        scope = lineage(resolution, graph, p.name)
        if scope:
            items.append((p, _sorted(resolution, p.name, scope)))
    return [bundle(items, now)] if items else []


def awaited(book: StandingBook, asked: Iterable[Action], now: datetime) -> StandingBook:
    """The standing approvals a person is being asked for -- pending in the ledger, or ``asked``
    this cycle -- as if granted at ``now``. Routine work inside their scope waits for that one
    answer (a request made now is answered no earlier than one already pending) instead of a
    request of its own: one question per policy, not one per refresh. Never an authorisation:
    only the decision core's choice of what to ask uses it (:func:`orchestrator.core.decide.decide`)."""
    out = [replace(s, status=ACTIVE, at=now) for items in book.by_policy.values() for s in items
           if s.status == PENDING]
    for a in asked:
        keys = frozenset(a.asset_keys)
        out.extend(Standing(a.action_id, name, digest, keys, ACTIVE, now) for name, digest in policies_of(a))
    return StandingBook(out)


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


# -- budget extensions ------------------------------------------------------------------------------
#
# A policy's daily budget (``budget.per_day``) caps the spend of the work the orchestrator launches on
# the assets the policy governs (runs, and the syncs it triggers or re-syncs; the connectors' own
# scheduled syncs are the vendor's: no gate can hold them). When the deadlines ahead will need more
# than the budget leaves, holding every refresh for a person one by one (and late, at night) loses
# the deadlines a cron job meets by overspending. The decision core instead asks **once, ahead**: a
# *budget extension*, a standing approval (type :data:`STANDING`, cause ``budget:<policy>``) of a
# precise amount per UTC day over the policy's budget, for the days the forecast needs it (at most
# :data:`EXTENSION_DAYS`), for the current policy definition. Approved, the gate and validation count
# that day's budget as ``per_day + the extension`` and name the extension as the authorisation of
# what passes only thanks to it; past the extension, work waits for a person again. Nothing else rides
# on it (approval rules, blackouts, the breaker stay as they are). Declined, it is not asked again for
# those days; a forecast that outgrows an active extension asks once more, for the larger amount.

BUDGET_PREFIX = "budget:"
EXTENSION_DAYS = 7
EXTENSION_MARGIN = 2.0  # the amount asked: the forecast overshoot x this, rounded up to a dollar (forecasts of
# work with little cost history are rough: one generous ask beats a second one)
NEED_MARGIN = 0.1  # ... and at least the day's forecast need + this share over the budget
FIRST_EXTENSION_SHARE = 1.0  # ... and a policy's first extension at least this share of its daily budget
FALLBACK_USD_PER_HOUR = 2.0  # an asset with no cost history yet (CostRates.dbt_usd_per_hour)


@dataclass(frozen=True)
class Extension:
    action_id: str
    policy: str
    digest: str
    first_day: date
    days: int
    usd_per_day: float
    status: str

    def covers(self, day: date) -> bool:
        return self.first_day <= day < self.first_day + timedelta(days=self.days)


def extension_scope(action: Action) -> tuple[str, str, date, int] | None:
    """(policy, digest, first day, days) of a budget-extension request for one policy, else None
    (a bundled request: :func:`extension_scopes`)."""
    scopes = extension_scopes(action)
    return scopes[0][:4] if len(scopes) == 1 else None


def extension_scopes(action: Action) -> list[tuple[str, str, date, int, float]]:
    """[(policy, digest, first day, days, USD a day)] a budget-extension request asks: one policy
    (cause ``budget:<name>``, cycle ``<digest>|<first>|<days>``, the amount its estimated cost), or
    several in one request (:func:`bundle_extensions`: cause ``budget:<a>,<b>``, cycle one
    ``<digest>|<first>|<days>|<usd>`` per policy, ``;``-separated, in the same order). [] for
    anything else or a malformed request."""
    action = joint_part(action, BUDGET_PREFIX)
    if action is None:
        return []
    names = action.cause[len(BUDGET_PREFIX):].split(",")
    parts = (action.cycle or "").split(";")
    try:
        if len(names) == 1 and len(parts) == 1:
            digest, first, days = parts[0].split("|")
            return [(names[0], digest, date.fromisoformat(first), int(days), float(action.estimated_cost_usd))]
        if len(parts) != len(names):
            return []
        out = []
        for name, part in zip(names, parts):
            digest, first, days, usd = part.split("|")
            out.append((name, digest, date.fromisoformat(first), int(days), float(usd)))
        return out
    except ValueError:
        return []


class BudgetBook:
    """The budget extensions the ledger holds, by policy."""

    def __init__(self, items: Iterable[Extension] = ()):
        self.by_policy: dict[str, list[Extension]] = {}
        for e in items:
            self.by_policy.setdefault(e.policy, []).append(e)

    @classmethod
    def from_ledger(cls, ledger) -> BudgetBook:
        out = []
        for aid, e in (getattr(ledger, "entries", None) or {}).items():
            out.extend(Extension(aid, policy, digest, first, days, usd, e.status)
                       for policy, digest, first, days, usd in extension_scopes(e.action))
        return cls(out)

    def granted(self, policy: str, digest: str | None, day: date) -> Extension | None:
        """The largest active extension of ``policy`` (current definition) covering ``day``."""
        best = None
        for e in self.by_policy.get(policy, ()):
            if e.status == ACTIVE and e.covers(day) and (digest is None or e.digest == digest):
                if best is None or e.usd_per_day > best.usd_per_day:
                    best = e
        return best

    def pending(self, policy: str) -> bool:
        return any(e.status == PENDING for e in self.by_policy.get(policy, ()))

    def refused(self, policy: str, digest: str, day: date) -> bool:
        return any(e.status in REVOKED and e.digest == digest and e.covers(day)
                   for e in self.by_policy.get(policy, ()))


class BudgetCover:
    """What the gate and validation ask: a policy's daily budget today, with the extension a person
    granted for today (USD), and which extension that is."""

    def __init__(self, book: BudgetBook, resolution, now: datetime):
        self.book, self.resolution, self.day = book, resolution, now.astimezone(UTC).date()
        self._memo: dict[str, Extension | None] = {}

    def extension(self, policy: str) -> Extension | None:
        if policy not in self._memo:
            try:
                digest = policy_digest(self.resolution.policy(policy))
            except Exception:  # noqa: BLE001 - an unknown policy has no extension
                digest = None
            self._memo[policy] = None if digest is None else self.book.granted(policy, digest, self.day)
        return self._memo[policy]

    def extra(self, policy: str) -> float:
        e = self.extension(policy)
        return e.usd_per_day if e is not None else 0.0


MIN_PRICE_SAMPLE_S = 60.0  # shorter steps are billed a minimum (Snowflake: 60 s), not by the second


def observed_usd_per_hour(costs) -> float | None:
    """The warehouse price seen so far, USD per busy hour: model runs' spend over their compute
    time, from steps of at least :data:`MIN_PRICE_SAMPLE_S` only. A step that fails after a second
    is billed the warehouse's minimum: its spend per second reads as up to 60x the price (one such
    failure made a $150/day policy forecast $1,496 a day and ask for a budget extension). None
    before any such step."""
    usd = secs = 0.0
    for c in costs:
        if c.asset_key and c.compute_s and c.compute_s >= MIN_PRICE_SAMPLE_S:
            usd, secs = usd + c.amount_usd, secs + c.compute_s
    return usd / secs * 3600.0 if secs > 0 else None


class RefreshUnits(NamedTuple):
    """What a refresh of some assets is made of, read from the graph alone (:func:`refresh_units`)."""

    models: tuple  # (key, node) of each model, in the assets' order
    # the connectors of its connector tables, as a set filled in that order: its iteration order
    # (the order their syncs are summed in) is that of a set filled asset by asset
    connectors: frozenset[str]


def refresh_units(keys: Iterable[str], graph) -> RefreshUnits:
    """Split ``keys`` into what a refresh of them pays for (:class:`RefreshUnits`); unknown assets
    and connector tables without a connector add nothing."""
    models = []
    conns = []
    get = graph.get if hasattr(graph, "get") else None
    for k in keys:
        node = get(k) if get is not None else None
        if node is None:
            continue
        if node.connector or node.role == "connector_table":
            if node.connector:
                conns.append(node.connector)
            continue
        models.append((k, node))
    return RefreshUnits(tuple(models), frozenset(conns))


def refresh_cost(keys: Iterable[str] | RefreshUnits, graph, runs: dict[str, float], syncs: dict[str, float],
                 durations=None, usd_per_hour: float = FALLBACK_USD_PER_HOUR) -> float:
    """What one refresh of ``keys`` costs: each model's mean spend (``runs``; while it has no
    history: its p90 duration at ``usd_per_hour``, the warehouse price seen so far or
    :data:`FALLBACK_USD_PER_HOUR` before any), and the mean triggered sync (``syncs``) of each
    connector the orchestrator has had to sync itself (the others land on their own schedules).
    ``keys`` may be their :func:`refresh_units` already (what depends only on the graph, kept by
    the budget forecast between cycles)."""
    units = keys if isinstance(keys, RefreshUnits) else refresh_units(keys, graph)
    total = 0.0
    missing = runs  # (the map itself: no mean of its own)
    for k, node in units.models:
        u = runs.get(k, missing)
        if u is missing:
            if durations is None:
                continue
            try:
                u = durations.seconds(node) / 3600.0 * usd_per_hour
            except Exception:  # noqa: BLE001 - no estimate: nothing
                continue
        total += u
    return total + sum(syncs.get(c, 0.0) for c in units.connectors)


def budget_forecast(resolution, snapshot, spent_today: dict[str, tuple[float, float]], now: datetime,
                    durations=None, days: int = EXTENSION_DAYS,
                    usd_per_hour: float = FALLBACK_USD_PER_HOUR,
                    costs=None) -> dict[str, list[tuple[date, float, float]]]:
    """Per budgeted policy: [(UTC day, forecast spend, budget)] for ``days`` days from today: today's
    spend so far plus one refresh of every deadline tick still ahead that day (each deadline's
    lineage inside the policy's scope), at the assets' mean cost (the orchestrator's triggered
    syncs only: the connectors' own scheduled syncs do not count against a budget).
    ``spent_today``: policy -> (spent today, daily budget in USD). ``costs``: the cycle's
    :class:`~orchestrator.core.pricing.CostHistory` (built here if not given)."""
    if resolution is None or not getattr(resolution, "ok", False) or getattr(resolution, "policy_set", None) is None:
        return {}
    from orchestrator.core.pricing import CostHistory

    graph = snapshot.graph
    history = CostHistory.of(snapshot, costs)
    runs, syncs = history.run_mean, history.triggered_sync_mean
    # an asset without history of its own: the warehouse price seen so far, if above the fallback
    seen = history.usd_per_hour
    usd_per_hour = max(seen if seen is not None else 0.0, usd_per_hour)
    today = now.astimezone(UTC).date()
    day0 = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    end = day0 + timedelta(days=days)
    ticks: dict[str, list[datetime]] = {}
    data_time = getattr(snapshot, "data_time", None) or {}
    targets = _direct_targets(resolution)
    for p in resolution.policy_set.policies:
        sched = p.schedule()
        if sched is None:
            continue
        window = p.deadline.effective_window(sched)
        mine = targets.get(p.name, [])

        def served(t: datetime) -> bool:  # its window is open and its targets already hold newer data
            opens = t - window
            return opens <= now and bool(mine) and all(
                (dt := data_time.get(k)) is not None and dt >= opens for k in mine)

        ts = [t for t in sched.ticks(now, end) if t > now and not served(t)]
        if ts:
            ticks[p.name] = ts
    out: dict[str, list[tuple[date, float, float]]] = {}
    for name, (spent, per_day) in spent_today.items():
        per_refresh = {q: refresh_cost(_refresh_units_in_scope(resolution, graph, q, name), graph, runs, syncs,
                                       durations, usd_per_hour) for q in ticks}
        need = {today + timedelta(days=i): 0.0 for i in range(days)}
        need[today] = spent
        for q, ts in ticks.items():
            for t in ts:
                d = t.astimezone(UTC).date()
                if d in need:
                    need[d] += per_refresh[q]
        out[name] = [(d, round(v, 4), per_day) for d, v in sorted(need.items())]
    return out


def extension_request(policy, scope: Iterable[str], now: datetime, first: date, days: int, usd_per_day: float,
                      per_day: float, peak: float) -> Action:
    keys = tuple(sorted(scope))
    digest = policy_digest(policy)
    last = first + timedelta(days=days - 1)
    span = f"{first:%Y-%m-%d}" + (f" to {last:%Y-%m-%d}" if days > 1 else "")
    return Action(
        action_id=f"budget-{policy.name}-{digest[:8]}-{first:%Y%m%d}-{int(usd_per_day)}-{now:%Y%m%d%H%M}",
        type=STANDING, asset_keys=keys, cause=f"{BUDGET_PREFIX}{policy.name}",
        cycle=f"{digest}|{first.isoformat()}|{days}", estimated_cost_usd=round(usd_per_day, 2),
        reason=(f"budget extension for policy {policy.name}: its deadlines ahead need up to ${peak:,.2f} a day "
                f"(UTC) against a budget of ${per_day:,.2f}; approve ${usd_per_day:,.2f} a day over it for "
                f"{span} so its routine refreshes run on time without asking one by one. Spend past "
                f"${per_day + usd_per_day:,.2f} a day still waits for approval; approval rules, blackout "
                f"windows and the circuit breaker are unchanged. Reject to keep the budget: refreshes "
                f"past it then wait for a person each time."),
    )


def budget_requests(resolution, snapshot, spent_today: dict[str, tuple[float, float]], book: BudgetBook,
                    now: datetime, durations=None, held: dict[str, float] | None = None,
                    usd_per_hour: float = FALLBACK_USD_PER_HOUR, ahead: bool = False,
                    costs=None) -> list[Action]:
    """Budget extensions to ask now, all in one request (:func:`bundle_extensions`): for each
    budgeted policy whose forecast spend today or tomorrow (UTC; today's spend so far plus its
    deadlines' refreshes ahead) exceeds its daily budget plus
    what is granted, unless one is pending or was refused for that day. The amount covers the
    largest overshoot forecast over the next :data:`EXTENSION_DAYS` (x :data:`EXTENSION_MARGIN`),
    and at least twice an active extension that fell short (so a forecast that keeps growing asks
    a few times at most); it holds for :data:`EXTENSION_DAYS` days. ``held``: policy -> what the
    work this cycle held (or rejected) as over its budget would cost: today needs at least that.
    ``ahead``: any day of the forecast short counts (a request asked together with another one)."""
    if not spent_today:
        return []
    out = []
    forecast = budget_forecast(resolution, snapshot, spent_today, now, durations, usd_per_hour=usd_per_hour,
                               costs=costs)
    for name, extra in (held or {}).items():
        if name in forecast and forecast[name]:
            d, need, per_day = forecast[name][0]
            forecast[name][0] = (d, max(need, spent_today[name][0] + extra), per_day)
    for name, days in forecast.items():
        if book.pending(name) or not days:
            continue
        try:
            policy = resolution.policy(name)
        except Exception:  # noqa: BLE001
            continue
        if _val(policy.rollout) == "shadow":
            continue
        digest = policy_digest(policy)
        short = []
        for d, need, per_day in (days if ahead else days[:2]):  # today and tomorrow: asked a day ahead, before the night
            g = book.granted(name, digest, d)
            if need > per_day + (g.usd_per_day if g else 0.0) + 1e-6 and not book.refused(name, digest, d):
                short.append((d, need, per_day, g))
        if not short:
            continue
        first, _, per_day, fell_short = short[0]
        peak = max(need for _, need, _ in days)
        # the forecast's error scales with the whole day's need, not with the overshoot alone: a tiny
        # overshoot asked x2 fell short of a retry priced within 1% of the budget and was asked again
        usd = float(math.ceil(max(max(need - per_day for _, need, _ in days) * EXTENSION_MARGIN,
                                  max(need * (1 + NEED_MARGIN) - per_day for _, need, _ in days[:2]))))
        if fell_short is not None:
            usd = max(usd, 2.0 * fell_short.usd_per_day)
        elif not book.by_policy.get(name):
            # a first extension no smaller than the budget itself: the first forecasts price only the
            # syncs the orchestrator has already triggered, and fell 2-4x short of what the policy
            # then needed (generated worlds 13002, 13003, 13029: asked three times each, the amount
            # growing each time); the cap is a ceiling the gate spends up to only for deadlines
            usd = max(usd, float(math.ceil(FIRST_EXTENSION_SHARE * per_day)))
        out.append((policy, resolution.governed_by(name), first, max(usd, 1.0), per_day, peak))
    return [bundle_extensions(out, now)] if out else []


def bundle_extensions(items: list[tuple[object, Iterable[str], date, float, float, float]], now: datetime,
                      days: int = EXTENSION_DAYS) -> Action:
    """One request for the budget extensions of several policies asked in the same cycle
    ([(policy, scope, first day, USD a day asked, daily budget, peak need)]): a person answers one
    question naming every policy and its amount, not one per policy (the work held over their
    budgets is usually one refresh whose syncs several policies pay for; asked one by one, each
    counted as an approval asked: 2.33 per incident that needs a person on generated worlds).
    Approved, each policy has its own extension, as if asked alone. One policy:
    :func:`extension_request`."""
    if len(items) == 1:
        policy, scope, first, usd, per_day, peak = items[0]
        return extension_request(policy, scope, now, first, days, usd, per_day, peak)
    keys: set[str] = set()
    for _, scope, *_ in items:
        keys.update(scope)
    names = [p.name for p, *_ in items]
    cycle = ";".join(f"{policy_digest(p)}|{first.isoformat()}|{days}|{usd:.2f}" for p, _, first, usd, _, _ in items)
    tag = hashlib.sha256(cycle.encode()).hexdigest()[:8]
    listed = "; ".join(f"{p.name}: ${usd:,.2f} a day over its ${per_day:,.2f} from {first:%Y-%m-%d} (its deadlines "
                       f"ahead need up to ${peak:,.2f} a day)" for p, _, first, usd, per_day, peak in items)
    return Action(
        action_id=f"budget-{len(items)}policies-{tag}-{now:%Y%m%d%H%M}",
        type=STANDING, asset_keys=tuple(sorted(keys)), cause=BUDGET_PREFIX + ",".join(names), cycle=cycle,
        estimated_cost_usd=round(sum(usd for _, _, _, usd, _, _ in items), 2),
        reason=(f"budget extensions for {len(items)} policies for {days} days (UTC): {listed}. Approve once for "
                f"all of them so their routine refreshes run on time without asking one by one. A policy's "
                f"spend past its budget plus its amount still waits for approval; approval rules, blackout "
                f"windows and the circuit breaker are unchanged. Reject to keep the budgets: refreshes past "
                f"them then wait for a person each time."),
    )


# -- one question: a standing approval and budget extensions asked in the same cycle -------------------
#
# A world's first cycle typically asks both: the standing approval of the policies whose routine
# refreshes wait, and a budget extension for the policies whose deadlines ahead need more than their
# budget. Asked apart, a person answers two questions at the same moment about the same refreshes;
# :func:`joint` makes them one request. Its cause and cycle join the standing approval's and the
# extension's with :data:`JOINT`; :func:`policies_of` and :func:`extension_scopes` read their own part,
# so the ledger, the store and the simulator treat the approved request as both (declined, as neither).

JOINT = "#"


def joint_part(action: Action, prefix: str) -> Action | None:
    """The part of a standing-type request whose cause opens with ``prefix`` (the request itself
    when it is not joint), else None."""
    if action.type != STANDING:
        return None
    cause = action.cause or ""
    if JOINT not in cause:
        return action if cause.startswith(prefix) else None
    causes, cycles = cause.split(JOINT), (action.cycle or "").split(JOINT)
    if len(causes) != len(cycles):
        return None
    for c, cyc in zip(causes, cycles):
        if c.startswith(prefix):
            return replace(action, cause=c, cycle=cyc)
    return None


def joint(standing: Action, extension: Action, now: datetime) -> Action:
    """One request asking ``standing`` (a standing approval, :func:`bundle`) and ``extension``
    (budget extensions, :func:`bundle_extensions`) together. Its scope is the union of theirs (a
    policy's standing approval still covers only its own lineage: every asset it governs is in it)."""
    cause = standing.cause + JOINT + extension.cause
    cycle = (standing.cycle or "") + JOINT + (extension.cycle or "")
    tag = hashlib.sha256(f"{cause}|{cycle}".encode()).hexdigest()[:8]
    return Action(
        action_id=f"standing-budget-{tag}-{now:%Y%m%d%H%M}", type=STANDING,
        asset_keys=tuple(sorted(set(standing.asset_keys) | set(extension.asset_keys))), cause=cause, cycle=cycle,
        estimated_cost_usd=extension.estimated_cost_usd,
        reason=f"two questions in one, approve or reject both: (1) {standing.reason} (2) {extension.reason}",
    )
