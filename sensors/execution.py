"""Execution sensor: approved and automatic actions -> Dagster runs and connector API calls.

Every tick, for each executable action in the project store (``Proposals.executable``):

* **run actions** (materialize, retry, backfill, defer once ``not_before`` has come): one
  ``RunRequest`` per partition (or one without partitions) with the action's asset selection,
  tags ``dagster/priority``, ``orchestrator/proposal_id``, ``orchestrator/action_id``,
  ``orchestrator/action_type`` and ``run_key = <action_id>[:<partition>]``, each written ahead
  (a ``calling`` execution with idempotency key ``run:<run_key>``) before it is returned. The sensor first
  looks for runs already tagged with the action id and emits only the missing run keys; Dagster
  itself skips a run key it has already launched, so a tick evaluated twice launches each run
  once. A re-prioritisation (materialize with ``run_id``) re-tags the queued run's
  ``dagster/priority`` (the queue daemon reads run tags at every dequeue); a run that already
  left the queue is left alone, one that is gone is submitted again. When every run of an action has
  finished, its outcome goes back to the proposal, the failure memory and the circuit breaker.
* **connector actions** (resync_table, full_resync, pause/resume/reschedule_connector) and
  ``cancel_run``: written ahead first (``Proposals.begin_call``: ``approved -> executing`` and an
  execution row ``calling`` with the idempotency key ``<action_id>:call``, one committed
  transaction), so a second evaluation never calls the API again; then the Fivetran/Airbyte
  client of the project's resources is called and the outcome recorded (status, executions,
  audit event, failure memory, breaker: one transaction). An API error is the action's outcome
  (typed: status code, vendor message, transient); a store error stops the tick and is never
  recorded as an API failure. A write is sent once (``single_attempt_writes``): when its answer
  is lost (read timeout, dropped connection, 5xx, garbled body) the connector's state is read -
  seen: succeeded; not seen yet: left ``calling`` for the reconciler, never sent again.
* **reconciler** (every tick, first): ``calling`` rows whose lease (``ORCHESTRATOR_CALL_LEASE``,
  120 s) has passed belong to a tick that died; they are settled from the connector's own state
  (Fivetran sync state/``succeeded_at``/``paused``, Airbyte jobs/connection status) or the run
  status, never by calling again: seen -> succeeded, not seen -> failed "not confirmed; not
  repeated" (not counted by the breaker), API unreachable -> tried again next tick.
* **isolation**: an action whose assets, partitions, run or connector no longer exist fails alone
  (outcome with the reason and its audit event); the others launch. Pending actions expire at
  ``expires_at``, approved ones after ``ORCHESTRATOR_APPROVED_TTL`` (default 24h) without starting.

A tick spends at most ``ORCHESTRATOR_TICK_BUDGET`` seconds (default 40) on connector calls
(every request of the tick shares that deadline; the rest waits for the next tick).

``ORCHESTRATOR_EXECUTION_INTERVAL`` (seconds, default 15) sets the sensor interval;
``ORCHESTRATOR_EXECUTION_SENSOR=off`` leaves it stopped by default.

The planning sensor (``orchestrator_planning``, every ``ORCHESTRATOR_PLANNING_INTERVAL`` s,
default 300; running by default, ``ORCHESTRATOR_PLANNING_SENSOR=off`` leaves it stopped) runs one
cycle per tick for freshness and records the proposal; ``orchestrator plan`` does the same from
the command line. Failures do not wait for it: the failure sensor (``sensors/failures.py``) runs
the same cycle as soon as it has diagnosed a new failure. ``ORCHESTRATOR_AUTOMATION=recommend``
(everything waits for approval) or ``shadow`` (recorded only) turns automatic execution down.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg

from orchestrator.core.records import Action
from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.fivetran import FivetranWorkspaceResource
from orchestrator.planning import scrub_pii
from orchestrator.resources.errors import single_attempt_writes
from orchestrator.core.vocab import RUN_ACTION_VALUES, ActionType
from orchestrator.lib.recorded import route

UTC = timezone.utc
TAG_PROPOSAL = "orchestrator/proposal_id"
TAG_ACTION = "orchestrator/action_id"
TAG_TYPE = "orchestrator/action_type"
TAG_WAREHOUSE = "orchestrator/warehouse"  # run-queue limit per warehouse (deploy/dagster.yaml)


def warehouse_tag() -> dict[str, str]:
    """The run tag the instance's run queue limits per warehouse (``ORCHESTRATOR_WAREHOUSE``,
    default "warehouse"): every run syncs into or builds in the warehouse."""
    return {TAG_WAREHOUSE: os.environ.get("ORCHESTRATOR_WAREHOUSE", "warehouse")}
RUN_TYPES = RUN_ACTION_VALUES
# owner prefix of the execution sensor's ticks: a launch an earlier tick wrote ahead whose answer
# was lost (evaluation timeout) is re-requested by the next tick, not after the call lease
EXEC_OWNER = "execution_sensor:"  # + "<sensor name>:<host>:<pid>:<tick>"
DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def run_requests_for(action: Action, proposal_id: str | None = None, repository_def=None) -> list[dg.RunRequest]:
    """The RunRequests of one run action (pure: same action, same requests and run keys). With
    the ``repository_def``, each gets its job: an external asset's recording op job (for the
    daily-partitioned models: ``daily_partitioned_models``), else the agent's asset job when the
    sensors target jobs (``orchestrator.lib.recorded.route``)."""
    tags = {
        "dagster/priority": str(int(action.priority)),
        TAG_ACTION: action.action_id,
        TAG_TYPE: action.type,
        **warehouse_tag(),
    }
    if proposal_id:
        tags[TAG_PROPOSAL] = proposal_id
    selection = [dg.AssetKey.from_user_string(k) for k in action.asset_keys]
    if not action.partitions:
        requests = [dg.RunRequest(run_key=action.action_id, asset_selection=selection, tags=tags)]
    else:
        requests = [
            dg.RunRequest(run_key=f"{action.action_id}:{p}", asset_selection=selection, partition_key=p, tags=tags)
            for p in action.partitions
        ]
    return route(requests, repository_def)


def call_connector(action: Action, clients: Mapping[str, Any]) -> dict:
    """One connector API call through the dagster-fivetran / dagster-airbyte clients.

    A Fivetran resync is posted to the resync endpoint directly: dagster-fivetran's
    ``start_resync`` also switches the connector's schedule to manual, which an automatic resync
    must not do. The schedule type is read before and after; if it changed anyway it is put back
    and the returned detail says so (``schedule_restored``)."""
    system, _, cid = (action.connector or "").partition(":")
    client = clients.get(system)
    if client is None:
        raise RuntimeError(f"no client for {system!r} (its API is not configured or not reachable)")
    t = ActionType(action.type)
    out: dict[str, Any] = {"system": system, "connector": cid, "call": t.value}
    if system == "fivetran":
        if t in (ActionType.resync_table, ActionType.full_resync):
            before = _fivetran_schedule(client, cid)
            with single_attempt_writes():  # never POSTed twice: a lost answer is read from the state
                if t is ActionType.resync_table:
                    client._make_connector_request(method="POST", endpoint=f"{cid}/schemas/tables/resync",
                                                   data=json.dumps({s: list(ts) for s, ts in action.tables.items()}))
                else:
                    client._make_connector_request(method="POST", endpoint=f"{cid}/resync", data=None)
            try:  # the resync is done: a failure to read the schedule afterwards does not undo it
                after = _fivetran_schedule(client, cid)
            except Exception as exc:  # noqa: BLE001
                after = None
                out["schedule_check"] = f"schedule not read after the resync: {scrub_pii(str(exc))[:300]}"
            if before and after and before != after:
                client._make_connector_request(method="PATCH", endpoint=cid,
                                               data=json.dumps({"schedule_type": before}))
                out["schedule_restored"] = {"from": after, "to": before}
            elif before:
                out["schedule_type"] = before
        elif t in (ActionType.pause_connector, ActionType.resume_connector):
            client._make_connector_request(method="PATCH", endpoint=cid,
                                           data=json.dumps({"paused": t is ActionType.pause_connector}))
        elif t is ActionType.reschedule_connector:
            minutes = int((action.tables.get("sync_frequency") or ("360",))[0])
            client._make_connector_request(method="PATCH", endpoint=cid, data=json.dumps({"sync_frequency": minutes}))
        else:
            raise ValueError(f"{t.value} is not a connector action")
        return out
    if system == "airbyte":
        rest, cfg = client.rest_api_base_url, client.configuration_api_base_url
        if t in (ActionType.pause_connector, ActionType.resume_connector):
            status = "inactive" if t is ActionType.pause_connector else "active"
            client._single_request(method="PATCH", url=f"{rest}/connections/{cid}", data={"status": status})
        elif t is ActionType.reschedule_connector:
            minutes = int((action.tables.get("sync_frequency") or ("360",))[0])
            from orchestrator.resources.airbyte import airbyte_schedule

            client._single_request(method="PATCH", url=f"{rest}/connections/{cid}",
                                   data={"schedule": airbyte_schedule(minutes)})
        elif t is ActionType.full_resync:
            with single_attempt_writes():
                client._single_request(method="POST", url=f"{rest}/jobs",
                                       data={"connectionId": cid, "jobType": "reset"})
        elif t is ActionType.resync_table:
            with single_attempt_writes():
                client._single_request(method="POST", url=f"{cfg}/connections/reset/stream", data={
                    "connectionId": cid,
                    "streams": [{"streamName": tb, "streamNamespace": s} for s, ts in action.tables.items()
                                for tb in ts],
                })
        else:
            raise ValueError(f"{t.value} is not a connector action")
        return out
    raise ValueError(f"unknown connector system {system!r}")


def _fivetran_schedule(client, cid: str) -> str | None:
    get = getattr(client, "get_connector_details", None)
    if get is None:
        return None
    details = get(cid)
    return details.get("schedule_type") if isinstance(details, Mapping) else None


def _parse_at(v) -> datetime | None:
    if not v:
        return None
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def observe_call(action: Action, clients: Mapping[str, Any], since: datetime) -> tuple[bool | None, str]:
    """Did a connector call written ahead at ``since`` happen? Read from the connector's own state,
    never by calling again: (True, evidence) seen, (False, evidence) not seen, (None, why) unknown."""
    system, _, cid = (action.connector or "").partition(":")
    client = clients.get(system)
    if client is None:
        return None, f"no {system} client"
    t = ActionType(action.type)
    since = since - timedelta(seconds=5)  # clock skew between this host and the vendor
    if system == "fivetran":
        d = client.get_connector_details(cid)
        status = d.get("status") or {}
        if t in (ActionType.pause_connector, ActionType.resume_connector):
            want = t is ActionType.pause_connector
            return (bool(d.get("paused")) == want), f"paused={d.get('paused')}"
        if t is ActionType.reschedule_connector:
            minutes = int((action.tables.get("sync_frequency") or ("360",))[0])
            return (d.get("sync_frequency") == minutes), f"sync_frequency={d.get('sync_frequency')}"
        started = [x for x in (_parse_at(d.get("succeeded_at")), _parse_at(d.get("failed_at"))) if x]
        if status.get("sync_state") == "syncing" or any(x >= since for x in started):
            return True, f"sync_state={status.get('sync_state')}, last sync at {max(started, default=None)}"
        return False, f"no sync since {since.isoformat()} (sync_state={status.get('sync_state')})"
    if system == "airbyte":
        rest = client.rest_api_base_url
        if t in (ActionType.pause_connector, ActionType.resume_connector, ActionType.reschedule_connector):
            c = client._single_request(method="GET", url=f"{rest}/connections/{cid}")
            if t is ActionType.reschedule_connector:
                from orchestrator.resources.airbyte import airbyte_schedule, same_cron

                minutes = int((action.tables.get("sync_frequency") or ("360",))[0])
                want, got = airbyte_schedule(minutes), c.get("schedule") or {}
                ok = got.get("scheduleType") == want["scheduleType"] and (
                    want["scheduleType"] == "manual" or same_cron(got.get("cronExpression"), want["cronExpression"]))
                return ok, f"schedule {got.get('scheduleType')} {got.get('cronExpression') or ''}".strip()
            want = "inactive" if t is ActionType.pause_connector else "active"
            return c.get("status") == want, f"status={c.get('status')}"
        jobs = client._single_request(method="GET", url=f"{rest}/jobs",
                                      params={"connectionId": cid, "limit": 20, "orderBy": "createdAt|DESC"})
        for j in (jobs.get("data") or []) if isinstance(jobs, Mapping) else []:
            at = _parse_at(j.get("startTime") or j.get("createdAt"))
            if at and at >= since and str(j.get("jobType", "")).lower() in ("reset", "clear", "refresh", "sync"):
                return True, f"job {j.get('jobId')} ({j.get('jobType')}) at {at.isoformat()}"
        return False, f"no job since {since.isoformat()}"
    return None, f"unknown system {system!r}"


def _proposal_of(props, action_id: str) -> str | None:
    try:
        return props.show(action_id).get("proposal_id")
    except KeyError:
        return None


def _is_store_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError)


def invalid_reason(action: Action, context, resolution=None) -> str | None:
    """Why an action cannot run against the code location as it is now (None when it can)."""
    try:
        t = ActionType(action.type)
    except ValueError:
        return f"unknown action type {action.type!r}"
    repo = getattr(context, "repository_def", None)
    if action.type in RUN_TYPES:
        if not action.asset_keys:
            return "no assets to run"
        if repo is None:
            return None
        graph = repo.asset_graph
        known = graph.get_all_asset_keys() if hasattr(graph, "get_all_asset_keys") else set(graph.all_asset_keys)
        missing = [k for k in action.asset_keys if dg.AssetKey.from_user_string(k) not in known]
        if missing:
            return f"assets no longer in the code location: {', '.join(missing[:10])}"
        if action.partitions:
            for k in action.asset_keys:
                pdef = graph.get(dg.AssetKey.from_user_string(k)).partitions_def
                if pdef is None:
                    return f"{k} is not partitioned but partitions {list(action.partitions)[:5]} were asked for"
                for p in action.partitions:
                    try:
                        if isinstance(pdef, dg.DynamicPartitionsDefinition):
                            ok = context.instance.has_dynamic_partition(pdef.name, p)
                        else:
                            ok = pdef.has_partition_key(p)
                    except Exception:  # noqa: BLE001 - a partition the definition cannot read is unknown
                        ok = False
                    if not ok:
                        return f"partition {p!r} does not exist for {k}"
            pdefs = {graph.get(dg.AssetKey.from_user_string(k)).partitions_def for k in action.asset_keys}
            if len(pdefs) > 1:
                return "the assets have different partitions definitions; they cannot run in one run"
        try:
            route(run_requests_for(action), repo)
        except ValueError as exc:  # recorded (op job) and executable assets in one action
            return str(exc)
        return None
    if t is ActionType.cancel_run:
        if not action.run_id or context.instance.get_run_by_id(action.run_id) is None:
            return f"run {action.run_id!r} does not exist"
        return None
    if not action.connector or ":" not in action.connector:
        return f"no connector given for {t.value}"
    if resolution is not None and getattr(resolution, "graph", None) is not None:
        connectors = {n.connector for n in resolution.graph if n.connector}
        if connectors and action.connector not in connectors:
            return f"connector {action.connector} is no longer in the code location"
    return None


def tick_budget_s() -> float:
    """Seconds one tick may spend calling connectors (Dagster stops a sensor at 60 s)."""
    return float(os.environ.get("ORCHESTRATOR_TICK_BUDGET", "40"))


def reconcile(context, props, *, clients: Callable[[], Mapping[str, Any]] | None = None, resolution=None,
              now: datetime | None = None, client_cache: dict | None = None) -> dict[str, int]:
    """Settle executions left ``calling`` past their lease (their tick died after writing ahead)
    and actions left ``executing`` with no execution, from the connector's state and the
    instance's runs. Run launches are settled by the sensor's run pass (the run key tells)."""
    now = now or datetime.now(UTC)
    out = {"settled": 0, "unknown": 0}
    cache = client_cache if client_cache is not None else {}
    for c in props.open_calls(now):
        if c["kind"] == "run":
            continue
        aid = c["action_id"]
        try:
            from orchestrator.planning import action_from_dict

            action = action_from_dict(c["payload"])
        except Exception as exc:  # noqa: BLE001
            props.record_outcome(aid, False, detail={"error": f"unreadable action: {exc}"}, reconciled=True,
                                 count=False, now=now)
            out["settled"] += 1
            continue
        if action.type == ActionType.cancel_run.value:
            run = context.instance.get_run_by_id(action.run_id) if action.run_id else None
            seen = run is not None and run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING)
            why = f"run {action.run_id} is {run.status.value if run else 'gone'}"
        else:
            if "clients" not in cache:
                cache["clients"] = dict(clients()) if clients else {}
            try:
                seen, why = observe_call(action, cache["clients"], c["started_at"])
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "transient", None) is False:  # e.g. 404: the connector is gone
                    props.record_outcome(aid, False, resolution=resolution, now=now, reconciled=True, detail={
                        "reconciled": True, **error_detail(exc),
                        "evidence": "the connector's state cannot be read (not transient): the action failed"})
                    out["settled"] += 1
                    continue
                context.log.warning(f"cannot settle {aid} yet (tried again next tick): "
                                    f"{type(exc).__name__}: {exc}"[:500])
                out["unknown"] += 1
                continue
        if seen is None:
            out["unknown"] += 1
            continue
        detail = {"reconciled": True, "evidence": why}
        if not seen:
            detail["error"] = "the call was written ahead but not confirmed by the connector; not repeated"
        props.record_outcome(aid, bool(seen), detail=detail, resolution=resolution, now=now, reconciled=True,
                             count=bool(seen))
        out["settled"] += 1
    return out


def evaluate(context, props, *, clients: Callable[[], Mapping[str, Any]] | None = None, resolution=None,
             now: datetime | None = None, owner: str | None = None) -> list[dg.RunRequest]:
    """One tick: returns the RunRequests to emit; connector calls and outcomes are done here.

    Order of records (write-ahead): the ``calling`` execution is committed before a connector
    call and before a RunRequest is returned; the outcome, its audit event, the memory and the
    breaker commit together afterwards. A store error stops the tick (requests already written
    ahead are still returned); an API error is the action's outcome."""
    now = now or datetime.now(UTC)
    instance = context.instance
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + tick_budget_s()
    props.expire(now)
    client_cache: dict[str, Any] = {}

    def get_clients() -> dict:
        if "clients" not in client_cache:
            client_cache["clients"] = dict(clients()) if clients else {}
        return client_cache["clients"]

    reconcile(context, props, clients=get_clients, resolution=resolution, now=now, client_cache=client_cache)
    requests: list[dg.RunRequest] = []
    for action in props.executable(now):
        aid = action.action_id
        if time.monotonic() > deadline:
            context.log.warning(f"tick budget of {tick_budget_s():.0f}s spent; the rest waits for the next tick")
            break
        try:
            problem = invalid_reason(action, context, resolution)
            if problem:
                props.record_outcome(aid, False, detail={"error": problem, "invalid": True}, resolution=resolution,
                                     now=now, count=False)
                context.log.warning(f"action {aid} cannot run: {problem}")
                continue
            if action.type in RUN_TYPES:
                requests.extend(_run_pass(context, props, action, resolution, now, owner))
                continue
            _connector_pass(context, props, action, get_clients, resolution, now, owner)
        except Exception as exc:  # noqa: BLE001
            if _is_store_error(exc):
                context.log.error(f"project store unavailable while handling {aid}: {type(exc).__name__}: "
                                  f"{str(exc)[:300]}; nothing more is started this tick")
                break
            raise
    return requests


