"""Failure sensor: run failures and failed connector syncs (including syncs Dagster did not
start), linked to their root cause, diagnosed once, remembered, and shown in the UI.

Each tick (every ``ORCHESTRATOR_FAILURE_INTERVAL`` s, default 15) reads the failures of the last ``WINDOW`` from the instance (step and run
failures, with dbt and vendor messages) and from the connector APIs (Fivetran connector
``failed_at`` + tasks/warnings/setup tests, Airbyte jobs + config-API failure reasons), links
downstream failures to their root (``orchestrator.assessment.link_root_causes``), diagnoses the
roots (rules + failure memory) and, for failures not reported before (cursor):

* records them: ``FailureMemory.observe`` (counted, never self-labelled) and an append-only
  ``failure.diagnosed`` audit event in the project store;
* shows them: an ``AssetObservation`` on each affected asset (category, transient, confidence,
  evidence, root) and, on connector tables, a ``connector_sync`` check (ERROR while the latest
  sync failed, passed again after a success).

It also emits ``AssetMaterialization``s for successful Airbyte and Fivetran syncs that Dagster did
not start (the connector's own schedule, its UI, another tool), so those tables do not look stale.

**Failure-driven, once** (``recovery_cycle``): when a tick stores a new root failure, the same
evaluation runs one decision cycle (``Proposals.run_cycle`` -> ``orchestrator.core.decide``) on a
full snapshot with the stored diagnoses (not diagnosed again), records it, and returns the
RunRequests of the run actions the gate let execute that are due now; the execution sensor
launches the backed-off ones when their ``not_before`` comes. Dagster's own run retries are not
used: they would retry every failure class at once (a 401, a rate limit before its Retry-After),
outside the class's attempts, the circuit breaker and the proposals, and a failed sync Dagster did
not start has no run to retry.
"""

import json
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import dagster as dg

from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.fivetran import FivetranWorkspaceResource

from orchestrator.assessment import diagnose_failures, link_root_causes
from orchestrator.core.graph import CONNECTOR_TABLE
from orchestrator.core.records import DiagnosedFailure, SyncRecord
from orchestrator.recovery import failure_assets, failure_subject
from . import ProjectContext
from ._checks import multi_asset_check

log = logging.getLogger(__name__)
UTC = timezone.utc
SENSOR_NAME = "failure_diagnosis_sensor"
CHECK_NAME = "connector_sync"
WINDOW = timedelta(hours=6)


def _evidence(d: DiagnosedFailure | None) -> list[str]:
    """The diagnosis' evidence as it may leave the process (credentials and personal data scrubbed)."""
    from orchestrator.scrubbing import scrub_pii

    return [scrub_pii(str(e)) for e in (d.evidence if d else ())]


def _observation_metadata(d: DiagnosedFailure, subject: str = "", assets: list[str] | None = None) -> dict:
    from orchestrator.diagnosis.summaries import summarize
    from orchestrator.scrubbing import scrub_pii

    f = d.failure
    evidence = _evidence(d)
    s = summarize(d.category, evidence, f.system, d.transient)
    return {
        "failure/subject": subject or f.asset_key or f.connector or "",
        "failure/assets": ", ".join(assets or ([f.asset_key] if f.asset_key else [])),
        "failure/summary": dg.MetadataValue.text(scrub_pii(str(s["summary"]))),
        "failure/remediation": dg.MetadataValue.md("\n".join(f"1. {step}" for step in s["remediation"])),
        "failure/category": d.category,
        "failure/transient": d.transient,
        "failure/confidence": float(d.confidence),
        "failure/evidence": dg.MetadataValue.md("\n".join(f"- {e}" for e in evidence) or "-"),
        "failure/message": dg.MetadataValue.text(scrub_pii(f.message)[:2000]),
        "failure/system": f.system,
        "failure/id": f.failure_id,
        "failure/root": d.root_failure_id or "",
        "failure/run_id": f.run_id or "",
        "failure/connector": f.connector or "",
        "failure/at": f.at.isoformat(),
    }


