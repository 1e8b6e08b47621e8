"""``orchestrator audit verify``: walk the audit trail's hash chain and report the first broken link."""

from __future__ import annotations

import json

import click


@click.group("audit")
def audit_group() -> None:
    """The append-only, hash-chained audit trail."""


@audit_group.command("verify")
@click.option("--store", "store_url", default=None, help="Store URL (default: ORCHESTRATOR_STORE_URL or SQLite).")
@click.option("--json", "as_json", is_flag=True)
def verify_command(store_url, as_json) -> None:
    """Recompute every event's hash in order; exit 1 at the first event that does not link."""
    from orchestrator.store import open_store

    result = open_store(store_url).verify_audit()
    if as_json:
        click.echo(json.dumps(result))
    elif result["ok"]:
        click.echo(f"ok: {result['checked']} events, chain intact")
    else:
        b = result["first_broken"]
        click.echo(f"BROKEN: first broken link: event {b['id']}: {b['reason']} "
                   f"({result['checked']} events checked)")
    if not result["ok"]:
        raise SystemExit(1)
