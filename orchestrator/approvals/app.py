"""The approval service (ASGI, Starlette): what the digest's Approve/Reject links open.

    GET  /decide/<action_id>/<approve|reject>?token=...   confirmation page; changes nothing
    POST /decide/<action_id>/<approve|reject>              form field ``token`` (+ ``comment``):
                                                          spends the token, approves/rejects
    GET  /healthz

Mail scanners and link previewers follow links, so a GET never decides anything: the page shows
the action and a button that POSTs. Refusals (forged, expired, replayed, cross-proposal tokens,
actions no longer pending) get a page that says why, with a 4xx status. Every decision and
refused POST goes to the audit trail with the actor (the recipient the link was issued to), the
time, the client address (X-Forwarded-For only in proxy mode, ``trust_proxy``) and the user agent.

Hardening: a POST whose ``Origin`` (or, without one, ``Referer``) is not this service's origin
(``ORCHESTRATOR_APPROVAL_BASE_URL``, or the host the request came to) is refused before the token is
looked at, so a cross-site form cannot spend a link's token; an ``Origin: null`` is refused too.
Clients that send neither (curl, scripts) are not browsers and cannot be driven cross-site.
Every response carries the security headers below; the access log (``orchestrator.approvals.access``)
records method, path without the query string (the token), status and client. Approved actions
are executed by the execution sensor (``sensors/execution.py``); an expired action is refused
here and by ``Proposals.approve``, so it never runs without a new proposal and approval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from orchestrator.approvals.tokens import DECISIONS, TokenError, is_spent, set_outcome, spend, verify

UTC = timezone.utc
TEMPLATES = Path(__file__).resolve().parent / "templates"
HEADERS = {
    "Cache-Control": "no-store",
    # the token is in the URL: never sent to another origin; "same-origin" (not "no-referrer") so
    # that the confirmation form's POST carries a real Origin for the cross-site check
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Robots-Tag": "noindex, nofollow",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
access_log = logging.getLogger("orchestrator.approvals.access")


class _Hardening:
    """ASGI middleware: security headers on every response (404/405 included), HSTS when served
    over https, and an access log line without the query string."""

    def __init__(self, app, *, hsts: bool):
        self.app, self.hsts = app, hsts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 0}

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = dict(HEADERS)
                if self.hsts:
                    extra["Strict-Transport-Security"] = "max-age=31536000"
                message["headers"] = list(message.get("headers", [])) + [
                    (k.lower().encode(), v.encode()) for k, v in extra.items() if k.lower().encode() not in present]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            client = scope.get("client") or ("-", 0)
            access_log.info("%s %s %s %s", client[0], scope.get("method"), scope.get("path"), status["code"])


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "invalid"
    if not parts.scheme or not parts.netloc:
        return "invalid"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = parts.port if parts.port not in (None, default) else None
    return f"{parts.scheme}://{(parts.hostname or '').lower()}" + (f":{port}" if port else "")
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(("html",)),
                   trim_blocks=True, lstrip_blocks=True)


def _page(template: str, status: int = 200, **ctx) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(**ctx), status_code=status, headers=HEADERS)


REFUSAL_STATUS = {"malformed": 400, "forged": 403, "mismatch": 403, "expired": 410, "replayed": 409}


def _refuse(exc: TokenError, action_id: str | None = None) -> HTMLResponse:
    return _page("refused.html", REFUSAL_STATUS.get(exc.code, 400), title=exc.title, detail=exc.detail,
                 code=exc.code, action_id=action_id)


def _client(request: Request, trust_proxy: bool = False) -> tuple[str | None, str | None, str | None]:
    """(client address, X-Forwarded-For, user agent). The forwarded header is only read in proxy
    mode (anyone can send one); behind the proxy, uvicorn's ``--proxy-headers`` has already put
    the proxied client's address in ``request.client``."""
    addr = request.client.host if request.client else None
    fwd = request.headers.get("x-forwarded-for") if trust_proxy else None
    return addr, fwd, request.headers.get("user-agent")


_FREE_TEXT = ("reason", "rejection_reason", "gate_reason", "rationale", "message", "detail", "comment", "error")