def _sync_check_metadata(conn: str, s: SyncRecord, d: DiagnosedFailure | None) -> dict:
    """The ``connector_sync`` check's metadata for a failed sync (the vendor's message scrubbed)."""
    from orchestrator.scrubbing import scrub_pii

    return {"sync_id": s.sync_id, "triggered_by": s.triggered_by, "connector": conn,
            "category": d.category if d else "unknown",
            "transient": bool(d.transient) if d else False,
            "evidence": dg.MetadataValue.md("\n".join(f"- {e}" for e in _evidence(d)) or "-"),
            "message": scrub_pii(s.error_message or "")[:2000]}


def _record_diagnosis(store, memory, d: DiagnosedFailure, now: datetime, *, subject: str | None = None,
                      assets: list[str] | None = None) -> bool:
    """Record one diagnosis exactly once per failure id, whatever crashed before: the
    ``diagnosed_failures`` row (failure id primary key), the memory's occurrence and the
    ``failure.diagnosed`` audit event commit together. False when it was already recorded."""
    from orchestrator.store.agent_models import DiagnosedFailureRow

    f = d.failure
    fid = f.failure_id[:255]
    with store.session() as s:
        store.lock(s)  # serialises concurrent ticks; the primary key makes it once regardless
        if s.get(DiagnosedFailureRow, fid) is not None:
            return False
        s.add(DiagnosedFailureRow(failure_id=fid, category=d.category, at=now))
        s.flush()
        from orchestrator.diagnosis.rules import CATEGORIES

        if memory is not None and d.root_failure_id is None and f.message.strip() and d.category in CATEGORIES:
            memory.observe(f.message, d.category, confidence=d.confidence, system=f.system,
                           external_id=f.failure_id, session=s)
        store.audit(s, "failure.diagnosed", actor=SENSOR_NAME, subject=fid, payload={
            "category": d.category, "transient": d.transient, "confidence": d.confidence,
            "evidence": _evidence(d), "root": d.root_failure_id, "system": f.system,
            "asset_key": f.asset_key, "connector": f.connector, "run_id": f.run_id,
            "at": f.at.isoformat(), "subject": subject or f.asset_key or f.connector,
            "assets": list(assets if assets is not None else ([f.asset_key] if f.asset_key else [])),
        })
    return True


DIAGNOSES = None  # orchestrator.snapshot.DiagnosisCache, kept across ticks of this process


