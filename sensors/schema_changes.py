"""Schema-change sensor: what the connectors now land against what the dbt project expects.

Every tick (60 s) it looks at each dbt source table whose newest landed file changed, diffs it
against the manifest (``orchestrator.schema_changes``), works out the impact by column lineage
down to the dashboards and their deadlines, and:

* shows it on the connector table asset: a ``schema_contract`` check (ERROR when a change breaks
  a model, WARN for non-breaking changes, passed when the table matches again) with the summary
  ("removes stripe.invoice.amount_due: breaks 1 model, blocks 3, 1 dashboard due 06:00 ..."),
  the changes, the broken/blocked models, dashboards and what is done about each change;
* records a ``schema_change.detected`` audit event (the digest lists them for the owners);
* once a table whose change broke models matches the project again (the patch merged and
  deployed, or a person's fix), reports those models repaired (``incident.repaired``,
  ``orchestrator.proposals.record_repair``): the planner retries them at once;
* for a non-breaking change the connector's setting propagates (a type change: the landed
  history has the old type), a table resync -- run at once when the governing policy lets
  ``resync_table`` run without approval, once per change; otherwise it is only reported;
* for breaking renames and type changes, requests a ``schema_patch`` run: it builds the patch,
  verifies it with ``dbt compile`` + ``dbt build`` in a scratch DuckDB and records the proposal
  for approval (``orchestrator.schema_changes.store``). Nothing is applied without approval.

``ORCHESTRATOR_SCHEMA_SENSOR=off`` leaves it stopped.
"""

import hashlib
import json
import logging
import os
from datetime import timezone
from pathlib import Path

import dagster as dg

from orchestrator.core.graph import CONNECTOR_TABLE, DBT_MODEL
from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.fivetran import FivetranWorkspaceResource
from . import ProjectContext
from ._checks import multi_asset_check

log = logging.getLogger(__name__)
UTC = timezone.utc
SENSOR_NAME = "schema_change_sensor"
CHECK_NAME = "schema_contract"
JOB_NAME = "schema_patch"


def _project_dir() -> Path:
    from ..assets.dbt import dbt_project

    return Path(dbt_project().project_dir)


def _parsed_manifest() -> dict:
    from ..assets.dbt import ensure_manifest

    return json.loads(ensure_manifest().read_text())


def _paths():
    from orchestrator.settings import get_settings

    settings = get_settings()
    return settings.landing_dir, settings.home / "schema_changes"


