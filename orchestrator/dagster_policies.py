"""Dagster shell for SLA policies: metadata, tags, owners and a native FreshnessPolicy per
governed asset, compiled from a ``Resolution`` of the decision core (orchestrator.policies).

Usage in definitions.py::

    resolution = load_resolution(graph)                 # never raises
    specs = apply_sla_to_specs(specs, resolution)       # unchanged when policies are invalid
    Definitions(..., metadata=policy_status_metadata(resolution))

The compiled FreshnessPolicy is ``FreshnessPolicy.cron`` with the asset's *effective*
deadline (the policy cron shifted earlier by the predicted duration downstream, restricted to
the calendar's weekdays). Dagster's cron cannot skip holidays: on a holiday the UI may show a
governed asset as failing its freshness policy while the sensors (which use the full business
calendar) do not act. Assets with only a max_lag get ``FreshnessPolicy.time_window``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from dagster import AssetSpec, FreshnessPolicy

from orchestrator.core.graph import AssetGraph
from orchestrator.policies.calendar import cron_min_interval, shift_cron, weekly_min_interval
from orchestrator.policies.durations import DurationModel
from orchestrator.policies.model import format_duration
from orchestrator.policies.resolve import EffectiveSLA, Resolution, load_and_resolve

_TAG_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")

TAG_PREFIX = "sla"
_KIND_PREFIX = "dagster/kind/"  # kinds are kept by replace_attributes, not passed as tags


def tag_value(text: str) -> str:
    """A string made valid as a strict Dagster tag value ([A-Za-z0-9_.-], <= 63 chars)."""
    return _TAG_VALUE_BAD.sub("_", text.replace("@", "_at_").replace("/", "."))[:63]


class SlaAttributes(NamedTuple):
    metadata: dict[str, object]
    tags: dict[str, str]
    owners: list[str]
    freshness_policy: FreshnessPolicy | None


# Pure functions of a cron string, a duration or a name, called once per governed asset with a
# few hundred distinct arguments: computed once per distinct value.
_weekly_min_interval = lru_cache(maxsize=4096)(weekly_min_interval)  # exact gap of a M H * * DOW cron
_shift_cron = lru_cache(maxsize=16384)(shift_cron)
_format_duration = lru_cache(maxsize=16384)(format_duration)
_tag_value = lru_cache(maxsize=16384)(tag_value)


@lru_cache(maxsize=4096)
def _joined(values: tuple[str, ...]) -> str:
    return ", ".join(values)


@lru_cache(maxsize=1024)
def _auto_approve_text(actions: frozenset) -> str:
    return ", ".join(sorted(a.value for a in actions)) or "none"


@lru_cache(maxsize=4096)
def _valid_owners(owners: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(o for o in owners if _EMAIL.fullmatch(o) or (o.startswith("team:") and len(o) > 5))


def _budgets_text(budgets) -> str:
    return "; ".join(
        f"{name}: "
        + ", ".join(
            p for p in (
                f"{b.per_day:g} {b.unit}/day" if b.per_day is not None else "",
                f"{b.per_month:g} {b.unit}/month" if b.per_month is not None else "",
            ) if p
        )
        for name, b in budgets
    )


def _windows_text(windows) -> str:
    return "; ".join(w.describe() for w in windows)


def _once_per_value(fn):
    """``fn`` cached per distinct (hashable) argument; computed directly for an unhashable one."""
    cached = lru_cache(maxsize=4096)(fn)

    def call(value):
        try:
            return cached(value)
        except TypeError:
            return fn(value)

    return call


_budgets_text_cached = _once_per_value(_budgets_text)
_windows_text_cached = _once_per_value(_windows_text)


def _policy_of(resolution: Resolution, name: str):
    """``resolution.policy(name)`` through an index built once per resolution (the policy set's
    ``by_name`` scans every policy: once per governed asset, that is assets x policies)."""
    policy_set = resolution.policy_set
    index = getattr(resolution, "_policy_index", None)
    if index is None or index[0] is not policy_set or index[1] != len(policy_set.policies):
        by_name: dict[str, object] = {}
        for p in policy_set.policies:
            by_name.setdefault(p.name, p)  # the first of a name, as by_name returns
        index = (policy_set, len(policy_set.policies), by_name)
        try:
            resolution._policy_index = index  # type: ignore[attr-defined]
        except AttributeError:  # a slotted Resolution: look up without keeping the index
            pass
    found = index[2].get(name)
    return found if found is not None else resolution.policy(name)


def _unchecked_cron_policy(cron: str, lower: timedelta, timezone: str) -> FreshnessPolicy | None:
    """The same record ``FreshnessPolicy.cron`` returns, without its validation, which samples
    1,000 cron ticks (~50 ms) to find the smallest interval. Only used where that interval is known
    exactly here (``_weekly_min_interval``) and every check Dagster makes is made the same way;
    None when the record cannot be built this way (another Dagster version: the caller validates)."""
    try:
        from dagster._core.definitions.freshness import CronFreshnessPolicy
        from dagster._utils.schedules import is_valid_cron_string
        from dagster_shared.serdes.utils import SerializableTimeDelta

        if not is_valid_cron_string(cron):  # Dagster's own first check (cheap: a parse)
            return None

        base = next(c for c in CronFreshnessPolicy.__mro__ if c.__name__ == "_CronFreshnessPolicy")
        return base.__new__(
            CronFreshnessPolicy,
            deadline_cron=cron,
            serializable_lower_bound_delta=SerializableTimeDelta.from_timedelta(lower),
            timezone=timezone,
        )
    except Exception:
        return None


@lru_cache(maxsize=1)
def _fast_path_ok() -> bool:
    """The unchecked record equals Dagster's validated one (checked once per process)."""
    probe = ("5 6 * * 1-5", timedelta(hours=2), "America/New_York")
    fast = _unchecked_cron_policy(*probe)
    checked = FreshnessPolicy.cron(deadline_cron=probe[0], lower_bound_delta=probe[1], timezone=probe[2])
    return fast is not None and fast == checked and type(fast) is type(checked)


