"""``orchestrator plan`` and ``orchestrator proposals``.

    orchestrator plan --dry-run [--json]          what it would do now, and why (records nothing)
    orchestrator plan                             plan and record the proposal (the sensor executes)
    orchestrator plan --synthetic 1000 --dry-run  the same on a synthetic fleet (no Dagster needed)
    orchestrator proposals list [--status pending] [--json]
    orchestrator proposals show ID                an action (approvals, executions) or a proposal
    orchestrator proposals approve ID [--actor A] [--via cli] [--comment C]
    orchestrator proposals reject ID ...
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sqlite3
from datetime import datetime, timezone

import click

UTC = timezone.utc
log = logging.getLogger(__name__)


def _initialized(resource):
    """A Pythonic resource with its config processed (``EnvVar`` secrets read); None (a system
    not used) and a ``ResourceDefinition.none_resource`` stay None."""
    if resource is None or not hasattr(resource, "process_config_and_initialize"):
        return None
    import dagster as dg

    if not any(isinstance(v, dg.EnvVar) for v in dict(resource).values()):
        return resource  # nothing to resolve: config processing costs seconds of CPU for nothing
    return resource.process_config_and_initialize()


def _dagster_snapshot(now: datetime, graph, inputs, fivetran, airbyte, full: bool, reach=None):
    """The snapshot through a ``DagsterInstance`` and the project's resources (another instance
    layout than the default SQLite one, or ``--full``)."""
    import dagster as dg

    from orchestrator.resources.errors import api_deadline, sensor_api_deadline_s
    from orchestrator.snapshot import ConnectorReader, build_snapshot

    if not full:
        from orchestrator.resources import airbyte_workspace, enabled_systems, fivetran_workspace

        systems = enabled_systems()
        fivetran = fivetran_workspace() if "fivetran" in systems else None
        airbyte = airbyte_workspace() if "airbyte" in systems else None
    with dg.DagsterInstance.get() as instance:
        # the same inputs as the sensors: connector sync state included (failed syncs); the
        # resources initialized, as in a run, so EnvVar secrets are resolved
        connectors = ConnectorReader(fivetran=_initialized(fivetran), airbyte=_initialized(airbyte))
        with api_deadline(sensor_api_deadline_s()):
            return build_snapshot(instance, graph, now=now, connectors=connectors,
                                  resolvers=inputs.resolvers(), connector_settings=True, reach=reach)


def _project_inputs(now: datetime, full: bool = False, refresh: bool = False, props=None):
    """Graph, resolution, snapshot and assessment of the code location, from the Dagster instance.

    By default the graph is the plain one cached per version of its inputs
    (``orchestrator.graph_cache``: no Definitions loaded, no dagster-dbt imported); ``full``
    builds the whole code location as before (the reference ``tests/test_plan_fast_path.py``
    compares against), ``refresh`` rebuilds the cache. The same inputs as the planning sensor
    (``sensors.execution.build_planning_sensor``): the sensors' graph and policy resolution, the
    connectors' sync state and schema-change settings, the failure sensor's stored diagnoses and
    the failure memory of ``props`` (a ``Proposals``; default: the project store's)."""
    from orchestrator.settings import get_settings

    settings = get_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    if full:
        from orchestrator.definitions import build_project
        from orchestrator.graph_cache import from_project

        project = build_project()
        inputs = from_project(project)
        fivetran, airbyte = project.defs.resources["fivetran"], project.defs.resources["airbyte"]
    else:
        from orchestrator.graph_cache import plain_inputs

        inputs = plain_inputs(refresh=refresh)
        fivetran = airbyte = None
    graph = inputs.graph
    from orchestrator.policies import load_and_resolve

    # as the code location resolves them (orchestrator.definitions): the sensors' resolution
    resolution = load_and_resolve([settings.policies_dir], graph, unavailable_kinds=inputs.unavailable_kinds)
    from orchestrator.core.records import Snapshot
    from orchestrator.plain_instance import plain_instance

    plain = None if full else plain_instance(os.environ["DAGSTER_HOME"])
    from orchestrator.assessment.freshness import history_reach

    reach = history_reach(resolution, now)  # the data times every opening compares with
    try:
        from orchestrator.snapshot import ConnectorReader, build_snapshot
    except ImportError:
        snapshot = Snapshot(taken_at=now, graph=graph)
    else:
        if plain is not None:
            # No Dagster import: the instance's SQLite tables and the vendors' APIs read directly
            # (orchestrator.plain_instance / plain_clients), the same questions the sensors ask.
            from orchestrator.plain_clients import enabled_systems, plain_airbyte_client, plain_fivetran_client

            systems = enabled_systems()
            connectors = ConnectorReader(fivetran=plain_fivetran_client() if "fivetran" in systems else None,
                                         airbyte=plain_airbyte_client(inputs.airbyte_workspace_id)
                                         if "airbyte" in systems else None)
            try:
                snapshot = build_snapshot(plain, graph, now=now, connectors=connectors, resolvers=inputs.resolvers(),
                                          connector_settings=True, reach=reach)
            except sqlite3.Error as exc:  # tables of another schema version: Dagster reads them
                log.info("reading %s through Dagster: %s", plain.base, exc)
                plain = None
        if plain is None:
            snapshot = _dagster_snapshot(now, graph, inputs, fivetran, airbyte, full, reach)
    from orchestrator.policies import DurationModel

    durations = DurationModel(snapshot.durations)
    try:
        from orchestrator.assessment import assess

        from orchestrator.recovery import stored_diagnoses

        if props is None:
            from orchestrator.proposals import Proposals
            from orchestrator.store import open_store

            props = Proposals(open_store())
        try:  # the failure sensor's stored diagnoses, not a second diagnosis
            known = stored_diagnoses(props.store, [f.failure_id for f in snapshot.failures])
        except Exception:  # noqa: BLE001 - no store yet: diagnose here
            known = None
        assessment = assess(snapshot, resolution, durations, memory=props.memory, now=now, known_diagnoses=known)
    except ImportError:
        assessment = Assessment(taken_at=now)
    return snapshot, assessment, resolution, durations


def _print_result(result, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, default=str))
        return
    click.echo(f"planner: {result.plan.planner}" + (f" (LLM fallback: {result.fallback_reason})"
                                                     if result.fallback_reason else ""))
    click.echo(f"why: {result.plan.rationale}")
    if not result.decisions and not result.rejected:
        click.echo("nothing to do")
    for d in result.decisions:
        a = d.action
        what = ", ".join(a.asset_keys[:4]) + (f" (+{len(a.asset_keys) - 4})" if len(a.asset_keys) > 4 else "")
        if a.connector:
            what = f"{a.connector} {what}".strip()
        if a.partitions:
            what += f" partitions {', '.join(a.partitions[:5])}"
        when = f" not before {a.not_before:%Y-%m-%d %H:%M}Z" if a.not_before else ""
        click.echo(f"  {d.decision.upper():15} {a.type:20} prio {a.priority:>5}  {what}{when}")
        click.echo(f"      {a.action_id}: {a.reason}")
        click.echo(f"      gate: risk {d.risk} ({d.risk_score:.2f}), confidence {d.confidence:.2f}: {d.reason}")
    for a, why in result.rejected:
        click.echo(f"  {'REJECTED':15} {a.type:20} {', '.join(a.asset_keys[:4]) or a.connector or ''}: {why}")
    for e in result.plan.escalations:
        click.echo(f"  {'ESCALATE':15} {e.subject}: {e.reason} -> {', '.join(e.owners) or 'no owners'}")
    for c in result.llm_calls:
        click.echo(f"  llm: {c.model} {c.purpose} {c.outcome} tokens {c.prompt_tokens}/{c.completion_tokens} "
                   f"cost ${c.cost_usd or 0:.4f}")