def failures_tick(
    instance: dg.DagsterInstance,
    ctx: ProjectContext,
    state: dict,
    *,
    now: datetime,
    repository_def=None,
    connectors=None,
    memory=None,
    store=None,
) -> tuple[list[DiagnosedFailure], list, dict]:
    """(newly reported diagnosed failures, asset events, new cursor state). ``state``:
    {"seen": {failure_id: epoch}, "bad": {connector: sync_id}, "ab": {connection: last job id}}."""
    from orchestrator.snapshot import build_snapshot

    global DIAGNOSES
    if DIAGNOSES is None:
        from orchestrator.snapshot import DiagnosisCache

        DIAGNOSES = DiagnosisCache()
    graph = ctx.graph
    snap = build_snapshot(instance, graph, now=now, since=now - WINDOW, repository_def=repository_def,
                          connectors=connectors, history=False, last_success=False)
    roots = link_root_causes(snap.failures, graph)
    diagnosed = DIAGNOSES.diagnose(snap.failures, graph, memory, roots=roots)  # once per failure id
    seen: dict[str, float] = {k: v for k, v in state.get("seen", {}).items() if v >= (now - 2 * WINDOW).timestamp()}
    events: list = []
    new: list[DiagnosedFailure] = []
    tables_of: dict[str, list[str]] = defaultdict(list)
    for node in graph:
        if node.connector:
            tables_of[node.connector].append(node.key)
    for d in sorted(diagnosed, key=lambda d: d.failure.at):
        f = d.failure
        if f.failure_id in seen:
            continue
        # one attribution everywhere (UI, store, digest): every asset the failure touched
        keys = [k for k in failure_assets(f, graph) if k in graph]
        subject = failure_subject(f, graph)
        if store is not None:
            try:
                _record_diagnosis(store, memory, d, now, subject=subject, assets=keys)
            except Exception as exc:  # noqa: BLE001 - store down: not marked seen, retried next tick
                log.warning("failure %s not recorded (store unavailable: %s); retried next tick",
                            f.failure_id, str(exc)[:300])
                continue
        elif memory is not None and d.root_failure_id is None and f.message.strip():
            try:
                memory.observe(f.message, d.category, confidence=d.confidence, system=f.system,
                               external_id=f.failure_id)
            except Exception as exc:  # noqa: BLE001 - the UI still shows it
                log.warning("failure memory unavailable: %s", exc)
        seen[f.failure_id] = f.at.timestamp()
        new.append(d)
        meta = _observation_metadata(d, subject, keys)
        for key in keys:
            events.append(dg.AssetObservation(asset_key=dg.AssetKey.from_user_string(key), metadata=meta,
                                              description=f"{d.category}: {f.message[:300]}"))

    # connector health checks: the latest terminal sync of each connector
    bad: dict[str, str] = dict(state.get("bad", {}))
    latest: dict[str, SyncRecord] = {}
    for s in snap.syncs:
        if s.status in ("succeeded", "failed", "cancelled"):
            cur = latest.get(s.connector)
            if cur is None or (s.ended_at or s.started_at) > (cur.ended_at or cur.started_at):
                latest[s.connector] = s
    by_sync = {d.failure.failure_id: d for d in diagnosed}
    for conn, s in latest.items():
        tables = [k for k in tables_of.get(conn, []) if graph.node(k).role == CONNECTOR_TABLE]
        if s.status == "failed" and bad.get(conn) != s.sync_id:
            bad[conn] = s.sync_id
            d = by_sync.get(f"sync:{conn}:{s.sync_id}")
            meta = _sync_check_metadata(conn, s, d)
            for key in tables:
                events.append(dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey.from_user_string(key), check_name=CHECK_NAME, passed=False,
                    severity=dg.AssetCheckSeverity.ERROR, metadata=meta,
                    description=f"latest sync failed ({meta['category']}, {s.triggered_by})"))
        elif s.status == "succeeded" and conn in bad:
            del bad[conn]
            for key in tables:
                events.append(dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey.from_user_string(key), check_name=CHECK_NAME, passed=True,
                    metadata={"sync_id": s.sync_id, "triggered_by": s.triggered_by, "connector": conn},
                    description="latest sync succeeded (recovered)"))

    # successful Airbyte syncs Dagster did not start: dagster-airbyte would never see them
    ab: dict[str, int] = dict(state.get("ab", {}))
    for s in sorted(snap.syncs, key=lambda s: s.started_at):
        if not s.connector.startswith("airbyte:") or s.status != "succeeded" or not s.sync_id.isdigit():
            continue
        job = int(s.sync_id)
        if job <= ab.get(s.connector, -1):
            continue
        ab[s.connector] = job
        if s.triggered_by == "dagster":
            continue
        for key in s.tables:
            events.append(dg.AssetMaterialization(
                asset_key=dg.AssetKey.from_user_string(key),
                description=f"Synced by Airbyte job {job} ({s.triggered_by}, not started by Dagster)",
                metadata={"airbyte_job_id": job, "triggered_by": s.triggered_by,
                          "rows_synced": s.rows if s.rows is not None else -1,
                          "started_at": s.started_at.isoformat(),  # the job's startTime (= createdAt)
                          "ended_at": (s.ended_at or s.started_at).isoformat()}))
    # successful Fivetran syncs Dagster did not start (Fivetran's own schedule, the UI, another
    # tool): the connector's succeeded_at moved on. Fivetran's connection object has no sync start
    # time, so the completion time is what the materialization carries ...
    ft: dict[str, str] = dict(state.get("ft", {}))
    # ... so the poller notes when it first saw each connector syncing: the sync started at or
    # before that moment (to within a tick), carried as ``started_at_or_before``
    ft_running: dict[str, str] = dict(state.get("ftrun", {}))
    for s in snap.syncs:
        if s.connector.startswith("fivetran:") and s.status == "running":
            ft_running.setdefault(s.connector, now.isoformat())
    for s in sorted(snap.syncs, key=lambda s: s.ended_at or s.started_at):
        if not s.connector.startswith("fivetran:") or s.status != "succeeded":
            continue
        done = s.ended_at or s.started_at
        if done < now - WINDOW or done.isoformat() <= ft.get(s.connector, ""):
            continue
        ft[s.connector] = done.isoformat()
        started = ft_running.get(s.connector)
        started = started if started and started <= done.isoformat() else None
        if s.triggered_by == "dagster":
            continue
        for key in s.tables:
            events.append(dg.AssetMaterialization(
                asset_key=dg.AssetKey.from_user_string(key),
                description=f"Synced by Fivetran at {done.isoformat()} ({s.triggered_by}, not started by Dagster)",
                metadata={"fivetran_succeeded_at": done.isoformat(), "triggered_by": s.triggered_by,
                          **({"started_at_or_before": started} if started else {}),
                          "ended_at": done.isoformat()}))
    # a connector's note ends with the completion after it (or when it no longer syncs)
    running_now = {s.connector for s in snap.syncs if s.connector.startswith("fivetran:") and s.status == "running"}
    ft_running = {c: t for c, t in ft_running.items() if c in running_now and t > ft.get(c, "")}
    return new, events, {"seen": seen, "bad": bad, "ab": ab, "ft": ft, "ftrun": ft_running}