@lru_cache(maxsize=16384)
def _cron_freshness(cron: str, lower: timedelta, timezone: str) -> FreshnessPolicy | None:
    """``FreshnessPolicy.cron`` once per distinct (cron, lower bound, zone): thousands of governed
    assets share a few hundred shifted deadlines. The policy is an immutable record, so assets may
    share one instance. Returns None for a cron Dagster would reject."""
    smallest = _weekly_min_interval(cron)
    if smallest is not None and _fast_path_ok():
        if timedelta(minutes=1) <= lower <= smallest:
            fast = _unchecked_cron_policy(cron, lower, timezone)
            if fast is not None:
                return fast
    try:
        return FreshnessPolicy.cron(deadline_cron=cron, lower_bound_delta=lower, timezone=timezone)
    except Exception:  # a cron Dagster rejects: the caller falls through to max_lag / none
        return None


@lru_cache(maxsize=4096)
def _time_window_freshness(max_lag: timedelta) -> FreshnessPolicy:
    warn = max_lag * 0.75
    return FreshnessPolicy.time_window(
        fail_window=max_lag, warn_window=warn if warn >= timedelta(minutes=1) else None
    )


_MISSING = object()


def compile_freshness_policy(sla: EffectiveSLA, resolution: Resolution) -> FreshnessPolicy | None:
    """The asset's native FreshnessPolicy. It depends only on the deadline's policy, cron, time
    zone, business weekdays and lead and on the max_lag, which thousands of governed assets share: computed once per distinct
    value per resolution (the policy is looked up in it)."""
    dl = sla.deadline
    if dl is not None:  # what _compile_freshness_policy reads of the schedule (a calendar's holidays: not)
        schedule = dl.schedule
        weekdays = schedule.calendar.weekdays if schedule.calendar else None
        key = (dl.policy, schedule.cron, schedule.timezone, weekdays, dl.lead, sla.max_lag)
    else:
        key = (None, None, None, None, None, sla.max_lag)
    cache = getattr(resolution, "_freshness_cache", None)
    if cache is None or cache[0] is not resolution.policy_set:
        cache = (resolution.policy_set, {})
        try:
            resolution._freshness_cache = cache  # type: ignore[attr-defined]
        except AttributeError:  # a slotted Resolution: compute without keeping the cache
            pass
    try:
        hit = cache[1].get(key, _MISSING)
    except TypeError:  # an unhashable value: compute directly
        return _compile_freshness_policy(sla, resolution)
    if hit is _MISSING:
        hit = cache[1][key] = _compile_freshness_policy(sla, resolution)
    return hit


