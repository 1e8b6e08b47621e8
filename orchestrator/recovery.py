"""Failure-driven recovery: what the failure sensor, the planning sensor, ``orchestrator plan``
and the digest share so that they see one graph, one diagnosis per failure and one config.

* ``cycle_configs()``: the planner and gate configs of every decision cycle, from the settings
  (``ORCHESTRATOR_AUTOMATION`` caps the rollout: auto | recommend | shadow;
  ``ORCHESTRATOR_BACKOFF_SCALE`` scales the prescribed retry backoff, for benchmarks);
* ``stored_diagnoses(store, failure_ids)``: the diagnoses the failure sensor recorded
  (``failure.diagnosed`` audit events), so a cycle reuses them instead of diagnosing again;
* ``failure_assets(failure, graph)``: every asset a failure touched (all the tables of a
  connector for a connector failure or a failed step of a connector's multi-asset), the one
  attribution the UI observations, the store and the digest use;
* ``stale_reason(...)``: why a pending proposal can no longer be asked of a person (its
  connector's credentials/grants/setup are broken: the repair is the ask; or its assets were
  refreshed successfully after it was proposed).

No Dagster imports (decision-core rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone

from orchestrator.core.graph import CONNECTOR_TABLE
from orchestrator.core.records import DiagnosedFailure, FailureRecord
from orchestrator.core.vocab import PAUSE_AND_ESCALATE, RUN_ACTION_VALUES

UTC = timezone.utc
AUTOMATION_MODES = ("auto", "recommend", "shadow")


def automation_mode(settings=None) -> str:
    if settings is None:
        from orchestrator.settings import Settings

        settings = Settings()
    return settings.automation


def cycle_configs(settings=None):
    """(PlannerConfig, GateConfig) for a decision cycle under the current settings."""
    from orchestrator.core.vocab import Backoff
    from orchestrator.planning.gate import GateConfig
    from orchestrator.planning.planner import PlannerConfig

    if settings is None:
        from orchestrator.settings import Settings

        settings = Settings()
    planner = PlannerConfig()
    scale = float(settings.backoff_scale)
    if scale != 1.0:
        planner = replace(planner, backoff={
            k: Backoff(b.base_s * scale, b.factor, b.max_attempts, b.cap_s * scale) for k, b in planner.backoff.items()})
    mode = settings.automation
    gate = GateConfig(rollout_cap=None if mode == "auto" else mode)
    return planner, gate


def prescribed_backoff_s(category: str, attempt: int = 1, settings=None) -> float | None:
    """The backoff the failure class prescribes before retry ``attempt`` (after the scale)."""
    planner, _ = cycle_configs(settings)
    b = planner.backoff.get(category) or planner.backoff.get("unknown")
    return None if b is None else b.delay_s(attempt)


def connector_of(f: FailureRecord, graph) -> str | None:
    if f.connector:
        return f.connector
    if f.asset_key and f.asset_key in graph:
        return graph.node(f.asset_key).connector
    return None


def failure_assets(f: FailureRecord, graph) -> list[str]:
    """Every asset the failure touched: a connector's failure (a failed sync, or a failed step of
    its multi-asset) touches all its tables; any other failure its own asset."""
    conn = connector_of(f, graph)
    if conn:
        tables = sorted(n.key for n in graph if n.connector == conn and n.role == CONNECTOR_TABLE)
        if tables:
            return tables
    return [f.asset_key] if f.asset_key else []


def failure_subject(f: FailureRecord, graph) -> str:
    """The one name a failure is attributed to (UI, store, digest): its connector when it is a
    connector's failure, else its asset (else its run)."""
    return connector_of(f, graph) or f.asset_key or f.run_id or "?"