def _run_pass(context, props, action: Action, resolution, now: datetime, owner: str) -> list[dg.RunRequest]:
    aid = action.action_id
    instance = context.instance
    runs = instance.get_runs(filters=dg.RunsFilter(tags={TAG_ACTION: aid}))
    for r in runs:
        props.record_execution(aid, "run", run_key=r.tags.get("dagster/run_key"), run_id=r.run_id, now=now)
    wanted = run_requests_for(action, _proposal_of(props, aid), getattr(context, "repository_def", None))
    have = {r.tags.get("dagster/run_key") for r in runs}
    if action.run_id and action.type == "materialize" and not have:
        # Re-prioritisation of a queued run: re-tag it. The QueuedRunCoordinator daemon reads
        # ``dagster/priority`` from the queued runs' tags in storage at every dequeue, so the run
        # keeps its place and its run id (no cancel + re-submit, no second run to reconcile).
        old = instance.get_run_by_id(action.run_id)
        if old is not None and old.status in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED):
            new_p = str(int(action.priority))
            instance.add_run_tags(action.run_id, {"dagster/priority": new_p, "orchestrator/reprioritised_by": aid})
            detail = {"retagged": action.run_id, "priority": {"from": old.tags.get("dagster/priority", "0"),
                                                              "to": new_p}}
            props.record_execution(aid, "run", run_id=action.run_id, status="succeeded", detail=detail, now=now)
            props.record_outcome(aid, True, resolution=resolution, now=now, detail=detail)
            return []
        if old is not None and old.status not in DONE:
            # it left the queue meanwhile (starting/started): nothing left to re-prioritise
            detail = {"run": action.run_id, "status": old.status.value, "note": "no longer queued"}
            props.record_outcome(aid, True, resolution=resolution, now=now, detail=detail)
            return []
        # gone, failed or canceled: the work itself is still wanted, so it is submitted below
    missing = [rr for rr in wanted if rr.run_key not in have]
    if missing:
        # written ahead: committed before the requests leave this tick
        # this sensor's earlier ticks (Proposals.begin_runs): "execution_sensor:<name>:"
        own = ":".join(owner.split(":")[:2]) + ":" if (owner or "").startswith(EXEC_OWNER) else None
        ok = set(props.begin_runs(aid, [rr.run_key for rr in missing], owner=owner, now=now, own_prefix=own))
        return [rr for rr in missing if rr.run_key in ok]
    if runs and all(r.status in DONE for r in runs):
        success = all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        props.record_outcome(aid, success, resolution=resolution, now=now,
                             detail={"runs": {r.run_id: r.status.value for r in runs}})
    return []