def _compile_freshness_policy(sla: EffectiveSLA, resolution: Resolution) -> FreshnessPolicy | None:
    dl = sla.deadline
    if dl is not None:
        schedule = dl.schedule
        weekdays = schedule.calendar.weekdays if schedule.calendar else None
        cron = _shift_cron(schedule.cron, dl.lead, weekdays)
        if cron is not None:
            policy = _policy_of(resolution, dl.policy)
            window = policy.deadline.effective_window(schedule)  # type: ignore[union-attr]
            # exact for the usual 'M H * * DOW' shape without sampling ticks; else sampled once per cron
            smallest = _weekly_min_interval(cron) or cron_min_interval(cron)
            lower = min(max(window - dl.lead, timedelta(minutes=1)), smallest)
            compiled = _cron_freshness(cron, lower, schedule.timezone)
            if compiled is not None:
                return compiled
    if sla.max_lag is not None and sla.max_lag >= timedelta(minutes=2):
        return _time_window_freshness(sla.max_lag)
    return None


def sla_attributes(resolution: Resolution, asset_key: str) -> SlaAttributes | None:
    """What a governed asset carries in Dagster; None if ungoverned or policies are invalid."""
    if not resolution.ok:
        return None
    sla = resolution.sla(asset_key)
    if sla is None:
        return None
    meta: dict[str, object] = {
        "sla/tier": sla.tier.value,
        "sla/policy": sla.primary_policy,
        "sla/policies": _joined(sla.policies) or f"(inherited from {sla.primary_policy})",
        "sla/owners": _joined(sla.owners),
        "sla/rollout": sla.rollout.value,
        "sla/auto_approve": _auto_approve_text(sla.auto_approve),
        "sla/predicted_duration": _format_duration(sla.predicted_duration_s),
    }
    tags = {
        f"{TAG_PREFIX}/tier": sla.tier.value,
        f"{TAG_PREFIX}/policy": _tag_value(sla.primary_policy),
        f"{TAG_PREFIX}/rollout": sla.rollout.value,
    }
    if sla.owners:
        tags[f"{TAG_PREFIX}/owner"] = _tag_value(sla.owners[0])
    dl = sla.deadline
    if dl is not None:
        local = dl.local()
        meta["sla/effective_deadline"] = (
            f"{local:%H:%M} {dl.schedule.timezone} ({dl.target} due "
            f"{dl.target_deadline.astimezone(dl.schedule.zone):%H:%M} minus "
            f"{_format_duration(dl.lead)})"
        )
        meta["sla/deadline_policy"] = dl.policy
        meta["sla/deadline_schedule"] = dl.schedule.describe()
        meta["sla/deadline_lead_seconds"] = int(dl.lead.total_seconds())
        meta["sla/deadline_target"] = dl.target
        if dl.via:
            meta["sla/critical_path_next"] = dl.via
        tags[f"{TAG_PREFIX}/deadline"] = f"{local:%Hh%M}"
        tags[f"{TAG_PREFIX}/deadline_tz"] = _tag_value(dl.schedule.timezone)
        tags[f"{TAG_PREFIX}/deadline_policy"] = _tag_value(dl.policy)
    if sla.max_lag is not None:
        meta["sla/max_lag"] = _format_duration(sla.max_lag)
    if sla.budgets:
        meta["sla/budgets"] = _budgets_text_cached(sla.budgets)
    if sla.off_peak:
        meta["sla/off_peak"] = _windows_text_cached(sla.off_peak)
    if sla.blackout:
        meta["sla/blackout"] = _windows_text_cached(sla.blackout)
    if sla.infeasible:
        meta["sla/cannot_meet"] = _joined(sla.infeasible)
        tags[f"{TAG_PREFIX}/cannot_meet"] = "true"
    owners = list(_valid_owners(tuple(sla.owners)))
    return SlaAttributes(meta, tags, owners, compile_freshness_policy(sla, resolution))


def _replace_checked(spec: AssetSpec, kw: dict[str, object]) -> AssetSpec:
    """``spec.replace_attributes(**kw)`` as Dagster builds it (every attribute validated again)."""
    return spec.replace_attributes(**kw)