def stored_diagnoses(store, failure_ids: Iterable[str]) -> dict[str, DiagnosedFailure]:
    """failure id -> the diagnosis the failure sensor stored (``failure.diagnosed``); roots only."""
    from sqlalchemy import select

    from orchestrator.store.models import AuditEvent

    ids = sorted({i[:255] for i in failure_ids})
    out: dict[str, DiagnosedFailure] = {}
    if not ids:
        return out
    with store.session() as s:
        for i in range(0, len(ids), 500):
            rows = s.scalars(select(AuditEvent).where(AuditEvent.kind == "failure.diagnosed",
                                                      AuditEvent.subject.in_(ids[i:i + 500]))).all()
            for r in rows:
                p = r.payload or {}
                if p.get("root"):
                    continue
                at = p.get("at")
                f = FailureRecord(failure_id=r.subject, at=datetime.fromisoformat(at) if at else r.ts,
                                  message="", system=str(p.get("system") or ""))
                out[r.subject] = DiagnosedFailure(
                    failure=f, category=str(p.get("category") or "unknown"), transient=bool(p.get("transient")),
                    confidence=float(p.get("confidence") or 0.0), evidence=tuple(p.get("evidence") or ()))
    return out


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def blocked_connectors(failures: Iterable[DiagnosedFailure], last_success: Mapping[str, datetime], graph,
                       paused: Iterable[str] = ()) -> dict[str, str]:
    """connector -> why a run of it cannot succeed now: its latest root failure needs a person
    (credentials, grants, setup) and nothing of it succeeded since."""
    latest: dict[str, DiagnosedFailure] = {}
    for d in failures:
        if d.root_failure_id:
            continue
        conn = connector_of(d.failure, graph)
        if conn and (conn not in latest or _aware(d.failure.at) > _aware(latest[conn].failure.at)):
            latest[conn] = d
    out: dict[str, str] = {}
    for conn, d in latest.items():
        if d.category not in PAUSE_AND_ESCALATE:
            continue
        tables = [n.key for n in graph if n.connector == conn]
        if any((ls := last_success.get(k)) is not None and _aware(ls) > _aware(d.failure.at) for k in tables):
            continue
        out[conn] = (f"{conn}: {d.category} since {_aware(d.failure.at):%Y-%m-%d %H:%M} UTC; "
                     "the repair is the ask, not the run")
    for conn in paused:
        out.setdefault(conn, f"{conn} is paused; a run of it cannot sync")
    return out


def stale_reason(action_type: str, asset_keys: Iterable[str], connector: str | None, created_at: datetime | None,
                 *, graph, blocked: Mapping[str, str], last_success: Mapping[str, datetime]) -> str | None:
    """Why a pending proposal should not be asked of a person any more (None: still a valid ask).

    * a run (materialize, retry, backfill) of a connector whose credentials/grants/setup are
      broken cannot succeed: the repair is the ask;
    * a run whose every asset materialized successfully after it was proposed is already done."""
    if action_type not in RUN_ACTION_VALUES:
        return None
    keys = list(asset_keys)
    conns = {graph.node(k).connector for k in keys if k in graph and graph.node(k).connector}
    if connector:
        conns.add(connector)
    for c in sorted(conns):
        if c in blocked:
            return f"cannot succeed: {blocked[c]}"
    created = _aware(created_at)
    if keys and created is not None:
        done = [_aware(last_success.get(k)) for k in keys]
        if all(t is not None and t > created for t in done):
            return f"already done: {', '.join(keys[:3])} refreshed successfully at {max(done):%Y-%m-%d %H:%M} UTC"
    return None


RELAUNCH_OWNER = "failure_diagnosis_sensor:"  # owner prefix of the launches the failure sensor wrote ahead


