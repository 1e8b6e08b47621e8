"""Resolve a policy set against an asset graph: who governs each asset, and the effective
deadline of every upstream asset along the critical path.

Precedence (documented in policies/README.md):

* **Deadline** — every deadline that reaches an asset (its own policies' and every downstream
  policy's, minus the predicted duration of the path in between) is a candidate; the most
  urgent (earliest instant for the upcoming deadline cycle) wins. Ties: more critical tier,
  then earlier policy.
* **max_lag** — the smallest propagated lag (policy max_lag minus path duration) wins.
* **Tier** — the most critical of every policy that selects the asset or whose deadline/max_lag
  reaches it (a staging model feeding a critical dashboard is critical).
* **Operational settings** (rollout, auto_approve, owners, off-peak windows) come from the
  *primary* policy: among policies that select the asset directly, the highest ``priority``,
  then the most specific selector (exact key/exposure > key glob > tag/owner > kind/group >
  role > upstream_of), then the most critical tier, then load order (file path, position).
  An asset reached only through propagation takes them from the policy of its winning deadline.
* **Blackout windows** — the union over every policy that selects the asset directly (any
  blackout blocks), or the primary policy's when only propagated.
* **Budgets** — every policy with a budget that governs the asset (directly or through
  propagation) lists it; a budget covers all assets its policy governs.

One reverse-topological pass: O(assets + edges x policies-reaching-each-edge).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import FrozenInstanceError, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from orchestrator.core.graph import AssetGraph
from orchestrator.policies.calendar import Schedule, Window, any_contains
from orchestrator.policies.durations import DurationModel
from orchestrator.policies.model import (
    ActionType,
    Budget,
    Policy,
    PolicyError,
    PolicySet,
    Rollout,
    Tier,
    format_duration,
    load_policies,
)
from orchestrator.policies.selectors import GraphIndex, policy_members, validate

UTC = timezone.utc


@dataclass(frozen=True, slots=True)
class EffectiveDeadline:
    """This asset must be complete by ``at`` so that ``target`` meets its policy deadline
    ``target_deadline`` (the upcoming tick at resolution time). ``lead`` is the predicted
    duration of the path from this asset (exclusive) down to the target (inclusive)."""

    policy: str
    target: str
    schedule: Schedule
    lead: timedelta
    target_deadline: datetime
    at: datetime
    via: str | None  # next asset downstream on the critical path (None: this is the target)

    def for_tick(self, tick: datetime) -> datetime:
        """Effective deadline for a given target deadline tick."""
        return tick - self.lead

    def next_after(self, after: datetime) -> datetime:
        """The next effective deadline strictly after ``after`` (a tick still reachable)."""
        return self.schedule.next_tick(after + self.lead) - self.lead

    def local(self) -> datetime:
        return self.at.astimezone(self.schedule.zone)


@dataclass(frozen=True, slots=True)
class ChainLink:
    key: str
    duration_s: float  # predicted duration of this asset
    basis: str  # where the duration comes from
    complete_by: datetime  # effective deadline of this asset for the cycle
    lead: timedelta


class AssetLeads(Mapping):
    """One asset's critical-path leads: source policy name -> (lead seconds, via, target), where
    ``via`` is the next asset downstream on the path to ``target`` (None: this is the target).

    Packed: the names tuple is shared by every asset the same policies reach, the leads are an
    ``array('d')`` and via/target tuples of the graph's own key objects, so an asset reached by 8
    policies costs ~300 bytes instead of ~1 KB as a dict of tuples of floats (61,000 such assets
    at 100,000 in the sensor benchmark)."""

    __slots__ = ("names", "leads", "vias", "targets")

    def __init__(self, names: tuple[str, ...], leads: array, vias: tuple, targets: tuple):
        self.names = names
        self.leads = leads
        self.vias = vias
        self.targets = targets

    def __getitem__(self, name: str) -> tuple[float, str | None, str]:
        try:
            i = self.names.index(name)
        except ValueError:
            raise KeyError(name) from None
        return self.leads[i], self.vias[i], self.targets[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def items(self):  # type: ignore[override]  (zip: no lookup per name)
        return zip(self.names, zip(self.leads, self.vias, self.targets))

    def __repr__(self) -> str:
        return f"AssetLeads({dict(self.items())!r})"


def _pack(mine: dict[str, list], shared: dict) -> AssetLeads:
    """``mine`` (name -> [lead, via, target]) packed in its order; the names and target tuples
    shared through ``shared`` (few distinct ones: the policies and their targets)."""
    names = tuple(mine)
    names = shared.setdefault(names, names)
    targets = tuple(mine[n][2] for n in names)
    targets = shared.setdefault(targets, targets)
    return AssetLeads(names, array("d", [mine[n][0] for n in names]), tuple(mine[n][1] for n in names), targets)


class PolicyMembers(Set):
    """The assets a policy governs (selected directly or reached by its deadline or max lag), as
    a read-only set: ``in``, iteration, ``len``, ``==`` and ``& | -`` as a frozenset (those give
    frozensets). Held as 4-byte positions into the resolution's tuple of governed keys, with
    membership read from the asset's SLA (the policy selects it or propagates to it): ~2.4 MiB
    for 10 policies over 61,000 assets at 100,000, where frozensets of keys took ~25 MiB."""

    __slots__ = ("name", "_keys", "_at", "_slas")

    def __init__(self, name: str, keys: tuple[str, ...], at: array, slas: Mapping[str, EffectiveSLA]):
        self.name = name
        self._keys = keys
        self._at = at
        self._slas = slas

    def __contains__(self, key: object) -> bool:
        sla = self._slas.get(key)  # type: ignore[call-overload]
        return sla is not None and (self.name in sla.policies or self.name in sla.propagated_from)

    def __iter__(self) -> Iterator[str]:
        return map(self._keys.__getitem__, self._at)

    def __len__(self) -> int:
        return len(self._at)

    @classmethod
    def _from_iterable(cls, it: Iterable[str]) -> frozenset[str]:
        return frozenset(it)

    __hash__ = Set._hash

    def __repr__(self) -> str:
        return f"PolicyMembers({self.name!r}, {len(self)} assets)"


def _lag(lags: dict[float, timedelta], value: float) -> timedelta:
    """``timedelta(seconds=value)``, kept in ``lags`` for the next asset with the same value
    (bounded: sharing pays when values repeat)."""
    lag = lags.get(value)
    if lag is not None:
        return lag
    lag = timedelta(seconds=value)
    if len(lags) < 65536:
        lags[value] = lag
    return lag


def _reverse_leads(
    topo: Sequence[str],
    children,
    upstream: Mapping[str, tuple[str, ...]],
    direct_src: Mapping[str, Sequence[str]],
    duration,
    *,
    free: bool = False,
) -> Iterator[tuple[str, AssetLeads | None]]:
    """The critical-path leads, one asset at a time in reverse topological order: (key, its
    ``AssetLeads`` or None when no deadline or max lag reaches it). ``direct_src``: key -> the
    source policies selecting it (in the order their leads are listed).

    ``free``: an asset's leads are dropped as soon as its last parent has read them, so only the
    frontier of the pass is held (the caller keeps what it needs of each asset as it comes);
    otherwise every asset's leads stay in the dict the pass reads from (``Resolution._leads``)."""
    leads: dict[str, AssetLeads] = {}
    remaining: dict[str, int] = {}  # free: parents yet to read an asset's leads
    packed_shared: dict[tuple, tuple] = {}
    for key in reversed(topo):
        mine: dict[str, list] | None = None
        own = direct_src.get(key)
        if own:
            mine = {name: [0.0, None, key] for name in own}
        for child in children(key):
            theirs = leads.get(child)
            if free:
                left = remaining.pop(child) - 1
                if left:
                    remaining[child] = left
                elif theirs:
                    del leads[child]
            if not theirs:
                continue
            dc = duration(child)
            if mine is None:
                mine = {}
            for name, lead, target in zip(theirs.names, theirs.leads, theirs.targets):
                cand = lead + dc
                cur = mine.get(name)
                # equal leads: the smaller (target, child), so the critical path named in the
                # metadata does not depend on the order the graph's nodes were listed in
                if cur is None or cand > cur[0] or (cand == cur[0] and (target, child) < (cur[2], cur[1])):
                    mine[name] = [cand, child, target]
        packed = _pack(mine, packed_shared) if mine else None
        if packed is not None and (not free or upstream[key]):
            leads[key] = packed
        if free and upstream[key]:
            remaining[key] = len(upstream[key])
        yield key, packed