def _connector_pass(context, props, action: Action, get_clients, resolution, now: datetime, owner: str) -> None:
    aid = action.action_id
    if props.status(aid) != "approved":
        return
    kind = "cancel" if action.type == ActionType.cancel_run.value else "connector_api"
    eid = props.begin_call(aid, kind, owner=owner, now=now)  # committed before the call
    if eid is None:
        return
    try:
        if kind == "cancel":
            context.instance.run_coordinator.cancel_run(action.run_id)
            detail, ok = {"canceled": action.run_id}, True
        else:
            detail, ok = call_connector(action, get_clients()), True
    except Exception as exc:  # noqa: BLE001 - the API's answer is the action's outcome
        detail, ok = error_detail(exc), False
        if kind != "cancel" and getattr(exc, "ambiguous", False) and getattr(exc, "method", "GET") != "GET":
            # the write may have reached the vendor (its answer was lost, garbled or a 5xx): it is
            # never sent again. Seen in the connector's state now -> succeeded; not seen yet (it
            # may still land) -> left ``calling``: the reconciler settles it after the lease
            try:
                seen, why = observe_call(action, get_clients(), now)
            except Exception as obs:  # noqa: BLE001
                seen, why = None, f"{type(obs).__name__}: {str(obs)[:300]}"
            if not seen:
                context.log.warning(f"action {aid}: {detail['error']}; not confirmed by the connector yet "
                                    f"({why}); the reconciler settles it from the connector's state")
                return
            detail, ok = {"call": action.type, "system": action.connector, "answer_lost": True,
                          "answer": detail["error"], "evidence": why}, True
        if not ok:
            context.log.warning(f"action {aid} failed: {detail['error']}")
    # a store error here propagates (the tick stops); the call stays ``calling`` and the
    # reconciler settles it from the connector's state - it is never counted as an API failure
    props.record_outcome(aid, ok, resolution=resolution, now=now, detail=detail)