def unlaunched_runs(store, *, started_before: datetime, owner_prefix: str = RELAUNCH_OWNER,
                    max_relaunches: int = 10) -> list[dict]:
    """Run launches a previous tick of one sensor wrote ahead (``calling``, owner ``owner_prefix``...)
    that are still open: their RunRequest left that tick, but no run may have been created (the
    daemon timed out on the code server, the evaluation's answer was lost). Ticks of one sensor
    run one after another, so a launch started before this tick is one whose tick is over.
    A launch requested again ``max_relaunches`` times is left to the execution sensor.
    Returns [{"execution_id", "action_id", "run_key", "lease_until", "payload", "relaunches"}]."""
    from sqlalchemy import select

    from orchestrator.store.agent_models import ActionRow, ExecutionRow

    out = []
    with store.session() as s:
        for ex in s.scalars(select(ExecutionRow).where(ExecutionRow.status == "calling", ExecutionRow.kind == "run",
                                                       ExecutionRow.owner.like(f"{owner_prefix}%"))).all():
            if not ex.run_key or _aware(ex.started_at) >= _aware(started_before):
                continue
            row = s.get(ActionRow, ex.action_id)
            if row is None or row.status not in ("approved", "executing"):
                continue
            relaunches = int((ex.detail or {}).get("relaunches", 0)) if isinstance(ex.detail, dict) else 0
            if relaunches >= max_relaunches:  # left to the execution sensor's lease takeover
                continue
            out.append({"execution_id": ex.id, "action_id": ex.action_id, "run_key": ex.run_key,
                        "lease_until": ex.lease_until, "payload": row.payload, "relaunches": relaunches,
                        "detail": ex.detail})
    return out


def retake_launch(store, launch: dict, *, owner: str, now: datetime, lease_s: float = 120.0) -> bool:
    """Take the launch over for this tick (a new lease, conditionally on the one read: one taker,
    the execution sensor's stale-lease takeover included); audited. False: someone else did."""
    from datetime import timedelta

    from sqlalchemy import update

    from orchestrator.store.agent_models import ExecutionRow

    lease = launch["lease_until"]
    with store.session() as s:
        store.lock(s)  # the audit chain and the execution sensor's takeover: one writer
        taken = s.execute(update(ExecutionRow).where(
            ExecutionRow.id == launch["execution_id"], ExecutionRow.status == "calling",
            ExecutionRow.lease_until.is_(None) if lease is None else ExecutionRow.lease_until == lease,
        ).values(lease_until=now + timedelta(seconds=lease_s), owner=owner[:128],
                 detail={**(launch["detail"] if isinstance(launch.get("detail"), dict) else {}), "relaunches": launch.get("relaunches", 0) + 1})).rowcount
        if taken:
            store.audit(s, "execution", actor="failure_diagnosis_sensor", subject=f"action:{launch['action_id']}",
                        ts=now, payload={"kind": "run", "status": "calling", "run_keys": [launch["run_key"]],
                                         "relaunched": launch.get("relaunches", 0) + 1,
                                         "why": "no run was created for the request of the previous tick"})
    return bool(taken)


def withdraw_stale(props, snapshot, failures: Iterable[DiagnosedFailure], *, now: datetime | None = None,
                   actor: str = "orchestrator") -> dict[str, str]:
    """Pending proposals no person should be asked about any more (``stale_reason``: their
    connector's credentials/grants/setup are broken, or their assets were refreshed since) are
    withdrawn in the store (status ``withdrawn``, the reason, a ``withdrawal`` audit event).
    Returns action id -> reason for those withdrawn now. Called by every decision cycle (the
    failure-driven one, the planning sensor) and the digest."""
    from sqlalchemy import select

    from orchestrator.store.agent_models import ActionRow

    now = now or datetime.now(UTC)
    blocked = blocked_connectors(failures, snapshot.last_success, snapshot.graph,
                                 getattr(snapshot, "paused_connectors", None) or ())
    with props.store.session() as s:
        rows = [(r.id, r.type, r.payload or {}, r.created_at)
                for r in s.scalars(select(ActionRow).where(ActionRow.status == "pending")).all()]
    out: dict[str, str] = {}
    for aid, typ, payload, created in rows:
        why = stale_reason(typ, payload.get("asset_keys") or (), payload.get("connector"), created,
                           graph=snapshot.graph, blocked=blocked, last_success=snapshot.last_success)
        if why and props.withdraw(aid, why, actor=actor, now=now):
            out[aid] = why
    return out
