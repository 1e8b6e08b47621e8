"""``orchestrator notify``: one notification tick from a terminal (the sensor does the same every 30 s).

    orchestrator notify              send what is new (each incident change once per destination)
    orchestrator notify --dry-run    print the incidents, their changes and where they would go
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click

UTC = timezone.utc


def _owners_of():
    """Owners from the code location's graph and policies (as the sensor sees them)."""
    from orchestrator.dagster_policies import load_resolution
    from orchestrator.definitions import build_definitions
    from orchestrator.notify import owners_from_project
    from orchestrator.project_graph import asset_graph_from_definitions
    from orchestrator.settings import get_settings

    graph = asset_graph_from_definitions(build_definitions())
    return owners_from_project(graph, load_resolution(graph, [get_settings().policies_dir]))


@click.command("notify")
@click.option("--dry-run", is_flag=True, help="Show what would be sent and where; send and record nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--store-url", default=None, help="Project store URL (default ORCHESTRATOR_STORE_URL).")
@click.option("--no-project", is_flag=True, help="Route with the owners the store recorded only (no code location load).")
def notify_command(dry_run: bool, as_json: bool, store_url: str | None, no_project: bool) -> None:
    """Tell each incident's owners in Slack / Teams what changed (once per change)."""
    from orchestrator.notify import Notifier, NotifySettings, Routing, collect_threads
    from orchestrator.notify.threads import _no_owners
    from orchestrator.store import open_store

    store = open_store(store_url)
    owners_of = _no_owners if no_project else _owners_of()
    now = datetime.now(UTC)
    if dry_run:
        settings = NotifySettings()
        routing = Routing.from_settings(settings)
        from datetime import timedelta

        threads = collect_threads(store, now=now, owners_of=owners_of,
                                  lookback=timedelta(hours=settings.notify_lookback_hours))
        rows = [{"incident": t.incident_id, "title": t.title, "owners": list(t.owners), "policies": list(t.policies),
                 "destinations": [d.recipient for d in routing.destinations(t.owners, t.policies)],
                 "changes": [c.key for c in t.changes]} for t in threads]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        if routing.empty:
            click.echo("no route configured: set ORCHESTRATOR_SLACK_TOKEN + ORCHESTRATOR_SLACK_CHANNELS "
                       "or ORCHESTRATOR_TEAMS_WEBHOOKS")
        for r in rows:
            click.echo(f"{r['incident']}: {r['title']}")
            click.echo(f"    owners {', '.join(r['owners']) or '-'} -> {', '.join(r['destinations']) or 'nowhere'}")
            click.echo(f"    changes: {', '.join(r['changes'])}")
        if not rows:
            click.echo("no incident in the lookback window")
        return
    report = Notifier(store, owners_of=owners_of).tick(now)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    elif report.skipped:
        click.echo(f"nothing sent: {report.skipped}")
    else:
        click.echo(f"{len(report.sent)} sent, {report.already_sent} already sent, {len(report.deferred)} deferred, "
                   f"{len(report.failed)} refused ({report.incidents} incident(s))")
        for f in report.failed:
            click.echo(f"  refused: {f['destination']} {f['incident']} {f['change']}: {f['why']}")
    if report.failed:
        raise SystemExit(1)