def _scrubbed(obj):
    """The free text of an action (its reason, the LLM's rationale, quoted failure messages) as
    the page may show it: credentials and personal data redacted. Ids, times and owners stay."""
    from orchestrator.scrubbing import scrub_pii

    if isinstance(obj, dict):
        return {k: scrub_pii(v) if k in _FREE_TEXT and isinstance(v, str) else _scrubbed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrubbed(v) for v in obj]
    return obj


def _parse(ts: str) -> datetime:
    dt = datetime.fromisoformat(ts)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _fmt(ts: str | None) -> str:
    if not ts:
        return "-"
    return _parse(ts).astimezone(UTC).strftime("%a %d %b %H:%M UTC")


def create_app(*, store=None, secret: bytes | None = None, settings=None,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC), trust_proxy: bool = False,
               allowed_origins: Iterable[str] = ()) -> Starlette:
    """``store``/``secret`` default to the project store and ``approval_secret()`` (which refuses
    to work without ORCHESTRATOR_APPROVAL_SECRET outside the sandbox). ``trust_proxy``: record
    X-Forwarded-For (proxy mode). ``allowed_origins``: origins a POST may come from besides the
    public base URL's and the request's own host."""
    from orchestrator.proposals import Proposals

    if settings is None:
        from orchestrator.settings import Settings

        settings = Settings()
    if secret is None:
        from orchestrator.approvals.tokens import approval_secret

        secret = approval_secret(settings)
    if store is None:
        from orchestrator.store import open_store

        store = open_store()
    props = Proposals(store)
    origins = {o for o in (_origin(settings.approval_base_url), *(_origin(x) for x in allowed_origins)) if o}

    def cross_site(request: Request) -> str | None:
        """Why this POST comes from another site (None: same origin, or not a browser)."""
        own = set(origins)
        host = request.headers.get("host")
        if host:
            own.add(_origin(f"{request.url.scheme}://{host}"))
        origin = request.headers.get("origin")
        if origin is not None:
            return None if _origin(origin) in own and origin.strip() != "null" else f"Origin {origin[:100]!r}"
        referer = request.headers.get("referer")
        if referer is not None:
            return None if _origin(referer) in own else f"Referer from {_origin(referer)!r}"
        return None

    def _action(action_id: str) -> dict | None:
        try:
            shown = props.show(action_id)
        except KeyError:
            return None
        return _scrubbed(shown)

    def _not_pending(action: dict | None, action_id: str, now: datetime,
                     decision: str = "approve") -> HTMLResponse | None:
        if action is not None and decision == "cancel" and action["status"] in ("approved", "standing"):
            return None  # an approved action not started yet can still be withdrawn; a standing approval revoked
        if action is None:
            return _page("refused.html", 404, title="This proposal no longer exists",
                         detail=f"there is no action {action_id}", code="unknown", action_id=action_id)
        exp = action.get("expires_at")
        if action["status"] == "pending" and exp and _parse(exp) <= now:
            return _page("refused.html", 410, title="This proposal has expired",
                         detail=f"it expired at {_fmt(exp)} and will not run on this approval; the next "
                                "planning cycle proposes it again if it is still needed",
                         code="proposal_expired", action_id=action_id)
        if action["status"] == "withdrawn":  # stale: it could no longer succeed, or was already done
            w = next((a for a in reversed(action.get("approvals") or []) if a.get("decision") == "withdraw"), {})
            why = w.get("comment") or "it is no longer needed"
            return _page("refused.html", 410, title="This work is no longer needed",
                         detail=f"the proposal was withdrawn at {_fmt(w.get('at'))}: {why}. "
                                "Nothing was changed; there is nothing to approve.",
                         code="withdrawn", action_id=action_id)
        if action["status"] != "pending":
            last = (action.get("approvals") or [{}])[-1]
            who = f" by {last.get('actor')} via {last.get('via')} at {_fmt(last.get('at'))}" if last.get("actor") else ""
            return _page("refused.html", 409, title=f"This proposal is already {action['status']}",
                         detail=f"nothing was changed{who}", code="not_pending", action_id=action_id)
        return None

    async def decide_get(request: Request):
        action_id, decision = request.path_params["action_id"], request.path_params["decision"]
        if decision not in DECISIONS:
            return PlainTextResponse("not found", status_code=404)
        now = clock()
        try:
            claims = verify(request.query_params.get("token", ""), secret, action_id=action_id,
                            decision=decision, now=now)
            if is_spent(store, claims.nonce):
                raise TokenError("replayed", "each link works once; this one was already used")
        except TokenError as exc:
            return _refuse(exc, action_id)
        action = _action(action_id)
        refusal = _not_pending(action, action_id, now, decision)
        if refusal is not None:
            return refusal
        return _page("confirm.html", action=action, a=action["action"], decision=decision, claims=claims,
                     token=request.query_params["token"], fmt=_fmt, expires=_fmt(claims.expires_at.isoformat()))

    async def decide_post(request: Request):
        action_id, decision = request.path_params["action_id"], request.path_params["decision"]
        if decision not in DECISIONS:
            return PlainTextResponse("not found", status_code=404)
        # application/x-www-form-urlencoded, parsed here (no python-multipart needed)
        body = await request.body()
        if len(body) > 65536:
            return PlainTextResponse("request too large", status_code=413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        token = str(form.get("token") or request.query_params.get("token") or "")
        comment = (str(form.get("comment") or "").strip() or None)
        comment = comment[:2000] if comment else None
        addr, fwd, agent = _client(request, trust_proxy)
        now = clock()
        where = {"client_addr": addr, "user_agent": agent, "at": now.isoformat(),
                 **({"forwarded_for": fwd} if trust_proxy else {})}
        foreign = cross_site(request)
        if foreign is not None:  # before the token is even read: a cross-site form cannot spend it
            store.append_audit("approval.refused", actor="anonymous", subject=f"action:{action_id}",
                               payload={"reason": "cross_site", "detail": foreign, "decision": decision, **where})
            return _page("refused.html", 403, title="This request came from another site",
                         detail="approvals are only accepted from the confirmation page of this service; "
                                "open the link from your e-mail again", code="cross_site", action_id=action_id)
        try:
            claims = verify(token, secret, action_id=action_id, decision=decision, now=now)
        except TokenError as exc:
            store.append_audit("approval.refused", actor="anonymous", subject=f"action:{action_id}",
                               payload={"reason": exc.code, "detail": exc.detail, "decision": decision, **where})
            return _refuse(exc, action_id)
        action = _action(action_id)
        refusal = _not_pending(action, action_id, now, decision)
        if refusal is not None:
            store.append_audit("approval.refused", actor=claims.recipient, subject=f"action:{action_id}",
                               payload={"reason": "not_pending" if action else "unknown", "decision": decision,
                                        "status": action["status"] if action else None, **where})
            return refusal
        try:
            spend(store, claims, actor=claims.recipient, client_addr=addr, user_agent=agent, now=now)
        except TokenError as exc:
            store.append_audit("approval.refused", actor=claims.recipient, subject=f"action:{action_id}",
                               payload={"reason": exc.code, "decision": decision, **where})
            return _refuse(exc, action_id)
        fn = {"approve": props.approve, "reject": props.reject, "cancel": props.cancel}[decision]
        try:
            shown = fn(action_id, actor=claims.recipient, via="email", comment=comment, now=now)
        except (KeyError, ValueError) as exc:
            set_outcome(store, claims.nonce, f"refused: {exc}")
            store.append_audit("approval.refused", actor=claims.recipient, subject=f"action:{action_id}",
                               payload={"reason": str(exc), "decision": decision, **where})
            return _page("refused.html", 409, title="This proposal can no longer be decided", detail=str(exc),
                         code="not_pending", action_id=action_id)
        set_outcome(store, claims.nonce, shown["status"])
        store.append_audit("approval.link", actor=claims.recipient, subject=f"action:{action_id}", payload={
            "decision": decision, "status": shown["status"], "proposal_id": claims.proposal_id,
            "comment": comment, "nonce": claims.nonce, **where})
        return _page("done.html", action=shown, a=shown["action"], decision=decision, actor=claims.recipient,
                     fmt=_fmt, at=_fmt(now.isoformat()))

    async def healthz(request: Request):
        return PlainTextResponse("ok", headers=HEADERS)

    async def index(request: Request):
        return _page("index.html")

    app = Starlette(routes=[
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/decide/{action_id}/{decision}", decide_get, methods=["GET", "HEAD"]),
        Route("/decide/{action_id}/{decision}", decide_post, methods=["POST"]),
    ], middleware=[Middleware(_Hardening, hsts=urlsplit(settings.approval_base_url).scheme == "https")])
    app.state.store = store
    return app