@click.command("plan")
@click.option("--dry-run", is_flag=True, help="Show what would be done now and why; record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--synthetic", type=int, default=None, help="Plan a synthetic fleet of N assets instead.")
@click.option("--no-llm", is_flag=True, help="Deterministic planner only, even when an LLM is configured.")
@click.option("--store", "store_url", default=None, help="Project store URL (default ORCHESTRATOR_STORE_URL / SQLite).")
@click.option("--refresh", is_flag=True, help="Rebuild the cached project graph (a connector added in the vendor's UI).")
@click.option("--full", is_flag=True, help="Load the whole Dagster code location for the graph (slow; the reference).")
def plan_command(dry_run: bool, as_json: bool, synthetic: int | None, no_llm: bool, store_url: str | None,
                 refresh: bool = False, full: bool = False) -> None:
    """Plan now: deterministic planner (+ LLM review when configured), validation, risk gate."""
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store

    now = datetime.now(UTC)
    props = Proposals(open_store(store_url))
    if synthetic:
        from orchestrator.planning.synthetic import fleet

        f = fleet(synthetic)
        snapshot, assessment, resolution, durations, now = f.snapshot, f.assessment, f.resolution, f.durations, f.now
    else:
        snapshot, assessment, resolution, durations = _project_inputs(now, full=full, refresh=refresh, props=props)
    result = props.run_cycle(snapshot, assessment, resolution, durations, now=now,
                             llm=None if no_llm else "env", dry_run=dry_run)
    _print_result(result, as_json)
    if not dry_run and not as_json:
        click.echo(f"recorded proposal {result.proposal_id} ({len(result.new_action_ids)} new action(s))")


