"""``orchestrator schema-changes``: scan the landed tables, list/show/approve/reject patch proposals.

    orchestrator schema-changes scan [--json]             # diff + impact of every source table now
    orchestrator schema-changes list [--status proposed]
    orchestrator schema-changes show <id>                 # impact, verification, diff
    orchestrator schema-changes approve <id> --actor me@example.com   # new branch (+ PR); never main
    orchestrator schema-changes reject <id> --actor me@example.com
"""

from __future__ import annotations

import json
from pathlib import Path

import click


def _store(url):
    from orchestrator.store import open_store

    return open_store(url)


@click.group("schema-changes")
def schema_changes_group() -> None:
    """Schema changes in the landed connector tables: impact and verified patches."""


@schema_changes_group.command("scan")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per table with changes.")
def scan_command(as_json: bool) -> None:
    """Diff every dbt source table against what landed last, with the impact of each change."""
    from orchestrator.lib.assets.dbt import dbt_project, ensure_manifest
    from orchestrator.schema_changes.lineage import build_lineage
    from orchestrator.schema_changes.scan import compiled_manifest, scan
    from orchestrator.settings import get_settings

    settings = get_settings()
    project_dir = Path(dbt_project().project_dir)
    manifest = json.loads(ensure_manifest().read_text())
    reports = scan(manifest, settings.landing_dir, lambda: build_lineage(
        compiled_manifest(project_dir, settings.landing_dir, settings.home / "schema_changes")))
    changed = [r for r in reports if r.diff]
    for report in changed:
        if as_json:
            click.echo(json.dumps({"key": report.key, "table": report.table, "origin": report.diff.origin,
                                   "impacts": [i.as_dict() for i in report.impacts],
                                   "handling": report.handling}, default=str))
        else:
            for summary, action in report.handling:
                click.echo(f"{summary}  [{action}]")
    if not changed and not as_json:
        click.echo(f"{len(reports)} table(s) checked: every one matches the dbt sources")


@schema_changes_group.command("list")
@click.option("--status", default=None)
@click.option("--store", "store_url", default=None)
def list_command(status, store_url) -> None:
    from orchestrator.schema_changes.store import SchemaPatches

    for p in SchemaPatches(_store(store_url)).list(status):
        click.echo(f"{p.id}  {p.status:<20} {', '.join(p.tables)}  {p.summary}")


@schema_changes_group.command("show")
@click.argument("patch_id")
@click.option("--store", "store_url", default=None)
def show_command(patch_id, store_url) -> None:
    from orchestrator.schema_changes.store import PatchDecisionError, SchemaPatches

    try:
        p = SchemaPatches(_store(store_url)).get(patch_id)
    except PatchDecisionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{p.id} [{p.status}] {p.summary}")
    for item in p.impact:
        click.echo(f"  - {item['summary']}")
    v = p.verification or {}
    click.echo(f"verification: {'passed' if v.get('ok') else 'FAILED'} ({'; '.join(v.get('commands', []))})")
    if p.branch:
        click.echo(f"branch: {p.branch}  commit: {p.commit}  pr: {p.pr_url or '-'}")
    click.echo(p.diff)


def _decide(patch_id, actor, store_url, approve: bool) -> None:
    from orchestrator.lib.assets.dbt import dbt_project
    from orchestrator.schema_changes.publish import GitPublisher, PublishError
    from orchestrator.schema_changes.store import PatchDecisionError, SchemaPatches

    patches = SchemaPatches(_store(store_url))
    try:
        if approve:
            p = patches.approve(patch_id, actor, GitPublisher.for_project(Path(dbt_project().project_dir)))
            click.echo(f"{p.id} published on branch {p.branch}" + (f": {p.pr_url}" if p.pr_url else ""))
        else:
            p = patches.reject(patch_id, actor)
            click.echo(f"{p.id} rejected")
    except (PatchDecisionError, PublishError) as exc:
        raise click.ClickException(str(exc)) from exc


@schema_changes_group.command("approve")
@click.argument("patch_id")
@click.option("--actor", required=True)
@click.option("--store", "store_url", default=None)
def approve_command(patch_id, actor, store_url) -> None:
    """Approve: the patch is written on a new branch of the dbt project (and a PR opened)."""
    _decide(patch_id, actor, store_url, True)


@schema_changes_group.command("reject")
@click.argument("patch_id")
@click.option("--actor", required=True)
@click.option("--store", "store_url", default=None)
def reject_command(patch_id, actor, store_url) -> None:
    _decide(patch_id, actor, store_url, False)
