"""Issue 14, item 2: dashboards from a BI integration (Tableau) where one is configured.

A local HTTP server on an ephemeral port stands for the Tableau site (the SaaS, the only thing
mocked) and answers in the shapes Tableau documents (PAT sign-in, Metadata API GraphQL, workbook
refresh -> job, job polling with ``finishCode``); it checks every request the client sends
(path, ``X-Tableau-Auth`` token, sign-in body). The dashboards become the deadline-carrying
assets, downstream of the dbt models their workbooks read; a refresh is a Tableau job polled to
its finish code; a failed job fails the run naming it; an unreachable site loads no dashboard.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from orchestrator.resources.tableau import TableauClient, TableauConfig, TableauError

VERSION = "3.22"
SITE_ID = "9a8b7c6d-5e4f-3a2b-1c0d-ef9876543210"
SECRET = "pat-secret-QmFzZTY0c2VjcmV0"  # noqa: S105 - a planted secret that must never leak
WORKBOOKS = [
    {"luid": "wb-rev-1", "name": "Revenue", "projectName": "Finance", "uri": "sites/1/workbooks/11",
     "owner": {"username": "fin", "email": "finance-bi@example.com"},
     "dashboards": [{"luid": "db-exec", "name": "Executive Overview", "path": "Revenue/ExecutiveOverview"},
                    {"luid": "db-reg", "name": "By Region", "path": "Revenue/ByRegion"}],
     "upstreamTables": [{"name": "FCT_REVENUE", "schema": "MARTS", "fullName": "[MARTS].[FCT_REVENUE]",
                         "database": {"name": "ANALYTICS"}},
                        {"name": "fx_rates", "schema": "ref", "fullName": "[ref].[fx_rates]",
                         "database": {"name": "ANALYTICS"}}]},
    {"luid": "wb-ops-2", "name": "Ops", "projectName": "Ops", "uri": "sites/1/workbooks/12",
     "owner": {"username": "ops", "email": None},
     "dashboards": [{"luid": "db-ops", "name": "Daily Ops", "path": "Ops/DailyOps"}],
     "upstreamTables": [{"name": "dim_accounts", "schema": "marts", "fullName": "marts.dim_accounts",
                         "database": {"name": "ANALYTICS"}}]},
]
MANIFEST = {"nodes": {
    "model.p.fct_revenue": {"resource_type": "model", "name": "fct_revenue", "schema": "marts", "alias": None},
    "model.p.dim_accounts": {"resource_type": "model", "name": "dim_accounts", "schema": "marts", "alias": None},
    "test.p.not_null": {"resource_type": "test", "name": "not_null", "schema": "marts"},
}}


class FakeTableau:
    """What the Tableau site answers, and what it was asked."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict | None]] = []
        self.job_outcomes: dict[str, list] = {}  # workbook luid -> finish codes of successive polls
        self.jobs: dict[str, dict] = {}
        self.errors: list[str] = []

    def handle(self, method: str, path: str, headers, body: dict | None) -> tuple[int, dict]:
        self.requests.append((method, path, body))
        api = f"/api/{VERSION}"
        if (method, path) == ("POST", f"{api}/auth/signin"):
            creds = (body or {}).get("credentials", {})
            if creds.get("personalAccessTokenName") != "orchestrator" or creds.get("personalAccessTokenSecret") != SECRET \
                    or creds.get("site", {}).get("contentUrl") != "acme":
                return 401, {"error": {"code": "401001", "summary": "Signin Error", "detail": "bad credentials"}}
            return 200, {"credentials": {"token": "tok-123", "site": {"id": SITE_ID, "contentUrl": "acme"},
                                         "user": {"id": "u-1"}, "estimatedTimeToExpiration": "365:00:00"}}
        if headers.get("X-Tableau-Auth") != "tok-123":
            self.errors.append(f"no token on {method} {path}")
            return 401, {"error": {"code": "401002", "summary": "Unauthorized Access", "detail": "no token"}}
        if (method, path) == ("POST", f"{api}/auth/signout"):
            return 204, {}
        if (method, path) == ("POST", "/api/metadata/graphql"):
            if "workbooks" not in (body or {}).get("query", ""):
                return 200, {"errors": [{"message": "unexpected query"}]}
            return 200, {"data": {"workbooks": WORKBOOKS}}
        prefix = f"{api}/sites/{SITE_ID}/"
        if method == "POST" and path.startswith(prefix + "workbooks/") and path.endswith("/refresh"):
            luid = path[len(prefix + "workbooks/"):-len("/refresh")]
            job_id = f"job-{luid}-{len(self.jobs)}"
            self.jobs[job_id] = {"luid": luid, "codes": list(self.job_outcomes.get(luid, [None, 0]))}
            return 202, {"job": {"id": job_id, "mode": "Asynchronous", "type": "RefreshExtracts",
                                 "createdAt": "2026-11-30T05:00:00Z"}}
        if method == "GET" and path.startswith(prefix + "jobs/"):
            job = self.jobs[path[len(prefix + "jobs/"):]]
            code = job["codes"].pop(0) if len(job["codes"]) > 1 else job["codes"][0]
            out = {"id": path.rsplit("/", 1)[1], "mode": "Asynchronous", "type": "RefreshExtracts",
                   "progress": "100" if code is not None else "40", "createdAt": "2026-11-30T05:00:00Z"}
            if code is not None:
                out.update(finishCode=str(code), completedAt="2026-11-30T05:01:00Z")
            return 200, {"job": out}
        return 404, {"error": {"code": "404000", "summary": "Resource Not Found", "detail": path}}