def schema_tick(ctx: ProjectContext, state: dict, *, manifest: dict, landing_dir: Path, cache_dir: Path,
                project_dir: Path, lineage=None, store=None, settings=None, resync=None, llm: bool | None = None):
    """(reports, check evaluations, run requests, new state). state: {"seen": {key: fingerprint},
    "bad": [keys whose check is failing]}."""
    from orchestrator.schema_changes import impact as impact_mod
    from orchestrator.schema_changes.lineage import build_lineage
    from orchestrator.schema_changes.scan import compiled_manifest, scan

    graph = ctx.graph
    keys = {k for k in graph.keys if graph.node(k).role == CONNECTOR_TABLE}
    cache: dict = {}

    def project_lineage():
        if "lineage" not in cache:
            cache["lineage"] = lineage() if lineage else build_lineage(
                compiled_manifest(project_dir, landing_dir, cache_dir))
        return cache["lineage"]

    def owners_of(model: str) -> set[str]:
        return set(graph.node(model).owners) if model in graph and graph.node(model).role == DBT_MODEL else set()

    def deadlines():
        return impact_mod.deadlines_from_resolution(ctx.resolution, project_lineage())

    if llm is None:  # breaking changes no rule answers go to the LLM agent when one is configured
        from orchestrator.agent.client import LLMConfig

        llm = LLMConfig.from_env() is not None
    seen = dict(state.get("seen") or {})
    bad = set(state.get("bad") or [])
    broken = {k: set(v) for k, v in (state.get("broken") or {}).items()}  # table -> models it broke
    # the project's expectations changed (a patch merged and deployed): look at the failing tables
    # again now, not only when their connector lands a new file
    expects = _sources_digest(manifest)
    if state.get("expects") not in (None, expects):
        for k in bad:
            seen.pop(k, None)
    reports = scan(manifest, landing_dir, lambda: project_lineage(), seen=seen, owners_of=owners_of,
                   connector_keys=keys, deadlines=_Lazy(deadlines), settings=settings, llm=llm)
    resynced = {k: set(v) for k, v in (state.get("resynced") or {}).items()}
    events, runs = [], []
    for report in reports:
        todo = [found.change.describe(report.table) for found, (_, action) in zip(report.impacts, report.handling)
                if action == "resync_table"]
        todo = [what for what in todo if what not in resynced.get(report.key, set())]
        sla = ctx.resolution.sla(report.key) if ctx.resolution is not None and ctx.resolution.ok else None
        # otherwise reported on the check: the policy wants a person (or the planner) to decide
        if todo and resync is not None and sla is not None and sla.may_run_without_approval("resync_table"):
            resync(report.key, graph.node(report.key).connector)  # one table resync for all its changes
            resynced.setdefault(report.key, set()).update(todo)
            if store is not None:
                store.append_audit("schema_change.resynced", subject=report.key, payload={"changes": todo})
        seen[report.key] = report.fingerprint
        if not report.diff:
            if report.key in bad:
                bad.discard(report.key)
                events.append(dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey.from_user_string(report.key), check_name=CHECK_NAME, passed=True,
                    metadata={"schema/summary": f"{report.table} matches the dbt sources again"}))
            # the models it broke are repaired (a patch merged and deployed, a person's fix): the
            # planner retries them at once instead of leaving them escalated for the cycle
            fixed = broken.pop(report.key, set())
            if fixed and store is not None:
                from orchestrator.core.incidents import ANY_CLASS
                from orchestrator.proposals import record_repair

                for model in sorted(fixed):
                    record_repair(store, f"asset:{model}", ANY_CLASS, SENSOR_NAME)
            continue
        breaking = report.breaking
        bad.add(report.key)
        if breaking:
            broken.setdefault(report.key, set()).update(m for i in breaking for m in i.broken_models)
        events.append(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey.from_user_string(report.key), check_name=CHECK_NAME, passed=False,
            severity=dg.AssetCheckSeverity.ERROR if breaking else dg.AssetCheckSeverity.WARN,
            description="; ".join(i.summary() for i in (breaking or report.impacts))[:1000],
            metadata=check_metadata(report)))
        payload = {"table": report.table, "key": report.key, "breaking": bool(breaking),
                   "summaries": [i.summary() for i in report.impacts], "owners": sorted(report.owners),
                   "handling": report.handling, "origin": report.diff.origin}
        if store is not None:
            store.append_audit("schema_change.detected", subject=report.key, payload=payload)
        if any(action in ("patch", "llm_patch") for _, action in report.handling):
            # one patch run per distinct set of changes (not per sync that lands it again)
            changes = hashlib.sha256("\n".join(sorted(payload["summaries"])).encode()).hexdigest()[:16]
            runs.append(dg.RunRequest(run_key=f"{JOB_NAME}:{report.key}:{changes}", job_name=JOB_NAME,
                                      run_config={"ops": {"propose_schema_patch": {"config": {"keys": [report.key]}}}},
                                      tags={"orchestrator/schema_table": report.key}))
    return reports, events, runs, {"seen": seen, "bad": sorted(bad),
                                   "resynced": {k: sorted(v) for k, v in resynced.items()},
                                   "broken": {k: sorted(v) for k, v in broken.items()}, "expects": expects}