@click.group("proposals")
def proposals_group() -> None:
    """List, show, approve, reject and cancel the scheduling agent's proposals."""


def _props(store_url):
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store

    return Proposals(open_store(store_url))


@proposals_group.command("list")
@click.option("--status", default=None, help="pending, approved, executing, succeeded, failed, rejected, ...")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--store", "store_url", default=None)
def list_command(status, limit, as_json, store_url) -> None:
    rows = _props(store_url).list(status=status, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no proposals")
    for r in rows:
        keys = r["action"].get("asset_keys") or []
        what = r["action"].get("connector") or ", ".join(keys[:3]) + (f" (+{len(keys) - 3})" if len(keys) > 3 else "")
        click.echo(f"{r['action_id']:20} {r['status']:11} {r['type']:20} risk {r['risk'] or '-':6} {what}")
        click.echo(f"    {r['reason'][:160]}")


@proposals_group.command("show")
@click.argument("ident")
@click.option("--store", "store_url", default=None)
def show_command(ident, store_url) -> None:
    try:
        click.echo(json.dumps(_props(store_url).show(ident), indent=2, default=str))
    except KeyError as exc:
        raise click.ClickException(str(exc)) from None


def _decide(approve: bool, ident, actor, via, comment, store_url) -> None:
    props = _props(store_url)
    try:
        out = (props.approve if approve else props.reject)(ident, actor=actor, via=via, comment=comment)
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{ident}: {out['status']} by {actor} via {via}")


_actor = click.option("--actor", default=lambda: os.environ.get("ORCHESTRATOR_ACTOR") or getpass.getuser(),
                      help="Who decides (default: $ORCHESTRATOR_ACTOR or the login name).")
_via = click.option("--via", default="cli", show_default=True, help="cli, ui, email, api")


@proposals_group.command("approve")
@click.argument("ident")
@_actor
@_via
@click.option("--comment", default=None)
@click.option("--store", "store_url", default=None)
def approve_command(ident, actor, via, comment, store_url) -> None:
    _decide(True, ident, actor, via, comment, store_url)


@proposals_group.command("reject")
@click.argument("ident")
@_actor
@_via
@click.option("--comment", default=None)
@click.option("--store", "store_url", default=None)
def reject_command(ident, actor, via, comment, store_url) -> None:
    _decide(False, ident, actor, via, comment, store_url)


@proposals_group.command("cancel")
@click.argument("ident")
@_actor
@_via
@click.option("--comment", default=None)
@click.option("--store", "store_url", default=None)
def cancel_command(ident, actor, via, comment, store_url) -> None:
    """Withdraw a pending or approved action before it starts (recorded with who and why)."""
    try:
        out = _props(store_url).cancel(ident, actor=actor, via=via, comment=comment)
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{ident}: {out['status']} by {actor} via {via}")
