"""``orchestrator digest [--send]``: build today's digest from the Dagster instance and the store.

Without ``--send`` the messages are written to the outbox (a preview, whatever the SMTP
settings); with ``--send`` they go through SMTP when ``SMTP_HOST`` is set, else to the outbox.
The outbox folder is printed either way.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

UTC = timezone.utc


@click.command("digest")
@click.option("--send", is_flag=True, help="Deliver through SMTP (when SMTP_HOST is set; else the outbox).")
@click.option("--hours", default=24.0, show_default=True, help="How far back 'overnight' reaches.")
@click.option("--store", "store_url", default=None, help="Project store URL (default ORCHESTRATOR_STORE_URL / SQLite).")
@click.option("--markdown", is_flag=True, help="Also print the whole digest as Markdown.")
def digest_command(send: bool, hours: float, store_url: str | None, markdown: bool) -> None:
    """Daily digest per owner: SLAs, outlook, automatic actions, approvals (signed links), failures, cost."""
    from orchestrator.digest import run_digest
    from orchestrator.planning.cli import _project_inputs
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store

    now = datetime.now(UTC)
    snapshot, _, resolution, durations = _project_inputs(now)
    store = open_store(store_url)
    from orchestrator.assessment import assess

    assessment = assess(snapshot, resolution, durations, memory=Proposals(store).memory, now=now)
    run = run_digest(store, snapshot, assessment, resolution, now=now, since=now - timedelta(hours=hours), send=send)
    t = run.digest.totals
    click.echo(f"digest: {len(run.digest.owners)} owner section(s), {len(run.outgoing)} message(s); "
               f"{t.get('pending', 0)} to approve, {t.get('at_risk', 0) + t.get('late_now', 0)} at risk, "
               f"{t.get('breached', 0)} SLA breached, {t.get('unresolved', 0)} unresolved failure(s)")
    if not run.links:
        click.echo("approval links off: set ORCHESTRATOR_APPROVAL_SECRET", err=True)
    for owner in run.report.unaddressed:
        click.echo(f"no address for {owner}: map it in DIGEST_RECIPIENTS ('{owner}=team@example.com')", err=True)
    if run.report.mode == "smtp":
        click.echo(f"sent {len(run.report.sent)} message(s) via SMTP: " + ", ".join(o.to for o in run.report.sent))
    else:
        for p in run.report.paths:
            click.echo(f"  {p}")
        click.echo(f"outbox: {run.report.outbox}")
    if markdown:
        click.echo(run.markdown)
