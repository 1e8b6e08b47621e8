"""Freshness SLA sensor: ok / at_risk / breached for every governed asset, as asset checks.

Every asset governed by a deadline or a max_lag gets an ``sla_freshness`` check. The sensor
(every 60 s) reads a snapshot of the instance and the connectors (running syncs count as in
flight, whoever started them), assesses it (``orchestrator.assessment.assess_freshness``) and
reports check evaluations: WARN for at_risk, ERROR for breached, passed for ok (recoveries
included), with metadata deadline, predicted_ready, slack_s, blocking_asset, policy, tier,
data_time (the time its data is current as of) and data_held_back_by (the input it inherits it from).
Only changes are reported (cursor), plus a refresh when an at-risk asset's slack moves by more
than 10 minutes. The check can also be executed from the UI (same computation, in a run).

The cursor stays small however many assets are bad (61,000 at 100,000 assets on a bad day was
~4 MB of JSON written with every tick): what was last reported per non-ok asset is a *base*
(zlib-compressed JSON in the instance's key-value store, addressed by its digest, the last
``KEEP_BASES`` kept) plus the entries changed since (``delta``, at most ``MAX_DELTA``; past that
the current map becomes the new base). The process keeps the map it last saved, so a tick reads
neither when the cursor is the one it wrote. A base that cannot be found any more (a wiped
instance) starts over as a first tick: every status reported once more, with a warning.
"""

import base64
import hashlib
import json
import logging
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

import dagster as dg

from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.fivetran import FivetranWorkspaceResource

from orchestrator.assessment import assess_freshness
from orchestrator.assessment.freshness import history_reach
from orchestrator.core.datatime import data_time_text
from orchestrator.core.records import FreshnessAssessment, FreshnessStatus, Snapshot
from . import ProjectContext
from ._checks import multi_asset_check

UTC = timezone.utc
CHECK_NAME = "sla_freshness"
SENSOR_NAME = "sla_freshness_sensor"
RESLACK_S = 600.0
MAX_DELTA = 200  # entries changed since the base the cursor carries at most
KEEP_BASES = 3  # bases kept per sensor: the cursor's, and those of cursors not committed yet
KV_PREFIX = "orchestrator/sla_freshness"
log = logging.getLogger(__name__)


def governed_keys(ctx: ProjectContext) -> list[str]:
    res = ctx.resolution
    if res is None or not res.ok:
        return []
    known = {k.to_user_string() for k in ctx.asset_specs} if ctx.asset_specs else set(ctx.graph.keys)
    return sorted(k for k, sla in res.slas.items() if (sla.deadline or sla.max_lag) and k in known)


def _default_durations(snapshot: Snapshot):
    from orchestrator.policies import DurationModel

    return DurationModel(snapshot.durations)


def check_metadata(a: FreshnessAssessment) -> dict:
    return {
        "status": a.status.value,
        "deadline": a.deadline.isoformat() if a.deadline else "",
        "predicted_ready": a.predicted_ready.isoformat() if a.predicted_ready else "",
        "slack_s": float(a.slack_s) if a.slack_s is not None else float("nan"),
        "blocking_asset": a.blocking_asset or "",
        "policy": a.policy or "",
        "tier": a.tier,
        "data_time": data_time_text(a.data_time) if getattr(a, "data_time", None) else "",
        "data_held_back_by": getattr(a, "data_held_by", None) or "",
    }


def evaluation(a: FreshnessAssessment, recovered: bool = False) -> dg.AssetCheckEvaluation:
    passed = a.status is FreshnessStatus.ok
    severity = dg.AssetCheckSeverity.WARN if a.status is FreshnessStatus.at_risk else dg.AssetCheckSeverity.ERROR
    reason = ("recovered: " if recovered else "") + a.reason
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey.from_user_string(a.asset_key),
        check_name=CHECK_NAME,
        passed=passed,
        severity=severity,
        metadata={**check_metadata(a), "recovered": recovered},
        description=reason[:2000],
    )


def freshness_tick(
    instance: dg.DagsterInstance,
    ctx: ProjectContext,
    state: dict,
    *,
    now: datetime,
    repository_def=None,
    connectors=None,
    durations: Callable[[Snapshot], object] = _default_durations,
    scope: str | None = None,
) -> tuple[dict[str, FreshnessAssessment], list[dg.AssetCheckEvaluation], dict]:
    """One tick: (assessments, evaluations to report, new cursor state). ``state``: what the last
    tick returned (``{}``: the first tick, every status reported). ``scope`` names the sensor
    whose bases go into ``instance``'s key-value store (``report_changes``); None: the whole
    map stays in the state (a bounded cursor needs a scope)."""
    from orchestrator.snapshot import build_snapshot

    keys = set(governed_keys(ctx))
    snap = build_snapshot(instance, ctx.graph, now=now, repository_def=repository_def,
                          connectors=connectors, failures=False, reach=history_reach(ctx.resolution, now))
    out = assess_freshness(snap, ctx.resolution, durations(snap), now)
    store = BaseStore(instance, scope) if scope else None
    reported, new_state = report_changes(out, keys, state, store)
    return out, [evaluation(a, recovered=rec) for a, rec in reported], new_state