@dataclass(frozen=True)
class Infeasibility:
    """A deadline (or max lag) that the predicted durations cannot meet."""

    policy: str
    kind: str  # "deadline" or "max_lag"
    target: str
    start: str  # first asset of the critical path
    required: timedelta  # predicted duration of the whole path start..target
    allowed: timedelta  # the deadline window or the max lag
    path: tuple[str, ...]
    file: str
    line: int

    @property
    def message(self) -> str:
        what = "deadline" if self.kind == "deadline" else "max_lag"
        limit = "the window before each deadline is" if self.kind == "deadline" else "max_lag is"
        return (
            f"{what} cannot be met: the critical path {self.start} -> {self.target} "
            f"({len(self.path)} assets) is predicted to take {format_duration(self.required)} but "
            f"{limit} {format_duration(self.allowed)} (short by "
            f"{format_duration(self.required - self.allowed)})"
        )

    def as_error(self) -> PolicyError:
        return PolicyError(self.file, self.line, self.kind, self.message, severity="warning")


_PROFILE_FIELDS = ("tier", "primary_policy", "policies", "propagated_from", "rollout", "auto_approve", "owners",
                   "budgets", "off_peak", "blackout", "max_lag_policy", "infeasible")
_SLA_FIELDS = ("key", *_PROFILE_FIELDS[:10], "deadline", "max_lag", *_PROFILE_FIELDS[10:11], "predicted_duration_s",
               "infeasible")


