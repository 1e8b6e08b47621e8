"""A small Tableau client (REST API + Metadata API), for dashboards from a BI integration.

Only what the dashboards need, in the shapes Tableau documents (REST API reference: "Sign In"
with a personal access token, "Update Workbook Now" (refresh), "Query Job", "Sign Out"; the
Metadata API's ``Workbook`` type; the same calls dagster-tableau 0.29 makes through
tableauserverclient), pinned by ``tests/test_dashboards_tableau.py``:

* ``POST {server}/api/{version}/auth/signin`` with a personal access token
  (``{"credentials": {"personalAccessTokenName", "personalAccessTokenSecret", "site":
  {"contentUrl"}}}``) -> ``{"credentials": {"token", "site": {"id", "contentUrl"}, "user":
  {"id"}}}``; later requests carry ``X-Tableau-Auth: <token>``;
* ``POST {server}/api/metadata/graphql`` (``{"query", "variables"}`` -> ``{"data": ...}``, or
  ``{"errors": [...]}``): the workbooks with their dashboards, owner and upstream tables;
* ``POST .../sites/{site-id}/workbooks/{workbook-id}/refresh`` (body ``{}``) -> ``{"job": {"id",
  "mode", "type": "RefreshExtracts", "createdAt"}}``, then ``GET .../sites/{site-id}/jobs/{job-id}``
  -> ``{"job": {..., "finishCode", "completedAt"}}`` (finish code 0 success, 1 failed, 2
  cancelled; absent while the job runs).

Configuration (environment): ``TABLEAU_SERVER_URL`` (e.g. ``https://prod-useast-a.online.tableau.com``),
``TABLEAU_SITE`` (the site's content URL, empty for the default site), ``TABLEAU_TOKEN_NAME``,
``TABLEAU_TOKEN_SECRET``, ``TABLEAU_API_VERSION`` (3.22), ``TABLEAU_POLL_INTERVAL`` (10 s),
``TABLEAU_POLL_TIMEOUT`` (1800 s). The token secret is never logged nor put in metadata.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import httpx

WORKBOOKS_QUERY = """
query orchestratorWorkbooks {
  workbooks {
    luid
    name
    projectName
    uri
    owner { username email }
    dashboards { luid name path }
    upstreamTables { name schema fullName database { name } }
  }
}
"""

FINISH_CODES = {0: "success", 1: "failed", 2: "cancelled"}


class TableauError(Exception):
    """A Tableau API call that did not succeed, naming the call, the status and Tableau's words."""


@dataclass(frozen=True)
class TableauConfig:
    server_url: str
    site: str
    token_name: str
    token_secret: str
    api_version: str = "3.22"
    poll_interval: float = 10.0
    poll_timeout: float = 1800.0
    request_timeout: float = 30.0

    @classmethod
    def from_env(cls, environ=None) -> TableauConfig:
        env = os.environ if environ is None else environ
        missing = [n for n in ("TABLEAU_SERVER_URL", "TABLEAU_TOKEN_NAME", "TABLEAU_TOKEN_SECRET") if not env.get(n)]
        if missing:
            raise TableauError(f"ORCHESTRATOR_DASHBOARDS=tableau needs {', '.join(missing)} "
                               "(and TABLEAU_SITE, the site's content URL; empty for the default site)")
        return cls(server_url=env["TABLEAU_SERVER_URL"].rstrip("/"), site=env.get("TABLEAU_SITE", ""),
                   token_name=env["TABLEAU_TOKEN_NAME"], token_secret=env["TABLEAU_TOKEN_SECRET"],
                   api_version=env.get("TABLEAU_API_VERSION", "3.22"),
                   poll_interval=float(env.get("TABLEAU_POLL_INTERVAL", "10")),
                   poll_timeout=float(env.get("TABLEAU_POLL_TIMEOUT", "1800")))


class TableauClient:
    def __init__(self, config: TableauConfig, transport: httpx.BaseTransport | None = None):
        self.config = config
        self._http = httpx.Client(timeout=config.request_timeout, transport=transport,
                                  headers={"Accept": "application/json", "Content-Type": "application/json"})
        self.token: str | None = None
        self.site_id: str | None = None

    @property
    def api(self) -> str:
        return f"{self.config.server_url}/api/{self.config.api_version}"

    def _call(self, method: str, url: str, body: Any = None) -> dict:
        headers = {"X-Tableau-Auth": self.token} if self.token else {}
        try:
            response = self._http.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TableauError(f"Tableau API unreachable on {method} {url}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            try:
                error = response.json().get("error") or {}
                detail = f"{error.get('summary', '')}: {error.get('detail', '')}".strip(": ")
            except ValueError:
                detail = response.text[:200]
            raise TableauError(f"Tableau API returned HTTP {response.status_code} on {method} {url}: {detail}")
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise TableauError(f"Tableau API returned a body that is not JSON on {method} {url}") from None

    def sign_in(self) -> None:
        body = {"credentials": {"personalAccessTokenName": self.config.token_name,
                                "personalAccessTokenSecret": self.config.token_secret,
                                "site": {"contentUrl": self.config.site}}}
        credentials = self._call("POST", f"{self.api}/auth/signin", body)["credentials"]
        self.token, self.site_id = credentials["token"], credentials["site"]["id"]

    def sign_out(self) -> None:
        if self.token:
            try:
                self._call("POST", f"{self.api}/auth/signout")
            finally:
                self.token = None

    def __enter__(self) -> TableauClient:
        self.sign_in()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.sign_out()
        finally:
            self._http.close()

    def workbooks(self) -> list[dict]:
        out = self._call("POST", f"{self.config.server_url}/api/metadata/graphql", {"query": WORKBOOKS_QUERY})
        if out.get("errors"):
            raise TableauError("Tableau Metadata API: " + "; ".join(e.get("message", "?") for e in out["errors"]))
        return list((out.get("data") or {}).get("workbooks") or [])

    def refresh_workbook(self, workbook_luid: str) -> dict:
        return self._call("POST", f"{self.api}/sites/{self.site_id}/workbooks/{workbook_luid}/refresh", {})["job"]

    def job(self, job_id: str) -> dict:
        return self._call("GET", f"{self.api}/sites/{self.site_id}/jobs/{job_id}")["job"]

    def wait(self, job_id: str, sleep=time.sleep) -> dict:
        """The finished job (finish code 0); a failed or cancelled job, or the timeout, raises."""
        deadline = time.monotonic() + self.config.poll_timeout
        while True:
            job = self.job(job_id)
            code = job.get("finishCode")
            if code is not None and str(code) != "-1":
                outcome = FINISH_CODES.get(int(code), f"finish code {code}")
                if outcome != "success":
                    notes = "; ".join(str(n) for n in (job.get("notes") or [])) if isinstance(job.get("notes"), list) else ""
                    raise TableauError(f"Tableau refresh job {job_id} {outcome}" + (f": {notes}" if notes else ""))
                return job
            if time.monotonic() > deadline:
                raise TableauError(f"Tableau refresh job {job_id} not finished after {self.config.poll_timeout:.0f} s")
            sleep(self.config.poll_interval)