def recovery_cycle(context, ctx: ProjectContext, props, *, now: datetime, connectors=None,
                   snapshot=None) -> tuple[object | None, list[dg.RunRequest]]:
    """The failure-driven path, right after new root failures were diagnosed and stored: one
    decision cycle (``Proposals.run_cycle`` -> ``orchestrator.core.decide.decide``) on a full
    snapshot, reusing the stored diagnoses (never diagnosing again), gated, recorded; then the run
    actions it approved that may start now are launched in this same evaluation (written ahead,
    run key = action id, exactly like the execution sensor, which launches the backed-off ones
    once their ``not_before`` has come). Returns (CycleResult or None, RunRequests)."""
    if ctx.resolution is None or not getattr(ctx.resolution, "ok", False):
        return None, []
    from orchestrator.assessment import assess
    from orchestrator.policies import DurationModel
    from orchestrator.recovery import stored_diagnoses
    from orchestrator.snapshot import build_snapshot
    from .execution import RUN_TYPES, _run_pass

    from orchestrator.assessment.freshness import history_reach

    snap = snapshot or build_snapshot(context.instance, ctx.graph, now=now, repository_def=context.repository_def,
                                      connectors=connectors, reach=history_reach(ctx.resolution, now))
    known = stored_diagnoses(props.store, [f.failure_id for f in snap.failures])
    durations = DurationModel(snap.durations)
    assessment = assess(snap, ctx.resolution, durations, memory=props.memory, now=now, known_diagnoses=known)
    result = props.run_cycle(snap, assessment, ctx.resolution, durations, now=now)
    from orchestrator.recovery import withdraw_stale

    # pending asks this failure made doomed (a run of a connector whose credentials just expired)
    withdraw_stale(props, snap, assessment.failures, now=now, actor=SENSOR_NAME)
    new = set(result.new_action_ids)
    owner = f"{SENSOR_NAME}:{uuid.uuid4().hex[:8]}"
    requests: list[dg.RunRequest] = []
    for d in result.decisions:
        a = d.action
        if d.decision != "execute" or a.type not in RUN_TYPES or a.action_id not in new:
            continue
        nb = a.not_before
        if nb is not None and (nb if nb.tzinfo else nb.replace(tzinfo=UTC)) > now:
            continue  # the prescribed backoff: the execution sensor launches it when it is due
        requests.extend(_run_pass(context, props, a, ctx.resolution, now, owner))
    return result, requests