class EffectiveSLA:
    """One governed asset's effective SLA. Immutable, compared by value. The fields that follow
    from how the asset is governed (tier, policies, rollout, owners, windows, ...) live in one
    tuple shared by every asset governed the same way (``resolve`` passes ``profiles``, its
    interning table): at 100,000 assets that is a few hundred tuples instead of 12 slots per asset;
    only the key, deadline, lag and duration are the asset's own."""

    __slots__ = ("key", "_profile", "deadline", "max_lag", "predicted_duration_s")
    key: str
    tier: Tier
    primary_policy: str
    policies: tuple[str, ...]  # policies selecting this asset directly, in precedence order
    propagated_from: tuple[str, ...]  # policies whose deadline/max_lag reaches it from downstream
    rollout: Rollout
    auto_approve: frozenset[ActionType]
    owners: tuple[str, ...]
    budgets: tuple[tuple[str, Budget], ...]
    off_peak: tuple[Window, ...]
    blackout: tuple[Window, ...]
    deadline: EffectiveDeadline | None
    max_lag: timedelta | None  # effective (propagated) maximum lag
    max_lag_policy: str | None
    predicted_duration_s: float
    infeasible: tuple[str, ...]  # policies whose deadline/lag cannot be met via this asset

    def __init__(self, key: str, tier: Tier, primary_policy: str, policies: tuple[str, ...],
                 propagated_from: tuple[str, ...], rollout: Rollout, auto_approve: frozenset[ActionType],
                 owners: tuple[str, ...], budgets: tuple[tuple[str, Budget], ...], off_peak: tuple[Window, ...],
                 blackout: tuple[Window, ...], deadline: EffectiveDeadline | None, max_lag: timedelta | None,
                 max_lag_policy: str | None, predicted_duration_s: float, infeasible: tuple[str, ...] = (), *,
                 profiles: dict[tuple, tuple] | None = None) -> None:
        profile = (tier, primary_policy, policies, propagated_from, rollout, auto_approve, owners, budgets,
                   off_peak, blackout, max_lag_policy, infeasible)
        if profiles is not None:  # by the parts' identity: resolve hands out shared parts
            profile = profiles.setdefault(tuple(map(id, profile)), profile)
        put = object.__setattr__
        put(self, "key", key)
        put(self, "_profile", profile)
        put(self, "deadline", deadline)
        put(self, "max_lag", max_lag)
        put(self, "predicted_duration_s", predicted_duration_s)

    def __setattr__(self, name: str, value) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in _SLA_FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.key == other.key and self.deadline == other.deadline  # type: ignore[attr-defined]
                and self.max_lag == other.max_lag  # type: ignore[attr-defined]
                and self.predicted_duration_s == other.predicted_duration_s  # type: ignore[attr-defined]
                and self._profile == other._profile)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.key, self._profile, self.deadline, self.max_lag, self.predicted_duration_s))

    def __repr__(self) -> str:
        return "EffectiveSLA(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in _SLA_FIELDS) + ")"

    def __reduce__(self):  # the profile tuple as is: pickled once for the SLAs sharing it
        return (_restore_sla, (self.key, self._profile, self.deadline, self.max_lag, self.predicted_duration_s))

    @property
    def direct(self) -> bool:
        return bool(self.policies)

    def may_run_without_approval(self, action: ActionType | str) -> bool:
        """True when the rollout is ``auto`` and the action is listed in ``auto_approve``."""
        if action.__class__ is not ActionType:  # (the enum's call costs more than the check itself)
            action = ActionType(action)
        return self.rollout is Rollout.auto and action in self.auto_approve

    def blackout_at(self, at: datetime) -> Window | None:
        return any_contains(self.blackout, at)

    def off_peak_at(self, at: datetime) -> Window | None:
        return any_contains(self.off_peak, at)

    def next_off_peak(self, after: datetime) -> datetime | None:
        opens = [t for w in self.off_peak if (t := w.next_open(after)) is not None]
        return min(opens) if opens else None