@pytest.fixture
def tableau():
    fake = FakeTableau()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, out = fake.handle(self.command, self.path, self.headers, body)
            raw = json.dumps(out).encode() if status != 204 else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.config = TableauConfig(server_url=f"http://127.0.0.1:{server.server_address[1]}", site="acme",
                                token_name="orchestrator", token_secret=SECRET, api_version=VERSION,
                                poll_interval=0.01, poll_timeout=10)
    yield fake
    server.shutdown()
    server.server_close()


def _key_of(node):
    return dg.AssetKey([node["name"]])


def _build(fake):
    from assets.tableau import build_tableau_dashboards

    return build_tableau_dashboards(MANIFEST, _key_of, config=fake.config)


def test_dashboards_are_the_sites_dashboards_downstream_of_the_models_they_read(tableau):
    assets_def = _build(tableau)
    specs = {s.key.to_user_string(): s for s in assets_def.specs}
    assert sorted(specs) == ["dashboard/Ops/Daily_Ops", "dashboard/Revenue/By_Region",
                             "dashboard/Revenue/Executive_Overview"]
    exec_ = specs["dashboard/Revenue/Executive_Overview"]
    # upstream tables matched to dbt models case-insensitively on schema + relation name
    assert [d.asset_key for d in exec_.deps] == [dg.AssetKey("fct_revenue")]
    assert exec_.metadata["tableau/unmatched_tables"] == "[ref].[fx_rates]"
    assert exec_.owners == ["finance-bi@example.com"] and specs["dashboard/Ops/Daily_Ops"].owners == []
    assert {"tableau", "dashboard"} <= set(exec_.kinds)
    assert exec_.metadata["url"].url == f"{tableau.config.server_url}/#/site/acme/views/Revenue/ExecutiveOverview"
    assert [d.asset_key for d in specs["dashboard/Ops/Daily_Ops"].deps] == [dg.AssetKey("dim_accounts")]
    # what was asked: sign in with the PAT, one Metadata API query, sign out; every call after
    # sign-in carried the token
    assert [(m, p) for m, p, _ in tableau.requests] == [
        ("POST", f"/api/{VERSION}/auth/signin"), ("POST", "/api/metadata/graphql"),
        ("POST", f"/api/{VERSION}/auth/signout")]
    assert not tableau.errors
    assert SECRET not in json.dumps([str(s) for s in assets_def.specs])


