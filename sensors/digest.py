"""Daily digest and approvals in Dagster: the digest asset, its schedule, the approval job.

* ``orchestrator_digest`` (external asset, group ``orchestrator``; not materializable from the asset
  graph, so "Materialize all" leaves it out) recorded by the ``daily_digest`` job (an op job):
  builds the per-owner digest from the instance (snapshot -> assessment) and the project store;
  its ``preview`` metadata is the Markdown digest (Assets -> orchestrator_digest). It sends (SMTP,
  else ``.eml`` files in the outbox) when launched by the schedule or with ``send: true`` in its
  config; otherwise it only renders the preview. It depends on no data asset and is left out of
  ``refresh_everything`` and of the graph the SLA policies and the planner reason over.
* ``daily_digest_schedule``: ``ORCHESTRATOR_DIGEST_CRON`` (default ``0 7 * * *``) in
  ``ORCHESTRATOR_DIGEST_TZ`` (default ``America/New_York``); ``ORCHESTRATOR_DIGEST_SCHEDULE=off``
  leaves it stopped.
* ``approve_proposals`` (job, Launchpad): config ``proposal_ids`` (proposal or action ids),
  ``decision`` (approve | reject | cancel), ``approver``, ``comment``; the same ``Proposals`` API as the CLI,
  recorded with ``via=ui`` and the run id. Approved actions run through the execution sensor.
"""


import os
from datetime import datetime, timedelta, timezone

import dagster as dg

from orchestrator.settings import Settings

UTC = timezone.utc
DIGEST_KEY = dg.AssetKey("orchestrator_digest")
SCHEDULE_NAME = "daily_digest_schedule"
DIGEST_JOB = "daily_digest"
APPROVE_JOB = "approve_proposals"


class DigestConfig(dg.Config):
    send: bool | None = None  # None: send only when launched by the schedule
    hours: float = 24.0  # how far back "overnight" reaches


DIGEST_SPEC = dg.AssetSpec(
    DIGEST_KEY,
    group_name="orchestrator",
    kinds={"email"},
    owners=["team:data-platform"],
    description=(
        "Daily digest per owner (SLAs, outlook, automatic actions, approvals, failures, cost); built by the "
        "daily_digest job (sent by the schedule or with config send: true). Not materializable from the asset "
        "graph: \"Materialize all\" leaves it out."
    ),
)


def build_digest_op(ctx, *, store_url: str | None = None) -> dg.OpDefinition:
    """The op of the ``daily_digest`` job: builds, renders and (when asked) sends the digest, and
    records a materialization of ``orchestrator_digest`` carrying the Markdown preview. The digest
    is an external asset (an ``AssetSpec``), so the asset graph's "Materialize all" never selects it
    (it needs a job of its own and has config)."""

    @dg.op(name="orchestrator_digest", required_resource_keys={"fivetran", "airbyte"},
           description="Build the daily digest; send it when launched by the schedule or with send: true.")
    def orchestrator_digest(context: dg.OpExecutionContext, config: DigestConfig):
        from orchestrator.assessment import assess
        from orchestrator.assessment.freshness import history_reach
        from orchestrator.digest import run_digest
        from orchestrator.policies import DurationModel
        from orchestrator.proposals import Proposals
        from orchestrator.snapshot import ConnectorReader, build_snapshot
        from orchestrator.store import open_store

        now = datetime.now(UTC)
        send = config.send if config.send is not None else (
            context.run.tags.get("dagster/schedule_name") == SCHEDULE_NAME)
        try:
            repo = context.repository_def
        except Exception:  # executed in process without a repository (tests, execute_in_process)
            repo = None
        # read as far back as the other decision paths do, so the digest's statuses are theirs
        reach = history_reach(ctx.resolution, now)
        try:
            connectors = ConnectorReader(fivetran=context.resources.fivetran, airbyte=context.resources.airbyte)
            snap = build_snapshot(context.instance, ctx.graph, now=now, repository_def=repo, connectors=connectors,
                                  reach=reach)
        except Exception as exc:  # a connector API down must not stop the digest
            context.log.warning(f"connector state unavailable for the digest: {exc}")
            snap = build_snapshot(context.instance, ctx.graph, now=now, repository_def=repo, reach=reach)
        store = open_store(store_url)
        durations = DurationModel(snap.durations)
        from orchestrator.recovery import stored_diagnoses

        known = stored_diagnoses(store, [f.failure_id for f in snap.failures])  # the failure sensor's
        assessment = assess(snap, ctx.resolution, durations, memory=Proposals(store).memory, now=now,
                            known_diagnoses=known)
        run = run_digest(store, snap, assessment, ctx.resolution, now=now,
                         since=now - timedelta(hours=config.hours), send=True, deliver_messages=send)
        t = run.digest.totals
        meta: dict = {
            "preview": dg.MetadataValue.md(run.markdown),
            "delivery": run.report.mode,
            "messages": len(run.outgoing),
            "recipients": ", ".join(sorted({o.to for o in run.outgoing})) or "-",
            "owners": len(run.digest.owners),
            "to_approve": t.get("pending", 0),
            "at_risk": t.get("at_risk", 0) + t.get("late_now", 0),
            "sla_met": t.get("met", 0),
            "sla_breached": t.get("breached", 0),
            "approval_links": run.links,
        }
        if run.report.outbox is not None:
            meta["outbox"] = dg.MetadataValue.path(str(run.report.outbox))
            context.log.info(f"digest written to {run.report.outbox}: " + ", ".join(p.name for p in run.report.paths))
        if run.report.unaddressed:
            meta["unaddressed_owners"] = ", ".join(run.report.unaddressed)
        yield dg.AssetMaterialization(asset_key=DIGEST_KEY, metadata=meta)
        yield dg.Output(None)

    return orchestrator_digest


