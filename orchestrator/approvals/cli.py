"""``orchestrator serve-approvals``: the approval service behind the digest's links (uvicorn)."""

from __future__ import annotations

from urllib.parse import urlsplit

import click


@click.command("serve-approvals")
@click.option("--host", default=None, help="Interface to bind (default: the host of ORCHESTRATOR_APPROVAL_BASE_URL "
                                            "when it is loopback, else 0.0.0.0).")
@click.option("--port", type=int, default=None, help="Port (default: the port of ORCHESTRATOR_APPROVAL_BASE_URL, 8703).")
@click.option("--store", "store_url", default=None, help="Project store URL (default ORCHESTRATOR_STORE_URL / SQLite).")
@click.option("--proxy-headers/--no-proxy-headers", default=False,
              help="Trust X-Forwarded-For from the proxy in front of it for the client address.")
def serve_approvals_command(host: str | None, port: int | None, store_url: str | None, proxy_headers: bool) -> None:
    """Serve the Approve/Reject links of the daily digest (GET confirms, POST decides)."""
    import uvicorn

    from orchestrator.approvals.app import create_app
    from orchestrator.approvals.tokens import SECRET_FILE, MissingSecret, approval_secret
    from orchestrator.settings import Settings
    from orchestrator.store import open_store

    settings = Settings()
    try:
        secret = approval_secret(settings)
    except MissingSecret as exc:
        raise click.ClickException(f"refusing to start: {exc}") from None
    if settings.approval_secret is None:
        click.echo(f"sandbox: using the generated secret in {settings.home / SECRET_FILE} "
                   "(set ORCHESTRATOR_APPROVAL_SECRET for real deployments)", err=True)
    base = urlsplit(settings.approval_base_url)
    if host is None:
        host = base.hostname if base.hostname in ("127.0.0.1", "localhost", "::1") else "0.0.0.0"
    if port is None:
        port = base.port or 8703
    app = create_app(store=open_store(store_url), secret=secret, settings=settings)
    click.echo(f"Approval service: http://{host}:{port} (links point at {settings.approval_base_url})")
    uvicorn.run(app, host=host, port=port, proxy_headers=proxy_headers, forwarded_allow_ips="*" if proxy_headers else None,
                log_level="info")
