"""Owners told where they work, and the agent visible in the Dagster UI.

* ``owner_notifications_sensor`` (30 s): one notification tick (``orchestrator.notify``): each
  incident change told once to its owners' Slack channel (one thread per incident: opened, what
  was done, resolved) and Teams webhook, with the signed Approve/Reject links. Skips, saying what
  to set, when no route is configured; ``ORCHESTRATOR_NOTIFY=off`` stops it.
* ``agent_proposals_sensor`` (30 s) and the ``agent_proposal`` check on every asset: WARN while a
  proposal touching the asset waits for approval (action, risk, confidence, expiry, Approve/Reject
  links, how to approve from the Launchpad or a terminal); passed once decided, with its status
  and links to the runs it launched (the runs carry ``orchestrator/proposal_id`` and
  ``orchestrator/action_id`` tags). Only changes are reported (cursor).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from urllib.parse import quote

import dagster as dg

from . import ProjectContext
from ._checks import multi_asset_check

UTC = timezone.utc
CHECK_NAME = "agent_proposal"
PROPOSALS_SENSOR = "agent_proposals_sensor"
NOTIFY_SENSOR = "owner_notifications_sensor"


def dagster_url() -> str:
    return os.environ.get("ORCHESTRATOR_DAGSTER_URL", "http://127.0.0.1:3000").rstrip("/")


def run_url(run_id: str) -> str:
    return f"{dagster_url()}/runs/{quote(run_id)}"


def _incident_metadata(view) -> tuple[dict, str]:
    """The ``incident/*`` metadata of the newest incident touching the asset, and a sentence."""
    inc = view.incident if view is not None else None
    if not inc:
        return {}, ""
    meta: dict = {
        "incident/id": inc["id"], "incident/status": inc["status"], "incident/category": inc["category"],
        "incident/root": inc["root"], "incident/at": inc["at"], "incident/cascade": inc["cascade"],
        "incident/summary": dg.MetadataValue.text(inc["summary"]),
        "incident/remediation": dg.MetadataValue.md("\n".join(f"1. {r}" for r in inc["remediation"]) or "-"),
        "incident/show": f"orchestrator incidents show {inc['id']}",
    }
    if inc["deadlines"]:
        meta["incident/deadlines"] = ", ".join(inc["deadlines"])
    if inc["postmortem"]:
        meta["incident/postmortem"] = dg.MetadataValue.text(inc["postmortem"])
    if inc["status"] == "resolved":
        return meta, f" Incident {inc['id']} resolved: {inc['postmortem'] or inc['summary']}"
    return meta, f" Incident {inc['id']} open ({inc['category']}): {inc['summary']}"


def _evaluation(key: str, view) -> dg.AssetCheckEvaluation:
    asset_key = dg.AssetKey.from_user_string(key)
    inc_meta, inc_desc = _incident_metadata(view)
    if view is not None and view.waiting:
        first = view.pending[0]
        meta: dict = {
            "action": first["action"], "action_id": first["action_id"], "proposal_id": first["proposal_id"],
            "risk": first["risk"], "risk_score": float(first["risk_score"] or 0.0),
            "confidence": float(first["confidence"]) if first["confidence"] is not None else float("nan"),
            "expires_at": first["expires_at"], "reason": first["reason"], "waiting": len(view.pending),
            "approve_in_dagster": f"Launch the approve_proposals job with proposal_ids: [{first['action_id']}]",
            "approve_in_terminal": f"orchestrator proposals approve {first['action_id']}",
        }
        if first.get("approve_url"):
            meta["approve"] = dg.MetadataValue.url(first["approve_url"])
            meta["reject"] = dg.MetadataValue.url(first["reject_url"])
        if len(view.pending) > 1:
            meta["all_waiting"] = dg.MetadataValue.json(
                [{k: v for k, v in p.items() if not k.endswith("_url")} for p in view.pending])
        desc = (f"Waiting for approval: {first['action']} (risk {first['risk'] or '?'}"
                + (f", expires {first['expires_at'][:16].replace('T', ' ')} UTC" if first["expires_at"] else "")
                + ")" + (f" and {len(view.pending) - 1} more" if len(view.pending) > 1 else "")) + inc_desc
        meta.update(inc_meta)
        return dg.AssetCheckEvaluation(asset_key=asset_key, check_name=CHECK_NAME, passed=False,
                                       severity=dg.AssetCheckSeverity.WARN, metadata=meta, description=desc[:2000])
    meta = {"waiting": 0}
    desc = "No proposal of the agent is waiting for approval."
    if view is not None and view.recent:
        last = view.recent[-1]
        meta.update({"last_action": last["action"], "last_action_id": last["action_id"],
                     "last_proposal_id": last["proposal_id"], "last_status": last["status"]})
        if last.get("run_urls"):
            meta["launched_run"] = dg.MetadataValue.url(last["run_urls"][-1])
            meta["launched_runs"] = dg.MetadataValue.json(last["run_urls"])
        desc += f" Last: {last['action']} - {last['status']}."
    meta.update(inc_meta)
    desc += inc_desc
    return dg.AssetCheckEvaluation(asset_key=asset_key, check_name=CHECK_NAME, passed=True, metadata=meta,
                                   description=desc[:2000])


def proposals_tick(ctx: ProjectContext, state: dict, *, now: datetime, store=None, approval_settings=None
                   ) -> tuple[list[dg.AssetCheckEvaluation], dict]:
    """(evaluations to report, new cursor state {key: fingerprint}) for the assets whose view changed."""
    from orchestrator.notify.ui import proposals_by_asset, signer
    from orchestrator.store import open_store

    store = store or open_store()
    known = {k.to_user_string() for k in ctx.asset_specs} if ctx.asset_specs else set(ctx.graph.keys)
    from orchestrator.diagnosis.incidents import deadlines_from_resolution

    views = proposals_by_asset(store, ctx.graph, now=now, links=signer(approval_settings, now=now),
                               run_url=run_url, deadlines_of=deadlines_from_resolution(ctx.resolution))
    events, new_state = [], {}
    for key in sorted(set(views) | set(state)):
        if key not in known:
            continue
        view = views.get(key)
        fp = view.fingerprint() if view is not None else "none"
        if fp != "none":
            new_state[key] = fp
        if state.get(key, "none") != fp:
            events.append(_evaluation(key, view))
    return events, new_state


def build_proposals_sensor(ctx: ProjectContext, *, store_url: str | None = None, clock=lambda: datetime.now(UTC),
                           minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    @dg.sensor(name=PROPOSALS_SENSOR, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Shows on each asset (agent_proposal check) the agent's proposals waiting for approval.")
    def agent_proposals_sensor(context: dg.SensorEvaluationContext):
        from orchestrator.store import open_store

        state = json.loads(context.cursor) if context.cursor else {}
        events, new_state = proposals_tick(ctx, state, now=clock(), store=open_store(store_url))
        if not events:
            return dg.SensorResult(cursor=json.dumps(new_state), skip_reason="no proposal change")
        return dg.SensorResult(asset_events=events, cursor=json.dumps(new_state))

    return agent_proposals_sensor


def build_proposal_checks(ctx: ProjectContext, *, store_url: str | None = None):
    keys = sorted(k.to_user_string() for k in ctx.asset_specs) if ctx.asset_specs else sorted(ctx.graph.keys)
    if not keys:
        return []
    specs = [dg.AssetCheckSpec(CHECK_NAME, asset=dg.AssetKey.from_user_string(k),
                               description="WARN while a proposal of the scheduling agent touching this asset "
                                           "waits for approval (action, risk, expiry, approve link).")
             for k in keys]

    @multi_asset_check(specs=specs, can_subset=True, name="agent_proposal_checks")
    def agent_proposal_checks(context):
        from orchestrator.store import open_store

        wanted = {k.asset_key.to_user_string() for k in context.selected_asset_check_keys}
        events, _ = proposals_tick(ctx, {k: "?" for k in wanted}, now=datetime.now(UTC),
                                   store=open_store(store_url))
        for ev in events:
            if ev.asset_key.to_user_string() in wanted:
                yield dg.AssetCheckResult(asset_key=ev.asset_key, check_name=CHECK_NAME, passed=ev.passed,
                                          severity=ev.severity, metadata=ev.metadata, description=ev.description)

    return [agent_proposal_checks]


def build_notifications_sensor(ctx: ProjectContext, *, store_url: str | None = None,
                               clock=lambda: datetime.now(UTC), minimum_interval_seconds: int = 30,
                               notifier_factory=None) -> dg.SensorDefinition:
    @dg.sensor(name=NOTIFY_SENSOR, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Tells each incident's owners in Slack (one thread per incident) and Teams, once per change.")
    def owner_notifications_sensor(context: dg.SensorEvaluationContext):
        from orchestrator.notify import Notifier, owners_from_project
        from orchestrator.store import open_store

        store = open_store(store_url)
        notifier = (notifier_factory(store) if notifier_factory is not None
                    else Notifier(store, owners_of=owners_from_project(ctx.graph, ctx.resolution)))
        report = notifier.tick(clock())
        if report.skipped:
            return dg.SkipReason(report.skipped)
        for f in report.failed:
            context.log.error(f"notification to {f['destination']} refused: {f['why']}")
        summary = (f"{len(report.sent)} sent, {report.already_sent} already sent, {len(report.deferred)} deferred, "
                   f"{len(report.failed)} refused over {report.incidents} incident(s)")
        context.log.info(summary)
        return dg.SkipReason(summary)

    return owner_notifications_sensor


def definitions(ctx: ProjectContext) -> dg.Definitions:
    return dg.Definitions(asset_checks=build_proposal_checks(ctx),
                          sensors=[build_proposals_sensor(ctx), build_notifications_sensor(ctx)])