def _restore_sla(key, profile, deadline, max_lag, predicted_duration_s) -> EffectiveSLA:
    sla = object.__new__(EffectiveSLA)
    for name, value in (("key", key), ("_profile", profile), ("deadline", deadline), ("max_lag", max_lag),
                        ("predicted_duration_s", predicted_duration_s)):
        object.__setattr__(sla, name, value)
    return sla


for _i, _name in enumerate(_PROFILE_FIELDS):
    setattr(EffectiveSLA, _name, property(lambda self, _i=_i: self._profile[_i]))
del _i, _name


@dataclass
class Resolution:
    """The outcome of resolving policies over a graph. When ``ok`` is False nothing applies:
    ``slas`` is empty and ``skip_reason`` says why (sensors skip with it)."""

    ok: bool
    now: datetime
    errors: list[PolicyError] = field(default_factory=list)
    warnings: list[PolicyError] = field(default_factory=list)
    slas: dict[str, EffectiveSLA] = field(default_factory=dict)
    infeasible: list[Infeasibility] = field(default_factory=list)
    members: dict[str, Set[str]] = field(default_factory=dict)  # policy -> PolicyMembers
    policy_set: PolicySet | None = None
    graph: AssetGraph | None = None
    durations: DurationModel | None = None
    _targets: dict[str, datetime] = field(default_factory=dict, repr=False)
    # internal: the source policies (deadline or max lag) in the order resolve() listed them,
    # and the leads, rebuilt on first use (``_leads``) by the CLI's chain and explain only
    _sources: Sequence[str] = field(default=(), repr=False)
    _lead_memo: dict[str, AssetLeads] | None = field(default=None, repr=False)

    @property
    def skip_reason(self) -> str | None:
        if self.ok:
            return None
        first = self.errors[0] if self.errors else None
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return f"SLA policies are invalid and not applied: {first}{more}"

    def sla(self, key: str) -> EffectiveSLA | None:
        return self.slas.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.slas

    def policy(self, name: str) -> Policy:
        assert self.policy_set is not None
        return self.policy_set.by_name(name)

    @property
    def _leads(self) -> Mapping[str, Mapping[str, tuple[float, str | None, str]]]:
        """Per asset {source policy name: (lead seconds, via, target)} (``AssetLeads``). resolve()
        does not keep them (~25 MiB at 100,000 assets for the CLI's chain and explain only): the
        same pass again on first use, over the same graph, durations and sources."""
        if self._lead_memo is None:
            graph, durations = self.graph, self.durations
            if not self.ok or graph is None or durations is None:
                return {}
            sources = self._sources
            direct_src = {}
            for key, sla in self.slas.items():
                own = [name for name in sources if name in sla.policies]
                if own:
                    direct_src[key] = own
            node_of = graph.get
            memo = {}
            for key, packed in _reverse_leads(graph.topological_order(), graph.children, graph.upstream_map(),
                                              direct_src, lambda k: durations.seconds(node_of(k))):
                if packed is not None:
                    memo[key] = packed
            self._lead_memo = memo
        return self._lead_memo

    def governed_by(self, policy: str) -> Set[str]:
        return self.members.get(policy, frozenset())

    def chain(self, key: str, policy: str | None = None) -> list[ChainLink]:
        """The critical path from ``key`` down to the target whose deadline it serves."""
        sla = self.slas.get(key)
        if sla is None:
            return []
        policy = policy or (sla.deadline.policy if sla.deadline else sla.max_lag_policy)
        if policy is None or self.durations is None or self.graph is None:
            return []
        target_tick = self._targets.get(policy)
        links: list[ChainLink] = []
        cur: str | None = key
        while cur is not None:
            lead, via, _ = self._leads[cur][policy]
            est = self.durations.estimate(self.graph.node(cur))
            complete_by = (target_tick - timedelta(seconds=lead)) if target_tick else None
            links.append(ChainLink(cur, est.seconds, est.basis, complete_by, timedelta(seconds=lead)))  # type: ignore[arg-type]
            cur = via
        return links

    def explain(self, key: str) -> str:
        from orchestrator.policies.explain import explain_text

        return explain_text(self, key)