def _sources_digest(manifest: dict) -> str:
    """A digest of what the project expects of its sources (their columns and types)."""
    body = {k: v.get("columns") for k, v in sorted((manifest.get("sources") or {}).items())}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ConnectorSettings:
    """The connector's schema-change setting per connector table, read from its API on demand
    (Fivetran ``schema_change_handling``, Airbyte ``nonBreakingChangesPreference``)."""

    def __init__(self, graph, fivetran=None, airbyte=None):
        self.graph, self.fivetran, self.airbyte, self.cache = graph, fivetran, airbyte, {}

    def __bool__(self) -> bool:
        return True

    def get(self, key, default=None):
        if key not in self.cache:
            self.cache[key] = self._read(key)
        return self.cache[key] if self.cache[key] is not None else default

    def _read(self, key):
        node = self.graph.node(key) if key in self.graph else None
        system, _, cid = ((node.connector if node else None) or "").partition(":")
        try:
            if system == "fivetran" and self.fivetran is not None:
                return self.fivetran.get_client().get_schema_config_for_connector(cid).get("schema_change_handling")
            if system == "airbyte" and self.airbyte is not None:
                details = self.airbyte.get_client().get_connection_details(connection_id=cid)
                return details.get("nonBreakingChangesPreference") or details.get("nonBreakingSchemaUpdatesBehavior")
        except Exception as exc:  # noqa: BLE001 - an unreadable setting counts as unknown
            log.warning("schema-change setting of %s unreadable: %s", key, exc)
        return None


def resync_table(fivetran, airbyte):
    """A table resync through the dagster-fivetran / dagster-airbyte clients."""

    def call(key: str, connector: str | None) -> None:
        schema, _, table = key.partition("/")
        system, _, cid = (connector or "").partition(":")
        if system == "fivetran":
            fivetran.get_client().start_resync(cid, resync_parameters={schema: [table]})
        elif system == "airbyte":
            client = airbyte.get_client()
            client._single_request(method="POST", url=f"{client.configuration_api_base_url}/connections/reset/stream",
                                   data={"connectionId": cid, "streams": [{"streamName": table}]})
        else:
            raise ValueError(f"{key}: no connector to resync it")

    return call


class _Lazy(dict):
    """A mapping computed on first use (deadlines need the lineage, which may compile)."""

    def __init__(self, compute):
        super().__init__()
        self._compute, self._done = compute, False

    def _load(self):
        if not self._done:
            self._done = True
            self.update(self._compute())

    def get(self, key, default=None):
        self._load()
        return super().get(key, default)

    def __contains__(self, key):
        self._load()
        return super().__contains__(key)

    def __getitem__(self, key):
        self._load()
        return super().__getitem__(key)


def check_metadata(report) -> dict:
    rows = ["| change | breaking | broken models | blocked | dashboards | handling |", "|---|---|---|---|---|---|"]
    for found, (_, action) in zip(report.impacts, report.handling):
        dashboards = ", ".join(f"{d.exposure} (due {d.label})" for d in found.deadlines) or ", ".join(sorted(found.exposures))
        rows.append(f"| {found.change.describe(report.table)} | {'yes' if found.breaking else 'no'} | "
                    f"{', '.join(sorted(found.broken_models)) or '-'} | {len(found.blocked_models)} | "
                    f"{dashboards or '-'} | {action} |")
    return {
        "schema/summary": dg.MetadataValue.text("\n".join(i.summary() for i in report.impacts)),
        "schema/changes": dg.MetadataValue.md("\n".join(rows)),
        "schema/impact": dg.MetadataValue.json([i.as_dict() for i in report.impacts]),
        "schema/breaking": len(report.breaking),
        "schema/delivered": report.diff.origin,
    }