def error_detail(exc: BaseException) -> dict:
    """An API error as recorded: message (scrubbed), and the typed fields when it is a
    ``ConnectorAPIError`` (status code, vendor message, transient)."""
    err = scrub_pii(f"{type(exc).__name__}: {exc}")[:1000]
    out: dict[str, Any] = {"error": err}
    for f in ("status_code", "vendor_message", "transient", "system"):
        v = getattr(exc, f, None)
        if v is not None:
            out[f] = scrub_pii(v)[:500] if isinstance(v, str) else v
    return out


def build_execution_sensor(
    *, name: str = "orchestrator_execution", store_url: str | None = None, resolution=None,
    clients: Callable[[dg.SensorEvaluationContext], Mapping[str, Any]] | None = None,
    minimum_interval_seconds: int | None = None, default_status: dg.DefaultSensorStatus | None = None,
    required_resource_keys: set[str] | None = None, run_target: dict | None = None,
) -> dg.SensorDefinition:
    interval = minimum_interval_seconds or int(os.environ.get("ORCHESTRATOR_EXECUTION_INTERVAL", "15"))
    if default_status is None:
        default_status = (dg.DefaultSensorStatus.STOPPED if os.environ.get("ORCHESTRATOR_EXECUTION_SENSOR") == "off"
                          else dg.DefaultSensorStatus.RUNNING)

    @dg.sensor(name=name, minimum_interval_seconds=interval, default_status=default_status,
               **(run_target or {"target": dg.AssetSelection.all()}), required_resource_keys=required_resource_keys,
               description="Launches approved and automatic actions of the scheduling agent (run keys = action ids).")
    def _sensor(context: dg.SensorEvaluationContext):
        from orchestrator.proposals import Proposals
        from orchestrator.store import open_store

        from orchestrator.resources.errors import api_deadline

        props = Proposals(open_store(store_url))
        with api_deadline(tick_budget_s()):  # every connector request of the tick, in total
            reqs = evaluate(context, props, clients=(lambda: clients(context)) if clients else None,
                            resolution=resolution,
                            owner=f"{EXEC_OWNER}{name}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
        if not reqs:
            return dg.SkipReason("no executable actions")
        return reqs

    return _sensor


def _project_clients(context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for system in ("fivetran", "airbyte"):
        resource = getattr(context.resources, system, None)
        if resource is None:  # a system this code location does not use (ORCHESTRATOR_CONNECTORS)
            continue
        try:
            out[system] = resource.get_client()
        except Exception as exc:  # one system down must not block the other
            context.log.warning(f"{system} client unavailable: {exc}")
    return out


def build_planning_sensor(ctx, *, name: str = "orchestrator_planning", store_url: str | None = None,
                          minimum_interval_seconds: int | None = None) -> dg.SensorDefinition:
    """One planning cycle per tick: snapshot (instance + connector APIs) -> assess -> plan -> LLM
    review -> validate -> gate -> proposals in the store (the execution sensor does the rest).
    Running by default; ``ORCHESTRATOR_PLANNING_SENSOR=off`` leaves it stopped. Diagnoses the
    failure sensor stored are reused, not made again."""
    interval = minimum_interval_seconds or int(os.environ.get("ORCHESTRATOR_PLANNING_INTERVAL", "300"))
    status = (dg.DefaultSensorStatus.STOPPED if os.environ.get("ORCHESTRATOR_PLANNING_SENSOR") == "off"
              else dg.DefaultSensorStatus.RUNNING)

    @dg.sensor(name=name, minimum_interval_seconds=interval, default_status=status,
               description="Scheduling agent: plans what to run now and records proposals (risk-gated).")
    def _planning(context: dg.SensorEvaluationContext, fivetran: FivetranWorkspaceResource,
                  airbyte: AirbyteWorkspaceResource):
        if ctx.resolution is None or not ctx.resolution.ok:
            return dg.SkipReason(getattr(ctx.resolution, "skip_reason", None) or "no SLA policies")
        from orchestrator.assessment import assess
        from orchestrator.policies import DurationModel
        from orchestrator.proposals import Proposals
        from orchestrator.snapshot import ConnectorReader, build_snapshot
        from orchestrator.store import open_store

        from orchestrator.resources.errors import api_deadline, sensor_api_deadline_s

        now = datetime.now(UTC)
        props = Proposals(open_store(store_url))
        with api_deadline(sensor_api_deadline_s()):
            from orchestrator.assessment.freshness import history_reach

            snap = build_snapshot(context.instance, ctx.graph, now=now, repository_def=context.repository_def,
                              connectors=ConnectorReader(fivetran=fivetran, airbyte=airbyte),
                              connector_settings=True,  # the planner reads each connector's schema-change setting
                              reach=history_reach(ctx.resolution, now))
        from orchestrator.recovery import stored_diagnoses

        durations = DurationModel(snap.durations)
        known = stored_diagnoses(props.store, [f.failure_id for f in snap.failures])
        assessment = assess(snap, ctx.resolution, durations, memory=props.memory, now=now, known_diagnoses=known)
        r = props.run_cycle(snap, assessment, ctx.resolution, durations, now=now)
        from orchestrator.recovery import withdraw_stale

        withdrawn = withdraw_stale(props, snap, assessment.failures, now=now, actor=name)  # nothing stale stays asked
        counts = {k: sum(1 for d in r.decisions if d.decision == k) for k in ("execute", "await_approval", "record_only")}
        return dg.SkipReason(
            f"proposal {r.proposal_id} ({r.plan.planner}): {counts['execute']} to execute, "
            f"{counts['await_approval']} awaiting approval, {counts['record_only']} recorded, "
            f"{len(r.rejected)} rejected, {len(r.new_action_ids)} new, {len(withdrawn)} withdrawn")

    return _planning


def definitions(ctx) -> dg.Definitions:
    """Registry entry (sensors/__init__.py): the execution and planning sensors, bound to the
    project's resources."""
    return dg.Definitions(sensors=[
        build_execution_sensor(resolution=ctx.resolution, clients=_project_clients,
                               required_resource_keys={"fivetran", "airbyte"}, run_target=ctx.run_target()),
        build_planning_sensor(ctx),
    ])