def report_changes(out: Mapping[str, FreshnessAssessment], keys, state: dict, store: "BaseStore | None" = None,
                   *, max_delta: int = MAX_DELTA) -> tuple[list[tuple[FreshnessAssessment, bool]], dict]:
    """What to report ((assessment, recovered) in key order) and the new cursor state: a non-ok
    status reported when it is new, changed, or its slack moved more than ``RESLACK_S`` since it
    was last reported; an ok one when it was not ok before (recovered); everything on the first
    tick. The state: ``{"init", "v": 2, "base", "delta", "id"}`` (``_load_bad``), or a cursor of
    the first format (``{"init", "bad": {key: [status, slack]}}``), read once."""
    bad_before = _load_bad(state, store)
    first = not state.get("init") or bad_before is None
    if bad_before is None:
        bad_before = {}
    reported: list[tuple[FreshnessAssessment, bool]] = []
    bad_now: dict[str, list] = {}
    for key in sorted(keys & out.keys()):
        a = out[key]
        before = bad_before.get(key)
        if a.status is not FreshnessStatus.ok:
            bad_now[key] = [a.status.value, a.slack_s]
            if first or before is None or before[0] != a.status.value or (
                a.slack_s is not None and before[1] is not None and abs(a.slack_s - before[1]) > RESLACK_S
            ):
                reported.append((a, False))
            elif before is not None:
                bad_now[key] = before  # keep the slack that was last reported
        elif first or before is not None:
            reported.append((a, before is not None))
    return reported, _save_bad(state, bad_before, bad_now, store, max_delta=max_delta)


# -- the cursor: a base in the key-value store plus what changed since -------------------------

_SAVED: OrderedDict[str, dict] = OrderedDict()  # state id -> the map it stands for (this process)
_BASES: OrderedDict[str, dict] = OrderedDict()  # base digest -> its map (this process)
_CACHE_LOCK = threading.Lock()


def _remember(cache: OrderedDict, key: str, value: dict, keep: int = 2) -> None:
    with _CACHE_LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > keep:
            cache.popitem(last=False)


