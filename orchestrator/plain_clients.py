"""Fivetran and Airbyte read clients without dagster-fivetran / dagster-airbyte (no Dagster import).

``orchestrator plan --dry-run`` reads the connectors' sync state with
``orchestrator.snapshot.ConnectorReader`` exactly as the sensors do; the sensors hand it the
project's resources' clients (dagster-fivetran's ``FivetranClient``, dagster-airbyte's
``AirbyteClient``), whose import alone costs more CPU than the dry-run's target. These clients
answer the same calls ConnectorReader makes - Fivetran ``get_groups``,
``list_connectors_for_group``, ``get_schema_config_for_connector``; Airbyte ``_paginated_request``
(``next`` links, ``limit`` 100) and ``_single_request`` with the OAuth client-credentials token -
against the same URLs, configured as ``orchestrator.resources.fivetran_workspace`` /
``airbyte_workspace`` configure the resources (the sandbox emulators when no API is set, else the
``FIVETRAN_*`` / ``AIRBYTE_*`` variables). Secrets come from the environment and are never logged.
``tests/test_plain_instance.py`` checks they return what the resources' clients return.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlparse

import httpx

# the emulators' fixed credentials (orchestrator.resources.SANDBOX_*: not secrets)
SANDBOX_FIVETRAN_KEY = "sandbox-api-key"
SANDBOX_FIVETRAN_SECRET = "sandbox-api-secret"
SANDBOX_AIRBYTE_CLIENT_ID = "sandbox-client-id"
SANDBOX_AIRBYTE_CLIENT_SECRET = "sandbox-client-secret"
REAL_FIVETRAN_API_BASE = "https://api.fivetran.com"
TIMEOUT = 10.0


SYSTEMS = ("fivetran", "airbyte")


def enabled_systems(environ=None) -> tuple[str, ...]:
    """Which connector systems this code location uses: ``ORCHESTRATOR_CONNECTORS``
    ("fivetran,airbyte", "fivetran", "airbyte" or "none"); unset = the systems whose API is
    configured (``FIVETRAN_API_KEY`` / ``AIRBYTE_REST_API_BASE_URL``), or both sandbox emulators
    when neither is (the embedded default). A team with one system never talks to the other's
    emulator, and SLA policies selecting the absent system's kind are disabled, not invalid."""
    env = os.environ if environ is None else environ
    raw = env.get("ORCHESTRATOR_CONNECTORS")
    if raw is None or not raw.strip():
        configured = tuple(s for s, var in (("fivetran", "FIVETRAN_API_KEY"), ("airbyte", "AIRBYTE_REST_API_BASE_URL"))
                           if env.get(var))
        return configured or SYSTEMS
    names = [n.strip().lower() for n in raw.replace(";", ",").split(",") if n.strip()]
    if names in (["none"], ["off"]):
        return ()
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"ORCHESTRATOR_CONNECTORS={raw!r}: unknown system(s) {', '.join(unknown)}; "
                         "use fivetran, airbyte, both comma-separated, or none")
    return tuple(s for s in SYSTEMS if s in names)


class PlainAPIError(RuntimeError):
    """A vendor API call that failed: system, method, URL path and status, no credentials."""