def build_digest_asset(ctx, *, store_url: str | None = None) -> dg.AssetSpec:
    """Kept for callers of the former asset: the digest's asset is now ``DIGEST_SPEC`` (external)."""
    return DIGEST_SPEC


class ApproveConfig(dg.Config):
    proposal_ids: list[str]  # proposal ids (every pending action of it) or action ids
    decision: str = "approve"  # approve | reject | cancel
    approver: str  # who decides (recorded in the audit trail)
    comment: str | None = None


def decide_ids(props, ids: list[str], decision: str, approver: str, *, comment: str | None = None,
               via: str = "ui", now: datetime | None = None) -> tuple[list[dict], list[str]]:
    """Approve/reject each id (a proposal id expands to its pending actions). Returns (decided
    actions, problems)."""
    if decision not in ("approve", "reject", "cancel"):
        raise ValueError(f"decision must be approve, reject or cancel, not {decision!r}")
    fn = {"approve": props.approve, "reject": props.reject, "cancel": props.cancel}[decision]
    open_ = ("pending", "approved") if decision == "cancel" else ("pending",)
    done, problems = [], []
    for ident in dict.fromkeys(i.strip() for i in ids if i and i.strip()):
        try:
            shown = props.show(ident)
        except KeyError as exc:
            problems.append(str(exc).strip("'\""))
            continue
        if "action_id" in shown:
            targets = [ident]
        else:
            targets = [a["action_id"] for a in shown["actions"] if a["status"] in open_]
            if not targets:
                problems.append(f"proposal {ident} has no {' or '.join(open_)} action")
        for aid in targets:
            try:
                done.append(fn(aid, actor=approver, via=via, comment=comment, now=now))
            except (KeyError, ValueError) as exc:
                problems.append(str(exc).strip("'\""))
    return done, problems


def build_approve_job(*, store_url: str | None = None) -> dg.JobDefinition:
    @dg.op(name="decide_proposals", description="Approve or reject proposals of the scheduling agent.")
    def decide_proposals(context: dg.OpExecutionContext, config: ApproveConfig) -> None:
        from orchestrator.proposals import Proposals
        from orchestrator.store import open_store

        approver = config.approver.strip()
        if not approver:
            raise dg.Failure("approver is required (who decides is recorded in the audit trail)")
        props = Proposals(open_store(store_url))
        comment = config.comment or f"Dagster run {context.run_id}"
        done, problems = decide_ids(props, config.proposal_ids, config.decision, approver, comment=comment)
        for d in done:
            props.store.append_audit("approval.ui", actor=approver, subject=f"action:{d['action_id']}", payload={
                "decision": config.decision, "status": d["status"], "run_id": context.run_id,
                "job": context.job_name})
            context.log.info(f"{d['action_id']} ({d['type']}): {d['status']} by {approver}")
        context.log.info(f"{len(done)} decided, {len(problems)} refused")
        if problems:
            raise dg.Failure(description=f"{len(done)} decided, {len(problems)} refused: " + "; ".join(problems),
                             metadata={"decided": ", ".join(d["action_id"] for d in done) or "-"})

    @dg.job(name=APPROVE_JOB, description="Approve or reject proposals from the Launchpad: config proposal_ids, "
                                          "decision (approve | reject | cancel), approver, comment.",
            tags={"orchestrator/kind": "approval"})
    def approve_proposals():
        decide_proposals()

    return approve_proposals


def definitions(ctx) -> dg.Definitions:
    settings = Settings()
    digest_op = build_digest_op(ctx)

    @dg.job(name=DIGEST_JOB, tags={"orchestrator/kind": "digest"},
            description="Build the daily digest (Markdown preview on the orchestrator_digest asset) and "
                        "send it when launched by the schedule or with send: true.")
    def daily_digest():
        digest_op()

    job = daily_digest
    status = (dg.DefaultScheduleStatus.STOPPED if os.environ.get("ORCHESTRATOR_DIGEST_SCHEDULE") == "off"
              else dg.DefaultScheduleStatus.RUNNING)
    schedule = dg.ScheduleDefinition(
        name=SCHEDULE_NAME, job=job, cron_schedule=settings.digest_cron,
        execution_timezone=settings.digest_tz, default_status=status,
        description="Every morning: the digest per owner, with one-click approvals.",
    )
    return dg.Definitions(assets=[DIGEST_SPEC], jobs=[job, build_approve_job()], schedules=[schedule])