def build_schema_sensor(ctx: ProjectContext, *, minimum_interval_seconds: int = 60,
                        paths=None, manifest_loader=None, project_dir=None, lineage=None,
                        store_factory=None, notifier_factory=None, clock=None) -> dg.SensorDefinition:
    enabled = os.environ.get("ORCHESTRATOR_SCHEMA_SENSOR", "on").lower() not in ("off", "0", "false")

    @dg.sensor(name=SENSOR_NAME, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING if enabled else dg.DefaultSensorStatus.STOPPED,
               job_name=JOB_NAME,
               description="Schema changes in landed connector tables: impact by column lineage, "
                           "schema_contract checks, verified patches proposed for approval.")
    def schema_change_sensor(context, fivetran: FivetranWorkspaceResource, airbyte: AirbyteWorkspaceResource):
        from orchestrator.store import open_store

        landing_dir, cache_dir = (paths or _paths)()
        state = json.loads(context.cursor) if context.cursor else {}
        store = (store_factory or open_store)()
        _, events, runs, new_state = schema_tick(
            ctx, state, manifest=(manifest_loader or _parsed_manifest)(), landing_dir=landing_dir,
            cache_dir=cache_dir, project_dir=project_dir or _project_dir(), lineage=lineage, store=store,
            settings=ConnectorSettings(ctx.graph, fivetran, airbyte), resync=resync_table(fivetran, airbyte))
        # the owners hear of a breaking change in this same tick (Slack / Teams routes), and of its patch
        told = tell_owners(store, notifier_factory, clock)
        if told:
            context.log.info(told)
        if not events and not runs:
            return dg.SensorResult(cursor=json.dumps(new_state), skip_reason="no schema change")
        return dg.SensorResult(asset_events=events, run_requests=runs, cursor=json.dumps(new_state))

    return schema_change_sensor


def tell_owners(store, notifier_factory=None, clock=None) -> str | None:
    """One schema-change notification tick (``orchestrator.schema_changes.notify``); a summary."""
    from datetime import datetime

    from orchestrator.schema_changes.notify import SchemaChangeNotifier

    try:
        notifier = notifier_factory(store) if notifier_factory else SchemaChangeNotifier(store, budget_s=15.0)
        report = notifier.tick((clock or (lambda: datetime.now(UTC)))())
    except Exception as exc:  # noqa: BLE001 - telling people must not stop detection
        log.warning("schema-change notifications failed: %s", exc)
        return None
    if report.skipped or not (report.sent or report.failed or report.deferred):
        return None
    return (f"schema-change notifications: {len(report.sent)} sent, {len(report.deferred)} deferred, "
            f"{len(report.failed)} refused")


def propose_patches(keys: list[str], *, manifest: dict, landing_dir: Path, cache_dir: Path, project_dir: Path,
                    resolution=None, store=None, llm_config=None, llm_client=None):
    """Builds, verifies and records the patch for the breaking changes of `keys`: renames and type
    changes by rule; the others (a removed column ...) by the LLM agent when one is configured,
    over the rule-based edits. Recorded as ``proposed`` only when its dbt build passes."""
    from orchestrator.agent.client import LLMConfig
    from orchestrator.schema_changes import impact as impact_mod
    from orchestrator.schema_changes import llm_patch
    from orchestrator.schema_changes import patch as patch_mod
    from orchestrator.schema_changes.lineage import build_lineage
    from orchestrator.schema_changes.scan import compiled_manifest, scan
    from orchestrator.schema_changes.store import SchemaPatches

    compiled = compiled_manifest(project_dir, landing_dir, cache_dir)
    lin = build_lineage(compiled)
    reports = scan(manifest, landing_dir, lambda: lin, connector_keys=set(keys),
                   deadlines=impact_mod.deadlines_from_resolution(resolution, lin))
    breaking = [i for r in reports for i in r.breaking]
    by_rule = [i for i in breaking if i.change.kind in ("renamed", "type_changed")]
    the_patch = patch_mod.build_patch(project_dir, compiled, by_rule) if by_rule else patch_mod.Patch()
    answered = set(the_patch.answered)
    rest = [i for i in breaking if i.summary() not in answered]
    config = llm_config if llm_config is not None else LLMConfig.from_env()
    patches = SchemaPatches(store)
    impacts = [i for i in by_rule if i.summary() in answered]
    if rest and config is not None:
        outcome = llm_patch.ask_for_patch(project_dir, compiled, rest, base=the_patch if the_patch.files else None,
                                          delivered={r.table: r.delivered for r in reports}, config=config,
                                          client=llm_client)
        patches.store.append_audit("schema_patch.llm", subject=",".join(sorted(keys)), payload={
            "reason": outcome.reason, "model": outcome.model, "rationale": outcome.rationale,
            "changes": [i.summary() for i in rest],
            "calls": [{"outcome": c.outcome, "latency_s": c.latency_s, "cost_usd": c.cost_usd, "error": c.error}
                      for c in outcome.calls]})
        if outcome.patch is not None:
            outcome.patch.author = "+".join(filter(None, ["rules" if the_patch.files else "", outcome.patch.author]))
            the_patch, impacts = outcome.patch, impacts + rest
    if not the_patch.files:
        return None
    verification = patch_mod.verify(project_dir, the_patch, landing_dir)
    return patches.propose(the_patch, impacts, verification)