def _check(system: str, method: str, url: str, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        path = urlparse(url).path
        raise PlainAPIError(f"{system} API returned HTTP {response.status_code} on {method} {path}")
    return response.json()


def _verify(url: str) -> bool:
    """TLS verification for https (always); a plain-http URL (the emulators on loopback) needs no
    certificate store, whose loading costs a CLI command a tenth of a second per client."""
    return not url.lower().startswith("http://")


class PlainFivetranClient:
    def __init__(self, api_base: str, api_key: str, api_secret: str, timeout: float = TIMEOUT):
        self.api_base_url = f"{api_base.rstrip('/')}/v1"
        self._http = httpx.Client(auth=(api_key, api_secret), timeout=timeout, verify=_verify(api_base),
                                  headers={"Content-Type": "application/json;version=2"})

    def _get(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        url = f"{self.api_base_url}/{endpoint}"
        body = _check("fivetran", "GET", url, self._http.get(url, params=params))
        return body["data"] if isinstance(body, dict) and "data" in body else body

    def paginate(self, endpoint: str, limit: int = 1000) -> list:
        """Every item of a list endpoint, on ``data.next_cursor`` (as the project's client)."""
        items: list = []
        cursor, seen = None, set()
        while True:
            data = self._get(endpoint, {"limit": limit, **({"cursor": cursor} if cursor else {})})
            items.extend(data.get("items") or [])
            cursor = data.get("next_cursor")
            if not cursor:
                return items
            if cursor in seen:
                raise PlainAPIError(f"fivetran API returned next_cursor {cursor!r} twice on GET {endpoint}")
            seen.add(cursor)

    def get_groups(self) -> dict:
        return {"items": self.paginate("groups")}

    def list_connectors_for_group(self, group_id: str) -> list:
        limit = int(os.environ.get("DAGSTER_FIVETRAN_LIST_CONNECTIONS_FOR_GROUP_INDIVIDUAL_REQUEST_LIMIT", "1000"))
        return self.paginate(f"groups/{group_id}/connectors", limit)

    def get_schema_config_for_connector(self, connector_id: str) -> Any:
        return self._get(f"connectors/{connector_id}/schemas")


class PlainAirbyteClient:
    max_items_per_page = 100

    def __init__(self, rest_api_base_url: str, configuration_api_base_url: str, workspace_id: str,
                 client_id: str, client_secret: str, timeout: float = TIMEOUT):
        self.rest_api_base_url = rest_api_base_url.rstrip("/")
        self.configuration_api_base_url = configuration_api_base_url.rstrip("/")
        self.workspace_id = workspace_id
        self._client_id, self._client_secret = client_id, client_secret
        verify = _verify(rest_api_base_url) or _verify(configuration_api_base_url)  # any https: verified
        self._http = httpx.Client(timeout=timeout, verify=verify,
                                  headers={"accept": "application/json", "User-Agent": "dagster"})
        self._token: str | None = None
        self._token_at: datetime | None = None

    def _headers(self) -> dict[str, str]:
        if not (self._client_id and self._client_secret):
            return {}
        if self._token is None or self._token_at is None or self._token_at < datetime.now() - timedelta(seconds=150):
            url = f"{self.rest_api_base_url}/applications/token"
            body = _check("airbyte", "POST", url, self._http.post(
                url, json={"client_id": self._client_id, "client_secret": self._client_secret}))
            self._token, self._token_at = str(body["access_token"]), datetime.now()
        return {"Authorization": f"Bearer {self._token}"}

    def _single_request(self, method: str, url: str, data: Mapping[str, Any] | None = None,
                        params: Mapping[str, Any] | None = None) -> Any:
        response = self._http.request(method, url, json=data, params=params, headers=self._headers())
        return _check("airbyte", method, url, response)

    def _paginated_request(self, method: str, url: str, params: dict[str, Any],
                           data: Mapping[str, Any] | None = None) -> list:
        out: list = []
        params = {"limit": self.max_items_per_page, **params}
        while True:
            body = self._single_request(method, url, data=data, params=params)
            out.extend(body.get("data", []))
            next_url = body.get("next", "")
            if not next_url:
                return out
            params.update(dict(parse_qsl(urlparse(next_url).query)))


def plain_fivetran_client() -> PlainFivetranClient:
    """Configured as ``orchestrator.resources.fivetran_workspace()`` configures the resource."""
    from orchestrator.settings import get_settings

    sandbox = not os.environ.get("FIVETRAN_API_KEY")
    default_base = f"http://127.0.0.1:{get_settings().fivetran_port}" if sandbox else REAL_FIVETRAN_API_BASE
    return PlainFivetranClient(
        os.environ.get("FIVETRAN_API_BASE_URL", default_base),
        os.environ.get("FIVETRAN_API_KEY") or SANDBOX_FIVETRAN_KEY,
        os.environ.get("FIVETRAN_API_SECRET") or SANDBOX_FIVETRAN_SECRET)


def plain_airbyte_client(workspace_id: str | None = None) -> PlainAirbyteClient:
    """Configured as ``orchestrator.resources.airbyte_workspace()`` configures the resource;
    ``workspace_id``: the resource's as the graph cache kept it (spares parsing the scenario)."""
    from orchestrator.settings import get_settings

    settings = get_settings()
    sandbox = not os.environ.get("AIRBYTE_REST_API_BASE_URL")
    base = f"http://127.0.0.1:{settings.airbyte_port}"
    workspace_id = os.environ.get("AIRBYTE_WORKSPACE_ID") or workspace_id
    if not workspace_id and sandbox:
        from orchestrator.emulators.scenario import load_scenario

        workspace_id = getattr(load_scenario(settings.scenario).airbyte, "workspace_id", None)
    if not workspace_id:
        raise ValueError("AIRBYTE_WORKSPACE_ID must be set when AIRBYTE_REST_API_BASE_URL is set")
    return PlainAirbyteClient(
        os.environ.get("AIRBYTE_REST_API_BASE_URL", f"{base}/api/public/v1"),
        os.environ.get("AIRBYTE_CONFIGURATION_API_BASE_URL", f"{base}/api/v1"),
        workspace_id,
        os.environ.get("AIRBYTE_CLIENT_ID") or SANDBOX_AIRBYTE_CLIENT_ID,
        os.environ.get("AIRBYTE_CLIENT_SECRET") or SANDBOX_AIRBYTE_CLIENT_SECRET)