def _replace_added(spec: AssetSpec, kw: dict[str, object], new_tags: dict[str, str],
                   new_owners: list[str]) -> AssetSpec:
    """The record ``replace_attributes`` gives, with only what is added validated: the SLA tags
    (Dagster's strict tag check) and owners (Dagster's owner check), as ``AssetSpec`` would; the
    key, deps (re-coerced one by one by ``replace_attributes``), group and kinds are the spec's
    own, already validated. Kind tags stay last, as ``replace_attributes`` re-adds them."""
    from dagster._core.definitions.utils import validate_asset_owner
    from dagster._utils.tags import normalize_tags

    normalize_tags(new_tags, strict=True)  # raises as AssetSpec would on an invalid tag
    for owner in new_owners:
        validate_asset_owner(owner, spec.key)
    tags = kw["tags"]
    kinds = {k: v for k, v in spec.tags.items() if k.startswith(_KIND_PREFIX)}
    return spec._replace(**{**kw, "tags": {**tags, **kinds}})  # type: ignore[dict-item]


@lru_cache(maxsize=1)
def _fast_replace_ok() -> bool:
    """``_replace_added`` gives what ``replace_attributes`` gives on this Dagster (checked once per
    process on a spec with deps, kinds, tags, owners and metadata); else the checked path."""
    try:
        from dagster import AssetDep, AssetKey

        spec = AssetSpec(AssetKey(["probe", "a"]), deps=[AssetDep("up"), AssetKey(["probe", "b"])],
                         kinds={"dbt", "duckdb"}, tags={"layer": "staging"}, owners=["team:x"],
                         metadata={"m": 1}, group_name="g", description="d")
        kw = {"metadata": {**spec.metadata, "sla/tier": "high"},
              "tags": {**{k: v for k, v in spec.tags.items() if not k.startswith(_KIND_PREFIX)},
                       "sla/tier": "high"},
              "owners": [*spec.owners, "a@b.com"],
              "freshness_policy": _time_window_freshness(timedelta(hours=2))}
        fast = _replace_added(spec, kw, {"sla/tier": "high"}, ["a@b.com"])
        checked = _replace_checked(spec, kw)
        return type(fast) is type(checked) and fast == checked and fast.kinds == checked.kinds
    except Exception:
        return False


def apply_sla_to_spec(spec: AssetSpec, resolution: Resolution) -> AssetSpec:
    """The spec with its SLA merged in (metadata, tags and owners added; the freshness policy
    set unless the spec has one): one new AssetSpec, as merge_attributes + replace_attributes
    would give, built and validated once instead of twice (and only the added attributes
    validated, ``_replace_added``)."""
    attrs = sla_attributes(resolution, spec.key.to_user_string())
    if attrs is None:
        return spec
    new_owners = [o for o in attrs.owners if o not in (spec.owners or [])]
    kw: dict[str, object] = {
        "metadata": {**spec.metadata, **attrs.metadata},
        "tags": {**{k: v for k, v in spec.tags.items() if not k.startswith(_KIND_PREFIX)}, **attrs.tags},
        "owners": [*spec.owners, *new_owners],
    }
    if attrs.freshness_policy is not None and spec.freshness_policy is None:
        kw["freshness_policy"] = attrs.freshness_policy
    if _fast_replace_ok():
        return _replace_added(spec, kw, attrs.tags, new_owners)
    return _replace_checked(spec, kw)


def apply_sla_to_specs(specs: Iterable[AssetSpec], resolution: Resolution) -> list[AssetSpec]:
    """Every governed spec gets its SLA; invalid policies leave every spec unchanged."""
    return [apply_sla_to_spec(spec, resolution) for spec in specs]


def policy_status_metadata(resolution: Resolution) -> dict[str, str]:
    """Definitions-level metadata: shows in the UI whether policies apply and why not."""
    if resolution.ok:
        return {
            "sla_policies/status": "ok",
            "sla_policies/governed_assets": str(len(resolution.slas)),
            "sla_policies/cannot_meet": "; ".join(i.message for i in resolution.infeasible) or "none",
        }
    return {
        "sla_policies/status": "invalid: not applied",
        "sla_policies/errors": "\n".join(str(e) for e in resolution.errors[:50]),
    }


def load_resolution(
    graph: AssetGraph,
    paths: Sequence[str | Path] = ("policies",),
    durations: DurationModel | None = None,
    unavailable_kinds: Iterable[str] = (),
) -> Resolution:
    """Load and resolve policies for the code location. Never raises. Policies selecting a kind
    in ``unavailable_kinds`` (a connector API down, nothing cached) are disabled, not fatal."""
    return load_and_resolve(paths, graph, durations, unavailable_kinds=unavailable_kinds)