def build_patch_job(ctx: ProjectContext) -> dg.JobDefinition:
    @dg.op(name="propose_schema_patch", config_schema={"keys": [str]})
    def propose_schema_patch(context):
        landing_dir, cache_dir = _paths()
        proposal = propose_patches(context.op_config["keys"], manifest=_parsed_manifest(), landing_dir=landing_dir,
                                   cache_dir=cache_dir, project_dir=_project_dir(), resolution=ctx.resolution)
        if proposal is None:
            context.log.info("no patch: nothing a rule answers, and no LLM answer that passed the envelope")
            return
        context.log.info(f"schema patch {proposal.id}: {proposal.status} ({proposal.summary})")
        if proposal.status != "proposed":
            raise dg.Failure(f"schema patch {proposal.id} did not verify: dbt build failed on the new data",
                             metadata={"verification": dg.MetadataValue.json(proposal.verification or {})})

    @dg.job(name=JOB_NAME, description="Build, verify (dbt compile + build in a scratch DuckDB) and propose "
                                       "the patch for breaking schema changes.")
    def schema_patch():
        propose_schema_patch()

    return schema_patch


def build_schema_checks(ctx: ProjectContext) -> list[dg.AssetChecksDefinition]:
    keys = sorted(k for k in ctx.graph.keys if ctx.graph.node(k).role == CONNECTOR_TABLE)
    if not keys:
        return []
    specs = [dg.AssetCheckSpec(CHECK_NAME, asset=dg.AssetKey.from_user_string(k),
                               description="The landed table matches the dbt sources (columns, names, types); "
                                           "reported by the schema_change_sensor.") for k in keys]

    @multi_asset_check(specs=specs, can_subset=True, name="schema_contract_checks")
    def schema_contract_checks(context):
        landing_dir, cache_dir = _paths()
        wanted = {k.asset_key.to_user_string() for k in context.selected_asset_check_keys}
        reports, _, _, _ = schema_tick(ctx, {}, manifest=_parsed_manifest(), landing_dir=landing_dir,
                                       cache_dir=cache_dir, project_dir=_project_dir())
        by_key = {r.key: r for r in reports}
        for key in sorted(wanted):
            report = by_key.get(key)
            if report is None or not report.diff:
                yield dg.AssetCheckResult(asset_key=dg.AssetKey.from_user_string(key), check_name=CHECK_NAME,
                                          passed=True, metadata={"schema/summary": "matches (or nothing landed)"})
                continue
            yield dg.AssetCheckResult(
                asset_key=dg.AssetKey.from_user_string(key), check_name=CHECK_NAME, passed=False,
                severity=dg.AssetCheckSeverity.ERROR if report.breaking else dg.AssetCheckSeverity.WARN,
                metadata=check_metadata(report))

    return [schema_contract_checks]


def definitions(ctx: ProjectContext) -> dg.Definitions:
    return dg.Definitions(asset_checks=build_schema_checks(ctx), sensors=[build_schema_sensor(ctx)],
                          jobs=[build_patch_job(ctx)])