def test_policies_give_the_tableau_dashboards_their_deadline(tableau, tmp_path):
    from orchestrator.dagster_policies import load_resolution
    from orchestrator.project_graph import asset_graph_from_assets

    @dg.asset(key="fct_revenue")
    def fct_revenue():
        return None

    (tmp_path / "bi.yaml").write_text(
        "policies:\n  - name: exec-dashboard\n    select: [{key: \"dashboard/Revenue/*\"}]\n"
        "    deadline: {cron: \"0 6 * * *\", timezone: Europe/Berlin}\n    tier: critical\n")
    graph = asset_graph_from_assets([fct_revenue, _build(tableau)])
    resolution = load_resolution(graph, [tmp_path])
    assert resolution.ok, resolution.skip_reason
    sla = resolution.sla("dashboard/Revenue/Executive_Overview")
    assert sla.primary_policy == "exec-dashboard" and sla.deadline is not None
    assert resolution.sla("fct_revenue").deadline is not None  # propagated upstream of the dashboard
    assert resolution.sla("dashboard/Ops/Daily_Ops") is None or resolution.sla("dashboard/Ops/Daily_Ops").deadline is None


def test_refresh_is_a_tableau_job_polled_to_its_finish_code(tableau):
    tableau.job_outcomes["wb-rev-1"] = [None, None, 0]  # running twice, then success
    assets_def = _build(tableau)
    tableau.requests.clear()
    selection = [dg.AssetKey(["dashboard", "Revenue", "Executive_Overview"]),
                 dg.AssetKey(["dashboard", "Revenue", "By_Region"])]
    result = dg.materialize([assets_def], selection=selection)
    assert result.success
    mats = {m.asset_key.to_user_string(): m for m in result.asset_materializations_for_node("tableau_dashboards")}
    assert sorted(mats) == ["dashboard/Revenue/By_Region", "dashboard/Revenue/Executive_Overview"]
    meta = mats["dashboard/Revenue/Executive_Overview"].metadata
    assert meta["tableau/completed_at"].value == "2026-11-30T05:01:00Z" and meta["refresh"].value == "tableau"
    calls = [(m, p) for m, p, _ in tableau.requests]
    # one refresh for the one workbook both dashboards belong to, polled until finishCode 0
    assert calls.count(("POST", f"/api/{VERSION}/sites/{SITE_ID}/workbooks/wb-rev-1/refresh")) == 1
    assert not [c for c in calls if "wb-ops-2" in c[1]]
    assert len([c for c in calls if "/jobs/" in c[1]]) == 3
    assert tableau.requests[[p for _, p, _ in tableau.requests].index(
        f"/api/{VERSION}/sites/{SITE_ID}/workbooks/wb-rev-1/refresh")][2] == {}
    assert calls[-1] == ("POST", f"/api/{VERSION}/auth/signout") and not tableau.errors


def test_a_failed_refresh_fails_the_run_naming_the_job(tableau):
    tableau.job_outcomes["wb-ops-2"] = [None, 1]
    assets_def = _build(tableau)
    result = dg.materialize([assets_def], selection=[dg.AssetKey(["dashboard", "Ops", "Daily_Ops"])],
                            raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "Tableau refresh job job-wb-ops-2-0 failed" in str(failure.event_specific_data.error)
    assert SECRET not in json.dumps([str(e) for e in result.all_events])


def test_unreachable_or_refusing_site_loads_no_dashboard(tableau, caplog):
    from assets.tableau import build_tableau_dashboards

    bad = TableauConfig(**{**tableau.config.__dict__, "token_secret": "wrong"})
    assert build_tableau_dashboards(MANIFEST, _key_of, config=bad) is None
    assert "HTTP 401" in caplog.text and "Signin Error" in caplog.text and "wrong" not in caplog.text
    down = TableauConfig(**{**tableau.config.__dict__, "server_url": "http://127.0.0.1:9"})
    assert build_tableau_dashboards(MANIFEST, _key_of, config=down) is None
    assert "unreachable" in caplog.text
    with pytest.raises(TableauError, match="TABLEAU_SERVER_URL"):
        TableauConfig.from_env({})
    with TableauClient(tableau.config) as client:  # the documented sign-in answer read right
        assert (client.token, client.site_id) == ("tok-123", SITE_ID)