class _Info:
    """A policy's facts as plain attributes (fast to read in the per-asset loop)."""

    __slots__ = ("name", "order", "tier", "tier_rank", "priority", "schedule", "max_lag_s",
                 "owners", "rollout", "auto_approve", "budget", "off_peak", "blackout")

    def __init__(self, policy: Policy):
        self.name = policy.name
        self.order = policy.order
        self.tier = policy.tier
        self.tier_rank = policy.tier.rank
        self.priority = policy.priority
        self.schedule = policy.schedule()
        self.max_lag_s = policy.max_lag.total_seconds() if policy.max_lag is not None else None
        self.owners = tuple(policy.owners)
        self.rollout = policy.rollout
        self.auto_approve = frozenset(policy.auto_approve)
        self.budget = policy.budget
        self.off_peak = policy.off_peak_windows()
        self.blackout = policy.blackout_windows()

    def sort_key(self, spec: int) -> tuple:
        """Precedence among direct matches: priority, specificity, tier, load order."""
        return (-self.priority, -spec, -self.tier_rank, self.order)


def validate_against_graph(policy_set: PolicySet, graph: AssetGraph, index: GraphIndex | None = None) -> list[PolicyError]:
    """Selector problems (unknown keys/groups/kinds/exposures..., with suggestions)."""
    index = index or GraphIndex(graph)
    errors: list[PolicyError] = []
    for policy in policy_set.policies:
        for part in ("select", "exclude"):
            for i, sel in enumerate(getattr(policy, part)):
                for sub, message in validate(sel, index):
                    path = (part, i, *sub)
                    label = f"policies[{policy._index}]({policy.name}).{part}[{i}]" + "".join(
                        f"[{p}]" if isinstance(p, int) else f".{p}" for p in sub
                    )
                    errors.append(PolicyError(policy.file, policy.line_of(*path), label, message))
    return errors


