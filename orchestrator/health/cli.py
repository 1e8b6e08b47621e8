"""``orchestrator health [--json] [--connector ID] [--days N]``: connector health from the
signals recorded in the project store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import click


@click.command("health")
@click.option("--json", "as_json", is_flag=True, help="one JSON document: {'connectors': [...]}")
@click.option("--connector", default=None, help="only this connector (fivetran:<id> / airbyte:<id>)")
@click.option("--store", "store_url", default=None, help="project store URL (default ORCHESTRATOR_STORE_URL)")
@click.option("--now", "now_iso", default=None, help="evaluate as of this ISO time (default: now)")
def health_command(as_json: bool, connector: str | None, store_url: str | None, now_iso: str | None) -> None:
    """Health score per connector (0-100, by component), 7/30-day trends, anomalies of the
    latest loads and the early warning."""
    from orchestrator.health.score import format_report, health_report
    from orchestrator.health.store import load_signals
    from orchestrator.store import open_store

    now = datetime.now(timezone.utc)
    if now_iso:
        try:
            now = datetime.fromisoformat(now_iso)
        except ValueError:
            raise click.BadParameter(f"not an ISO time: {now_iso!r}", param_hint="--now") from None
        now = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    store = open_store(store_url)
    signals = load_signals(store, since=now - timedelta(days=72), connector=connector)
    report = health_report(signals, now)
    if as_json:
        click.echo(json.dumps({"generated_at": now.isoformat(), "connectors": [h.to_dict() for h in report]},
                              default=str))
    else:
        click.echo(format_report(report))