class BaseStore:
    """Bases (what was last reported per non-ok asset) in the instance's key-value store
    (``run_storage.get/set_cursor_values``), by digest, the last ``KEEP_BASES`` per scope."""

    def __init__(self, instance, scope: str):
        self.storage = getattr(instance, "run_storage", None)
        self.scope = scope
        self.writes = 0

    @property
    def usable(self) -> bool:
        return self.storage is not None and hasattr(self.storage, "set_cursor_values")

    def _key(self, digest: str) -> str:
        return f"{KV_PREFIX}/{self.scope}/base/{digest}"

    def get(self, digest: str) -> dict | None:
        with _CACHE_LOCK:
            hit = _BASES.get(digest)
        if hit is not None:
            return hit
        if not self.usable:
            return None
        raw = self.storage.get_cursor_values({self._key(digest)}).get(self._key(digest))
        if not raw:
            return None
        bad = json.loads(zlib.decompress(base64.b64decode(raw)))
        _remember(_BASES, digest, bad)
        return bad

    def put(self, bad: dict, pin: str | None = None) -> str:
        """Store ``bad`` as a base; ``pin``: the base of the cursor this tick started from, kept
        whatever else goes (ticks whose cursors are never committed all start from it again, and
        each of them writes a base of its own)."""
        text = json.dumps(bad, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        index_key = f"{KV_PREFIX}/{self.scope}/bases"
        held = json.loads(self.storage.get_cursor_values({index_key}).get(index_key) or "[]")
        pairs = {self._key(digest): base64.b64encode(zlib.compress(text.encode(), 6)).decode()}
        pinned = [pin] if pin in held and pin != digest else []
        others = [d for d in held if d != digest and d not in pinned]
        keep = others[len(others) - max(0, KEEP_BASES - 1 - len(pinned)):] + pinned + [digest]
        for old in held:
            if old not in keep:
                pairs[self._key(old)] = ""  # emptied: the store has no delete
        pairs[index_key] = json.dumps(keep)  # last: it names only bases that are stored
        for key, value in pairs.items():
            # one key a call: Dagster's SQL store updates only when one key of a call exists
            # (the INSERT fails as a whole), so a new key beside an existing one would be lost
            self.storage.set_cursor_values({key: value})
        self.writes += 1
        _remember(_BASES, digest, bad)
        return digest


def _load_bad(state: dict, store: "BaseStore | None") -> dict | None:
    """What was last reported per non-ok asset, from a cursor state; None: not known (a base
    that cannot be found: start over)."""
    if "bad" in state:  # the first format: the whole map in the cursor
        return dict(state["bad"])
    if not state.get("init"):
        return {}
    with _CACHE_LOCK:
        hit = _SAVED.get(state.get("id") or "")
    if hit is not None:
        return hit
    digest = state.get("base")
    base: dict | None = {}
    if digest:
        base = store.get(digest) if store is not None else None
        if base is None:
            log.warning("%s: the cursor's base %s is gone from the instance's key-value store; every "
                        "freshness status is reported again", SENSOR_NAME, digest)
            return None
    bad = dict(base)
    for key, value in (state.get("delta") or {}).items():
        if value is None:
            bad.pop(key, None)
        else:
            bad[key] = value
    return bad


def _save_bad(state: dict, before: dict, bad: dict, store: "BaseStore | None", *, max_delta: int) -> dict:
    """The cursor state for ``bad`` (``before``: the map ``state`` stands for): the previous
    base plus the entries that differ from it, or a new base when they are more than
    ``max_delta`` or the previous base is not known (without a usable store: no base, the whole
    map in the delta, as big as the first format's)."""
    digest = state.get("base") if state.get("v") == 2 and state.get("init") else None
    started_from = digest
    base = (store.get(digest) if store is not None else None) if digest else {}
    if base is None:  # gone: the delta would mean nothing
        digest, base, delta = None, {}, {k: v for k, v in bad.items()}
    elif state.get("v") == 2 and state.get("init"):
        delta = dict(state.get("delta") or {})
        for k in before:
            if k not in bad:
                if k in base:
                    delta[k] = None
                else:
                    delta.pop(k, None)
        for k, v in bad.items():
            if before.get(k) != v:
                if base.get(k) == v:
                    delta.pop(k, None)
                else:
                    delta[k] = v
    else:  # the first tick, or a cursor of the first format: no base yet
        delta = dict(bad)
    if len(delta) > max_delta and store is not None and store.usable:
        digest, delta = store.put(bad, pin=started_from), {}
    new = {"init": True, "v": 2, "base": digest, "delta": delta, "id": uuid.uuid4().hex}
    _remember(_SAVED, new["id"], bad)
    return new


def build_freshness_sensor(
    ctx: ProjectContext,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    durations: Callable[[Snapshot], object] = _default_durations,
    minimum_interval_seconds: int = 60,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Freshness SLAs: ok / at_risk / breached per governed asset, as sla_freshness checks.",
    )
    def sla_freshness_sensor(context: dg.SensorEvaluationContext, fivetran: FivetranWorkspaceResource,
                            airbyte: AirbyteWorkspaceResource):
        if ctx.resolution is None or not ctx.resolution.ok:
            return dg.SkipReason(getattr(ctx.resolution, "skip_reason", None) or "no SLA policies")
        from orchestrator.snapshot import ConnectorReader

        state = json.loads(context.cursor) if context.cursor else {}
        _, events, new_state = freshness_tick(
            context.instance, ctx, state, now=clock(), repository_def=context.repository_def,
            connectors=ConnectorReader(fivetran=fivetran, airbyte=airbyte), durations=durations,
            scope=f"{SENSOR_NAME}@{getattr(context, 'repository_name', None) or ''}",
        )
        if not events:
            return dg.SensorResult(cursor=json.dumps(new_state), skip_reason="no freshness change")
        return dg.SensorResult(asset_events=events, cursor=json.dumps(new_state))

    return sla_freshness_sensor


def build_freshness_checks(ctx: ProjectContext):
    keys = governed_keys(ctx)
    if not keys:
        return []
    specs = [
        dg.AssetCheckSpec(CHECK_NAME, asset=dg.AssetKey.from_user_string(k),
                          description="Freshness SLA: ok / at risk (WARN) / breached (ERROR) "
                                      "from the effective deadline and the predicted ready time.")
        for k in keys
    ]

    @multi_asset_check(specs=specs, can_subset=True, name="sla_freshness_checks")
    def sla_freshness_checks(context):
        wanted = {k.asset_key.to_user_string() for k in context.selected_asset_check_keys}
        out, _, _ = freshness_tick(context.instance, ctx, {}, now=datetime.now(UTC))
        for key in sorted(wanted):
            a = out.get(key)
            if a is None:
                yield dg.AssetCheckResult(asset_key=dg.AssetKey.from_user_string(key),
                                          check_name=CHECK_NAME, passed=True,
                                          metadata={"status": "not governed"})
                continue
            ev = evaluation(a)
            yield dg.AssetCheckResult(asset_key=ev.asset_key, check_name=CHECK_NAME, passed=ev.passed,
                                      severity=ev.severity, metadata=check_metadata(a),
                                      description=ev.description)

    return [sla_freshness_checks]


def definitions(ctx: ProjectContext) -> dg.Definitions:
    return dg.Definitions(asset_checks=build_freshness_checks(ctx), sensors=[build_freshness_sensor(ctx)])