def resolve(
    policy_set: PolicySet,
    graph: AssetGraph,
    durations: DurationModel | None = None,
    now: datetime | None = None,
    unavailable_kinds: Iterable[str] = (),
) -> Resolution:
    """Resolve ``policy_set`` over ``graph``. Never half-applies: any error -> ``ok=False``.

    ``unavailable_kinds``: asset kinds left out of the graph because their system could not be
    loaded (a connector API down with no cached state). A policy selecting such a kind is
    disabled (a warning says why) instead of invalidating every policy."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    durations = durations or DurationModel()
    res = Resolution(ok=False, now=now, policy_set=policy_set, graph=graph, durations=durations)
    res.errors = [e for e in policy_set.errors if e.severity == "error"]
    res.warnings = [e for e in policy_set.errors if e.severity != "error"]
    try:
        topo = graph.topological_order()
    except ValueError as exc:
        res.errors.append(PolicyError("<asset graph>", 0, "", str(exc)))
        return res
    index = GraphIndex(graph)
    selector_errors = validate_against_graph(policy_set, graph, index)
    down = [k for k in unavailable_kinds if k not in index.kinds]
    if down:
        disabled: set[tuple[str, int]] = set()
        keep = []
        for e in selector_errors:
            kind = next((k for k in down if e.message.startswith(f"unknown kind {k!r}")), None)
            if kind is None and (e.message.startswith("unknown ") or "matches no" in e.message):
                kind = "/".join(down)  # may name tables/groups of the connectors that are not loaded
            if kind is None:
                keep.append(e)
                continue
            pol = next((p for p in policy_set.policies if e.field.startswith(f"policies[{p._index}]({p.name})")
                        and p.file == e.file), None)
            if pol is not None:
                disabled.add((pol.file, pol._index))
            res.warnings.append(replace(e, severity="warning", message=(
                f"{e.message}: no {kind} assets are loaded (its API is unreachable and no connector "
                f"state is cached); policy disabled until they are")))
        selector_errors = keep
        if disabled:
            policy_set = replace(policy_set, policies=[p for p in policy_set.policies
                                                       if (p.file, p._index) not in disabled])
            res.policy_set = policy_set
    res.errors.extend(selector_errors)
    if res.errors:
        return res

    policies = policy_set.policies
    by_name = {p.name: p for p in policies}

    # -- direct matches -----------------------------------------------------------------------
    direct: dict[str, list[tuple[Policy, int]]] = {}
    direct_sets: dict[str, set[str]] = {}
    specs: dict[tuple[str, str], int] = {}
    for policy in policies:
        found = policy_members(policy, index)
        direct_sets[policy.name] = set(found)
        for key, spec in found.items():
            direct.setdefault(key, []).append((policy, spec))
            specs[(policy.name, key)] = spec
    del index  # its per-key tables (groups, roles, kinds...) are not needed past the matching

    # -- sources: policies with a deadline or a max lag ---------------------------------------
    targets: dict[str, datetime] = {}
    windows: dict[str, float] = {}
    for policy in policies:
        schedule = policy.schedule()
        if schedule is not None:
            try:
                targets[policy.name] = schedule.next_tick(now)
            except ValueError as exc:
                res.errors.append(
                    PolicyError(policy.file, policy.line_of("deadline"), "deadline", str(exc))
                )
                continue
            windows[policy.name] = policy.deadline.effective_window(schedule).total_seconds()  # type: ignore[union-attr]
    if res.errors:
        return res
    sources = {p.name for p in policies if p.name in targets or p.max_lag is not None}
    direct_src: dict[str, list[str]] = {}
    for name in sources:
        for key in direct_sets[name]:
            direct_src.setdefault(key, []).append(name)

    # -- one reverse-topological pass ---------------------------------------------------------
    node_of = graph.get
    dur: dict[str, float] = {}

    def duration(key: str) -> float:
        d = dur.get(key)
        if d is None:
            d = dur[key] = durations.seconds(node_of(key))  # type: ignore[arg-type]
        return d

    res._targets = targets
    res._sources = tuple(sources)  # the order direct_src lists them in (and the lazy _leads)
    upstream = graph.upstream_map()

    # -- per asset ---------------------------------------------------------------------------
    # plain per-policy facts: pydantic attribute access is too slow for the per-asset loop
    info = {p.name: _Info(p) for p in policies}
    worst: dict[tuple[str, str], tuple[float, str]] = {}  # (policy, kind) -> (total, start)
    slas = res.slas
    # per-policy parts are shared between the assets (equal tuples, one object): memory per asset
    budgets_of: dict[tuple[str, ...], tuple] = {}
    shared: dict[tuple, tuple] = {}
    share = lambda t: shared.setdefault(t, t)  # noqa: E731
    profiles: dict[tuple, tuple] = {}  # what assets governed alike share (``EffectiveSLA``)

    # the effective deadline's lead and instant: one timedelta and one datetime per distinct
    # (policy, lead), not per asset (leads are sums of a few durations: few distinct values)
    instants: dict[tuple[str, float], tuple[datetime, timedelta]] = {}
    lags: dict[float, timedelta] = {}  # the same for the effective max lag

    # each asset's SLA as its leads come: the pass keeps only its frontier's leads, not all of them
    for key, reach in _reverse_leads(topo, graph.children, upstream, direct_src, duration, free=True):
        if reach is None:
            if key not in direct:
                continue
            reach = {}  # type: ignore[assignment]
        matched = sorted(
            (info[p.name] for p, spec in direct.get(key, ())),
            key=lambda inf, _k=key: inf.sort_key(specs[(inf.name, _k)]),
        ) if key in direct else []
        own_dur = duration(key)

        best_deadline: EffectiveDeadline | None = None
        best_rank: tuple | None = None
        lag_value: float | None = None
        lag_policy: str | None = None
        bad: list[str] = []
        for name, (lead, via, target) in reach.items():
            pi = info[name]
            total = lead + own_dur
            if pi.schedule is not None and name in targets:
                hit = instants.get((name, lead))
                if hit is None:
                    lead_td = timedelta(seconds=lead)
                    hit = (targets[name] - lead_td, lead_td)
                    if len(instants) < 65536:  # bounded: sharing pays when values repeat
                        instants[(name, lead)] = hit
                at = hit[0]
                rank = (at, -pi.tier_rank, pi.order)
                if best_rank is None or rank < best_rank:
                    best_rank = rank
                    best_deadline = EffectiveDeadline(name, target, pi.schedule, hit[1], targets[name], at, via)
                if total > windows[name]:
                    bad.append(name)
                    prev = worst.get((name, "deadline"))
                    if prev is None or total > prev[0] or (total == prev[0] and key < prev[1]):
                        worst[(name, "deadline")] = (total, key)
            if pi.max_lag_s is not None:
                value = pi.max_lag_s - lead
                if lag_value is None or value < lag_value:
                    lag_value, lag_policy = value, name
                if total > pi.max_lag_s:
                    if name not in bad:
                        bad.append(name)
                    prev = worst.get((name, "max_lag"))
                    if prev is None or total > prev[0] or (total == prev[0] and key < prev[1]):
                        worst[(name, "max_lag")] = (total, key)

        governing = [info[n] for n in ({pi.name for pi in matched} | reach.keys())]
        tier = max(governing, key=lambda pi: pi.tier_rank).tier
        if matched:
            primary = matched[0]
        elif best_deadline is not None:
            primary = info[best_deadline.policy]
        else:
            primary = info[lag_policy]  # type: ignore[index]
        if len(matched) > 1:
            bl: tuple[Window, ...] = tuple(w for pi in matched for w in pi.blackout)
        else:
            bl = primary.blackout
        names = tuple(sorted(pi.name for pi in governing))
        budgets = budgets_of.get(names)
        if budgets is None:  # one tuple per distinct set of governing policies, not per asset
            budgets = budgets_of[names] = tuple(
                (pi.name, pi.budget)
                for pi in sorted(governing, key=lambda pi: pi.order)
                if pi.budget is not None
            )
        slas[key] = EffectiveSLA(
            key=key,
            tier=tier,
            primary_policy=primary.name,
            policies=share(tuple(pi.name for pi in matched)),
            propagated_from=share(tuple(sorted(n for n, (_, via, _) in reach.items() if via is not None))),
            rollout=primary.rollout,
            auto_approve=primary.auto_approve,
            owners=primary.owners or share(tuple(node_of(key).owners)),  # type: ignore[union-attr]
            budgets=budgets,  # type: ignore[arg-type]
            off_peak=primary.off_peak,
            blackout=share(bl),
            deadline=best_deadline,
            max_lag=None if lag_value is None else _lag(lags, lag_value),
            max_lag_policy=lag_policy,
            predicted_duration_s=own_dur,
            infeasible=share(tuple(bad)),
            profiles=profiles,
        )

    del instants, lags, profiles
    # members: positions into one tuple of the governed keys, read off each SLA (the policies
    # selecting it and those propagating to it are exactly the ones governing it)
    governed = tuple(slas)
    positions_of: dict[str, array] = {name: array("I") for name in direct_sets}
    for i, sla in enumerate(slas.values()):
        for name in sla.policies:
            positions_of[name].append(i)
        for name in sla.propagated_from:
            if name not in sla.policies:
                positions_of[name].append(i)
    res.members = {name: PolicyMembers(name, governed, positions, slas) for name, positions in positions_of.items()}
    del positions_of
    path_leads: dict[str, AssetLeads] = {}
    if worst:  # the critical paths of the infeasible policies: their leads again, only theirs
        wanted = {name for name, _ in worst}
        only = {k: kept for k, names in direct_src.items() if (kept := [n for n in names if n in wanted])}
        path_leads = {k: p for k, p in _reverse_leads(topo, graph.children, upstream, only, duration) if p is not None}
    del dur
    leads = path_leads
    for (name, kind), (total, start) in sorted(worst.items()):
        policy = by_name[name]
        path = [start]
        cur = leads[start][name][1]
        while cur is not None:
            path.append(cur)
            cur = leads[cur][name][1]
        allowed = windows[name] if kind == "deadline" else policy.max_lag.total_seconds()  # type: ignore[union-attr]
        res.infeasible.append(
            Infeasibility(
                policy=name, kind=kind, target=path[-1], start=start,
                required=timedelta(seconds=total), allowed=timedelta(seconds=allowed),
                path=tuple(path), file=policy.file,
                line=policy.line_of("deadline" if kind == "deadline" else "max_lag"),
            )
        )
    res.warnings.extend(i.as_error() for i in res.infeasible)
    res.ok = True
    return res


def load_and_resolve(
    paths: Sequence[str | Path] | Iterable[str | Path] = ("policies",),
    graph: AssetGraph | None = None,
    durations: DurationModel | None = None,
    now: datetime | None = None,
    unavailable_kinds: Iterable[str] = (),
) -> Resolution:
    """Load policy files and resolve them; never raises (errors land in ``Resolution.errors``)."""
    now = now or datetime.now(UTC)
    try:
        policy_set = load_policies(paths)
        if graph is None:
            raise ValueError("no asset graph given")
        return resolve(policy_set, graph, durations, now, unavailable_kinds=unavailable_kinds)
    except Exception as exc:  # the code location must load even with broken policies
        return Resolution(
            ok=False, now=now,
            errors=[PolicyError("<policies>", 0, "", f"{type(exc).__name__}: {exc}")],
        )