def relaunch_lost_requests(context, props, *, now: datetime, owner: str) -> list[dg.RunRequest]:
    """Retries this sensor requested in an earlier tick that never became a run (the daemon
    timed out on the code server while creating it, or the evaluation's answer was lost after the
    launch was written ahead) are requested again on this tick, with the same run key: the store
    says which were requested (``calling``, this sensor's owner), the instance says which runs
    exist. A run that exists is recorded as launched instead; a launch is retaken conditionally
    (one taker, so the execution sensor's stale-lease takeover never doubles it) and audited."""
    from orchestrator.planning import action_from_dict
    from orchestrator.proposals import CALL_LEASE
    from orchestrator.recovery import retake_launch, unlaunched_runs
    from .execution import TAG_ACTION, _proposal_of, run_requests_for

    out: list[dg.RunRequest] = []
    for launch in unlaunched_runs(props.store, started_before=now):
        aid, key = launch["action_id"], launch["run_key"]
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags={TAG_ACTION: aid, "dagster/run_key": key}),
                                         limit=1)
        if runs:
            props.record_execution(aid, "run", run_key=key, run_id=runs[0].run_id, now=now)
            continue
        try:
            wanted = [r for r in run_requests_for(action_from_dict(launch["payload"]), _proposal_of(props, aid),
                                                  getattr(context, "repository_def", None))
                      if r.run_key == key]
        except Exception as exc:  # noqa: BLE001 - the execution sensor settles unreadable actions
            context.log.warning(f"cannot rebuild the request of {aid} ({exc}); left to the execution sensor")
            continue
        if wanted and retake_launch(props.store, launch, owner=owner, now=now,
                                    lease_s=CALL_LEASE.total_seconds()):
            context.log.warning(f"run {key} of {aid} was requested but never created; requested again")
            out.extend(wanted)
    return out


def failure_interval_s() -> int:
    return int(os.environ.get("ORCHESTRATOR_FAILURE_INTERVAL", "15"))


def build_failure_sensor(
    ctx: ProjectContext,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    minimum_interval_seconds: int | None = None,
    store_url: str | None = None,
    recover: bool = True,
) -> dg.SensorDefinition:
    """Every ``ORCHESTRATOR_FAILURE_INTERVAL`` s (default 15): new failures are diagnosed once and
    stored; when a new root failure appears, the failure-driven cycle (``recovery_cycle``) plans,
    gates and launches in the same evaluation (``recover=False``: diagnosis only)."""

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds or failure_interval_s(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        **(ctx.run_target() if recover else {}),
        description=("Run failures and failed syncs (also those Dagster did not start), diagnosed once by "
                     "root cause; a new failure triggers one decision cycle and its retry in the same tick."),
    )
    def failure_diagnosis_sensor(context: dg.SensorEvaluationContext, fivetran: FivetranWorkspaceResource,
                                airbyte: AirbyteWorkspaceResource):
        from orchestrator.diagnosis import FailureMemory
        from orchestrator.snapshot import ConnectorReader
        from orchestrator.store import open_store

        state = json.loads(context.cursor) if context.cursor else {}
        store = open_store(store_url)
        connectors = ConnectorReader(fivetran=fivetran, airbyte=airbyte)
        from orchestrator.resources.errors import api_deadline, sensor_api_deadline_s

        now = clock()
        requests: list[dg.RunRequest] = []
        relaunched: list[dg.RunRequest] = []
        if recover:  # a retry requested by an earlier tick that never became a run: again, same run key
            from orchestrator.proposals import Proposals

            try:
                relaunched = relaunch_lost_requests(context, Proposals(store), now=now,
                                                    owner=f"{SENSOR_NAME}:{uuid.uuid4().hex[:8]}")
            except Exception as exc:  # noqa: BLE001 - the execution sensor's lease takeover still applies
                context.log.error(f"lost launches not checked: {type(exc).__name__}: {str(exc)[:300]}")
        with api_deadline(sensor_api_deadline_s()):  # a hung API cannot stretch the tick
            new, events, new_state = failures_tick(
                context.instance, ctx, state, now=now, repository_def=context.repository_def,
                connectors=connectors, memory=FailureMemory(store), store=store,
            )
            roots = [d for d in new if d.root_failure_id is None]
            if recover and roots:
                from orchestrator.proposals import Proposals

                # the cycle's clock: now, never before the failures it answers (read during this tick)
                cycle_now = max([now, clock(), *(d.failure.at for d in roots)])
                try:
                    result, requests = recovery_cycle(context, ctx, Proposals(store), now=cycle_now,
                                                      connectors=connectors)
                except Exception as exc:  # noqa: BLE001 - the diagnosis is stored; the planning sensor retries
                    context.log.error(f"failure-driven cycle failed ({type(exc).__name__}: {str(exc)[:300]}); "
                                      "the planning sensor's next tick plans instead")
                    result = None
                if result is not None:
                    counts = {k: sum(1 for d in result.decisions if d.decision == k)
                              for k in ("execute", "await_approval", "record_only")}
                    context.log.info(
                        f"failure-driven cycle for {', '.join(d.failure.failure_id for d in roots)[:300]}: "
                        f"proposal {result.proposal_id}, {counts['execute']} to execute, "
                        f"{counts['await_approval']} awaiting approval, {len(result.plan.escalations)} "
                        f"escalated, {len(requests)} run(s) launched now")
        for d in new:
            context.log.info("%s %s: %s (%s)", d.failure.failure_id, d.category,
                             "; ".join(d.evidence)[:300], "root" if d.root_failure_id is None else f"caused by {d.root_failure_id}")
        if connectors.errors:
            context.log.warning("connector state unavailable: %s", "; ".join(connectors.errors))
        requests = relaunched + [r for r in requests if r.run_key not in {x.run_key for x in relaunched}]
        if not events and not requests:
            return dg.SensorResult(cursor=json.dumps(new_state), skip_reason="no new failures")
        return dg.SensorResult(asset_events=events, run_requests=requests or None, cursor=json.dumps(new_state))

    return failure_diagnosis_sensor


