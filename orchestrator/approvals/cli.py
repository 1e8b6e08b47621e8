"""``orchestrator serve-approvals``: the approval service behind the digest's links (uvicorn)."""

from __future__ import annotations

from urllib.parse import urlsplit

import click


@click.command("serve-approvals")
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1; give --host 0.0.0.0 to listen on "
                                            "every interface, e.g. behind a reverse proxy in a container).")
@click.option("--port", type=int, default=None, help="Port (default: the port of ORCHESTRATOR_APPROVAL_BASE_URL, 8703).")
@click.option("--store", "store_url", default=None, help="Project store URL (default ORCHESTRATOR_STORE_URL / SQLite).")
@click.option("--proxy-headers/--no-proxy-headers", default=False,
              help="Behind a reverse proxy: take the client address from X-Forwarded-For/-Proto, from the "
                   "proxies in --forwarded-allow-ips only.")
@click.option("--forwarded-allow-ips", default="127.0.0.1,::1", show_default=True,
              help="Proxies whose X-Forwarded-* headers are trusted (with --proxy-headers).")
def serve_approvals_command(host: str | None, port: int | None, store_url: str | None, proxy_headers: bool,
                            forwarded_allow_ips: str) -> None:
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
    host = host or "127.0.0.1"  # loopback unless asked: a public base URL is usually a proxy in front
    if port is None:
        port = base.port or 8703
    app = create_app(store=open_store(store_url), secret=secret, settings=settings, trust_proxy=proxy_headers)
    click.echo(f"Approval service: http://{host}:{port} (links point at {settings.approval_base_url})")
    uvicorn.run(app, **server_options(host, port, proxy_headers, forwarded_allow_ips))


def server_options(host: str, port: int, proxy_headers: bool, forwarded_allow_ips: str) -> dict:
    """uvicorn options: its access log is off (it prints the query string, i.e. the token; the app
    logs requests without it), X-Forwarded-* only from the named proxies in proxy mode."""
    return {"host": host, "port": port, "proxy_headers": proxy_headers,
            "forwarded_allow_ips": forwarded_allow_ips if proxy_headers else None,
            "access_log": False, "server_header": False, "log_level": "info"}
