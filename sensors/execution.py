"""Execution sensor: approved and automatic actions -> Dagster runs and connector API calls.

Every tick, for each executable action in the project store (``Proposals.executable``):

* **run actions** (materialize, retry, backfill, defer once ``not_before`` has come): one
  ``RunRequest`` per partition (or one without partitions) with the action's asset selection,
  tags ``dagster/priority``, ``orchestrator/proposal_id``, ``orchestrator/action_id``,
  ``orchestrator/action_type`` and ``run_key = <action_id>[:<partition>]``. The sensor first
  looks for runs already tagged with the action id and emits only the missing run keys; Dagster
  itself skips a run key it has already launched, so a tick evaluated twice launches each run
  once. A re-prioritisation (materialize with ``run_id``) first cancels the queued run (Dagster
  reads ``dagster/priority`` only at dequeue), then re-submits. When every run of an action has
  finished, its outcome goes back to the proposal, the failure memory and the circuit breaker.
* **connector actions** (resync_table, full_resync, pause/resume/reschedule_connector) and
  ``cancel_run``: the action is claimed first (``approved -> executing`` in one conditional
  UPDATE), so a second evaluation never calls the API again; then the Fivetran/Airbyte client
  of the project's resources is called and the outcome recorded.

``ORCHESTRATOR_EXECUTION_INTERVAL`` (seconds, default 30) sets the sensor interval;
``ORCHESTRATOR_EXECUTION_SENSOR=off`` leaves it stopped by default.

The planning sensor (``orchestrator_planning``, every ``ORCHESTRATOR_PLANNING_INTERVAL`` s,
default 300; stopped unless ``ORCHESTRATOR_PLANNING_SENSOR=on``) runs one cycle per tick and
records the proposal; ``orchestrator plan`` does the same from the command line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import dagster as dg

from orchestrator.core.records import Action
from orchestrator.planning import scrub_pii
from orchestrator.core.vocab import RUN_ACTION_VALUES, ActionType

UTC = timezone.utc
TAG_PROPOSAL = "orchestrator/proposal_id"
TAG_ACTION = "orchestrator/action_id"
TAG_TYPE = "orchestrator/action_type"
RUN_TYPES = RUN_ACTION_VALUES
DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def run_requests_for(action: Action, proposal_id: str | None = None) -> list[dg.RunRequest]:
    """The RunRequests of one run action (pure: same action, same requests and run keys)."""
    tags = {
        "dagster/priority": str(int(action.priority)),
        TAG_ACTION: action.action_id,
        TAG_TYPE: action.type,
    }
    if proposal_id:
        tags[TAG_PROPOSAL] = proposal_id
    selection = [dg.AssetKey.from_user_string(k) for k in action.asset_keys]
    if not action.partitions:
        return [dg.RunRequest(run_key=action.action_id, asset_selection=selection, tags=tags)]
    return [
        dg.RunRequest(run_key=f"{action.action_id}:{p}", asset_selection=selection, partition_key=p, tags=tags)
        for p in action.partitions
    ]


def call_connector(action: Action, clients: Mapping[str, Any]) -> dict:
    """One connector API call through the dagster-fivetran / dagster-airbyte clients."""
    system, _, cid = (action.connector or "").partition(":")
    client = clients.get(system)
    if client is None:
        raise RuntimeError(f"no client for {system!r}")
    t = ActionType(action.type)
    if system == "fivetran":
        if t is ActionType.resync_table:
            client.start_resync(cid, resync_parameters={s: list(ts) for s, ts in action.tables.items()})
        elif t is ActionType.full_resync:
            client.start_resync(cid, resync_parameters=None)
        elif t in (ActionType.pause_connector, ActionType.resume_connector):
            client._make_connector_request(method="PATCH", endpoint=cid,
                                           data=json.dumps({"paused": t is ActionType.pause_connector}))
        elif t is ActionType.reschedule_connector:
            minutes = int((action.tables.get("sync_frequency") or ("360",))[0])
            client._make_connector_request(method="PATCH", endpoint=cid, data=json.dumps({"sync_frequency": minutes}))
        else:
            raise ValueError(f"{t.value} is not a connector action")
        return {"system": system, "connector": cid, "call": t.value}
    if system == "airbyte":
        rest, cfg = client.rest_api_base_url, client.configuration_api_base_url
        if t in (ActionType.pause_connector, ActionType.resume_connector):
            status = "inactive" if t is ActionType.pause_connector else "active"
            client._single_request(method="PATCH", url=f"{rest}/connections/{cid}", data={"status": status})
        elif t is ActionType.reschedule_connector:
            minutes = int((action.tables.get("sync_frequency") or ("360",))[0])
            client._single_request(method="PATCH", url=f"{rest}/connections/{cid}", data={
                "schedule": {"scheduleType": "basic", "basicTiming": f"Every {max(1, minutes // 60)} hours"}})
        elif t is ActionType.full_resync:
            client._single_request(method="POST", url=f"{rest}/jobs", data={"connectionId": cid, "jobType": "reset"})
        elif t is ActionType.resync_table:
            client._single_request(method="POST", url=f"{cfg}/connections/reset/stream", data={
                "connectionId": cid,
                "streams": [{"streamName": tb, "streamNamespace": s} for s, ts in action.tables.items() for tb in ts],
            })
        else:
            raise ValueError(f"{t.value} is not a connector action")
        return {"system": system, "connector": cid, "call": t.value}
    raise ValueError(f"unknown connector system {system!r}")


def _proposal_of(props, action_id: str) -> str | None:
    try:
        return props.show(action_id).get("proposal_id")
    except KeyError:
        return None


def evaluate(context, props, *, clients: Callable[[], Mapping[str, Any]] | None = None, resolution=None,
             now: datetime | None = None) -> list[dg.RunRequest]:
    """One tick: returns the RunRequests to emit; connector calls and outcomes are done here."""
    now = now or datetime.now(UTC)
    instance = context.instance
    props.expire(now)
    requests: list[dg.RunRequest] = []
    client_cache: dict[str, Any] | None = None
    for action in props.executable(now):
        aid = action.action_id
        if action.type in RUN_TYPES:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={TAG_ACTION: aid}))
            for r in runs:
                props.record_execution(aid, "run", run_key=r.tags.get("dagster/run_key"), run_id=r.run_id, now=now)
            wanted = run_requests_for(action, _proposal_of(props, aid))
            have = {r.tags.get("dagster/run_key") for r in runs}
            if action.run_id and action.type == "materialize" and not have:
                old = instance.get_run_by_id(action.run_id)
                if old is not None and old.status == dg.DagsterRunStatus.QUEUED:
                    instance.run_coordinator.cancel_run(action.run_id)
                    props.record_execution(aid, "cancel", run_id=None, status="succeeded",
                                           detail={"canceled": action.run_id, "reason": "re-prioritise"}, now=now)
            missing = [rr for rr in wanted if rr.run_key not in have]
            requests.extend(missing)
            if not missing and runs and all(r.status in DONE for r in runs):
                ok = all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
                props.record_outcome(aid, ok, resolution=resolution, now=now,
                                     detail={"runs": {r.run_id: r.status.value for r in runs}})
            continue
        # connector API calls and cancellations: claim first, so they happen once
        if props.status(aid) != "approved" or not props.claim(aid, now):
            continue
        try:
            if action.type == ActionType.cancel_run.value:
                instance.run_coordinator.cancel_run(action.run_id)
                detail = {"canceled": action.run_id}
            else:
                if client_cache is None:
                    client_cache = dict(clients()) if clients else {}
                detail = call_connector(action, client_cache)
            props.record_execution(aid, "connector_api" if action.connector else "cancel", status="succeeded",
                                   detail=detail, now=now)
            props.record_outcome(aid, True, resolution=resolution, now=now, detail=detail)
        except Exception as exc:  # the outcome is recorded; the sensor goes on
            err = scrub_pii(f"{type(exc).__name__}: {exc}")[:1000]
            props.record_execution(aid, "connector_api", status="failed", detail={"error": err}, now=now)
            props.record_outcome(aid, False, resolution=resolution, now=now, detail={"error": err})
            context.log.warning(f"action {aid} failed: {err}")
    return requests


def build_execution_sensor(
    *, name: str = "orchestrator_execution", store_url: str | None = None, resolution=None,
    clients: Callable[[dg.SensorEvaluationContext], Mapping[str, Any]] | None = None,
    minimum_interval_seconds: int | None = None, default_status: dg.DefaultSensorStatus | None = None,
    required_resource_keys: set[str] | None = None,
) -> dg.SensorDefinition:
    interval = minimum_interval_seconds or int(os.environ.get("ORCHESTRATOR_EXECUTION_INTERVAL", "30"))
    if default_status is None:
        default_status = (dg.DefaultSensorStatus.STOPPED if os.environ.get("ORCHESTRATOR_EXECUTION_SENSOR") == "off"
                          else dg.DefaultSensorStatus.RUNNING)

    @dg.sensor(name=name, minimum_interval_seconds=interval, default_status=default_status,
               target=dg.AssetSelection.all(), required_resource_keys=required_resource_keys,
               description="Launches approved and automatic actions of the scheduling agent (run keys = action ids).")
    def _sensor(context: dg.SensorEvaluationContext):
        from orchestrator.proposals import Proposals
        from orchestrator.store import open_store

        props = Proposals(open_store(store_url))
        reqs = evaluate(context, props, clients=(lambda: clients(context)) if clients else None,
                        resolution=resolution)
        if not reqs:
            return dg.SkipReason("no executable actions")
        return reqs

    return _sensor


def _project_clients(context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for system in ("fivetran", "airbyte"):
        try:
            out[system] = getattr(context.resources, system).get_client()
        except Exception as exc:  # one system down must not block the other
            context.log.warning(f"{system} client unavailable: {exc}")
    return out


def build_planning_sensor(ctx, *, name: str = "orchestrator_planning", store_url: str | None = None,
                          minimum_interval_seconds: int | None = None) -> dg.SensorDefinition:
    """One planning cycle per tick: snapshot (instance + connector APIs) -> assess -> plan -> LLM
    review -> validate -> gate -> proposals in the store (the execution sensor does the rest).
    Stopped by default; ``ORCHESTRATOR_PLANNING_SENSOR=on`` starts it with the code location."""
    interval = minimum_interval_seconds or int(os.environ.get("ORCHESTRATOR_PLANNING_INTERVAL", "300"))
    status = (dg.DefaultSensorStatus.RUNNING if os.environ.get("ORCHESTRATOR_PLANNING_SENSOR") == "on"
              else dg.DefaultSensorStatus.STOPPED)

    @dg.sensor(name=name, minimum_interval_seconds=interval, default_status=status,
               required_resource_keys={"fivetran", "airbyte"},
               description="Scheduling agent: plans what to run now and records proposals (risk-gated).")
    def _planning(context: dg.SensorEvaluationContext):
        if ctx.resolution is None or not ctx.resolution.ok:
            return dg.SkipReason(getattr(ctx.resolution, "skip_reason", None) or "no SLA policies")
        from orchestrator.assessment import assess
        from orchestrator.policies import DurationModel
        from orchestrator.proposals import Proposals
        from orchestrator.snapshot import ConnectorReader, build_snapshot
        from orchestrator.store import open_store

        now = datetime.now(UTC)
        props = Proposals(open_store(store_url))
        snap = build_snapshot(context.instance, ctx.graph, now=now, repository_def=context.repository_def,
                              connectors=ConnectorReader(fivetran=context.resources.fivetran,
                                                         airbyte=context.resources.airbyte))
        durations = DurationModel(snap.durations)
        assessment = assess(snap, ctx.resolution, durations, memory=props.memory, now=now)
        r = props.run_cycle(snap, assessment, ctx.resolution, durations, now=now)
        counts = {k: sum(1 for d in r.decisions if d.decision == k) for k in ("execute", "await_approval", "record_only")}
        return dg.SkipReason(
            f"proposal {r.proposal_id} ({r.plan.planner}): {counts['execute']} to execute, "
            f"{counts['await_approval']} awaiting approval, {counts['record_only']} recorded, "
            f"{len(r.rejected)} rejected, {len(r.new_action_ids)} new")

    return _planning


def definitions(ctx) -> dg.Definitions:
    """Registry entry (sensors/__init__.py): the execution and planning sensors, bound to the
    project's resources."""
    return dg.Definitions(sensors=[
        build_execution_sensor(resolution=ctx.resolution, clients=_project_clients,
                               required_resource_keys={"fivetran", "airbyte"}),
        build_planning_sensor(ctx),
    ])