def build_sync_checks(ctx: ProjectContext):
    known = {k.to_user_string() for k in ctx.asset_specs} if ctx.asset_specs else set(ctx.graph.keys)
    keys = sorted(n.key for n in ctx.graph if n.role == CONNECTOR_TABLE and n.connector and n.key in known)
    if not keys:
        return []
    specs = [dg.AssetCheckSpec(CHECK_NAME, asset=dg.AssetKey.from_user_string(k),
                               description="The connector's latest sync (whoever started it) succeeded.")
             for k in keys]

    @multi_asset_check(specs=specs, can_subset=True, name="connector_sync_checks",
                          required_resource_keys={"fivetran", "airbyte"})
    def connector_sync_checks(context):
        from orchestrator.snapshot import ConnectorReader, sync_failures

        from orchestrator.resources.errors import api_deadline, sensor_api_deadline_s

        reader = ConnectorReader(fivetran=context.resources.fivetran, airbyte=context.resources.airbyte)
        with api_deadline(sensor_api_deadline_s()):
            syncs = reader.syncs(ctx.graph, datetime.now(UTC) - timedelta(days=2))
        unreadable = {e.split(":", 1)[0]: e.split(":", 1)[1].strip()[:500] for e in reader.errors}
        latest: dict[str, SyncRecord] = {}
        for s in syncs:
            if s.status in ("succeeded", "failed", "cancelled"):
                cur = latest.get(s.connector)
                if cur is None or (s.ended_at or s.started_at) > (cur.ended_at or cur.started_at):
                    latest[s.connector] = s
        diag = {d.failure.connector: d for d in diagnose_failures(sync_failures(latest.values()), ctx.graph)}
        for k in context.selected_asset_check_keys:
            node = ctx.graph.node(k.asset_key.to_user_string())
            system = (node.connector or "").split(":", 1)[0]
            if system in unreadable:  # never "passed" on data that could not be read
                yield dg.AssetCheckResult(
                    asset_key=k.asset_key, check_name=CHECK_NAME, passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=f"{system} sync state could not be read; not checked",
                    metadata={"sync_id": "", "category": "unreadable", "message": unreadable[system]},
                )
                continue
            s = latest.get(node.connector)
            if s is None:  # read fine, but nothing to vouch for: never "passed" on no evidence
                yield dg.AssetCheckResult(
                    asset_key=k.asset_key, check_name=CHECK_NAME, passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=f"no sync on record for {node.connector} in the last 2 days",
                    metadata={"sync_id": "", "category": "no_sync", "message": "no sync on record"},
                )
                continue
            d = diag.get(node.connector) if s.status == "failed" else None
            yield dg.AssetCheckResult(
                asset_key=k.asset_key, check_name=CHECK_NAME, passed=d is None,
                metadata={"sync_id": s.sync_id if s else "", "category": d.category if d else "",
                          "message": (s.error_message or "")[:2000] if s else ""},
            )

    return [connector_sync_checks]


def definitions(ctx: ProjectContext) -> dg.Definitions:
    return dg.Definitions(asset_checks=build_sync_checks(ctx), sensors=[build_failure_sensor(ctx)])
