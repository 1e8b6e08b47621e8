"""Schema patches: proposal -> approval -> a new git branch (+ PR on a fake GitHub API); never main.

A temp git repository holds a copy of the shop dbt project; a loopback HTTP server speaks the
GitHub pulls API (checks the bearer token, records the request). No dbt run here (the suite
verifies patches); the verification passed/failed is given.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.schema_changes import detect, impact, patch
from orchestrator.schema_changes.lineage import ProjectLineage, build_lineage
from orchestrator.schema_changes.publish import GitHost, GitPublisher
from orchestrator.schema_changes.store import PatchDecisionError, SchemaPatches
from orchestrator.store import open_store

SHOP = Path(__file__).parent / "projects" / "shop"


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "analytics-repo"
    shutil.copytree(SHOP, root / "dbt", ignore=shutil.ignore_patterns("target", "*.duckdb"))
    _git("init", "-q", "-b", "main", cwd=root)
    _git("add", "-A", cwd=root)
    _git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "init", cwd=root)
    return root


class FakeGitHub:
    def __init__(self, token: str):
        self.token, self.requests = token, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self.send_response(401)
                    self.end_headers()
                    self.wfile.write(b'{"message": "Bad credentials"}')
                    return
                number = len(outer.requests)
                payload = json.dumps({"number": number, "html_url": f"https://git.example/{body['head']}/pull/{number}"})
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def _manifest_like(project: Path) -> dict:
    """A manifest with just what build_patch needs (paths of the readers and of the sources file)."""
    return {
        "nodes": {"model.shop.stg_shop__orders": {"name": "stg_shop__orders",
                                                  "original_file_path": "models/staging/stg_shop__orders.sql"}},
        "sources": {"source.shop.shop.orders": {"source_name": "shop", "name": "orders",
                                                "original_file_path": "models/staging/_shop__sources.yml"}},
    }


class _Verified:
    def __init__(self, ok):
        self.ok = ok

    def as_dict(self):
        return {"ok": self.ok, "commands": ["dbt compile --select stg_shop__orders",
                                            "dbt build --select +stg_shop__orders+"]}


def _rename_impact():
    change = detect.ColumnChange("renamed", "amount", "amount_total", "bigint", "int64")
    found = impact.ChangeImpact("shop.orders", change, True, "reads it", models={"stg_shop__orders"},
                                broken_models={"stg_shop__orders"}, exposures={"sales_dashboard"},
                                direct_readers={"model.shop.stg_shop__orders": set()}, owners={"sales-ops@example.com"})
    return found


def test_approved_patch_lands_on_a_new_branch_and_opens_a_pr(repo, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    patches = SchemaPatches(store)
    found = _rename_impact()
    the_patch = patch.build_patch(repo / "dbt", _manifest_like(repo / "dbt"), [found])
    assert "amount_total" in the_patch.files["models/staging/stg_shop__orders.sql"][1]
    proposal = patches.propose(the_patch, [found], _Verified(True))
    assert proposal.status == "proposed" and proposal.owners == ["sales-ops@example.com"]
    assert patches.propose(the_patch, [found], _Verified(True)).id == proposal.id  # proposed once

    main_before = _git("rev-parse", "main", cwd=repo)
    assert _git("branch", "--list", "schema-fix/*", cwd=repo) == ""  # nothing written before approval
    assert "amount_total" not in (repo / "dbt/models/staging/stg_shop__orders.sql").read_text()

    github = FakeGitHub("s3cret-token")
    try:
        publisher = GitPublisher(repo, "dbt", host=GitHost(github.url, "acme/analytics", "s3cret-token"))
        done = patches.approve(proposal.id, "ana@example.com", publisher)
    finally:
        github.close()
    assert done.status == "published" and done.branch.startswith("schema-fix/shop.orders-")
    assert done.pr_url == f"https://git.example/{done.branch}/pull/1"
    # main and the working tree are untouched; the branch holds the patch
    assert _git("rev-parse", "main", cwd=repo) == main_before
    assert _git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo) == "main"
    assert "amount_total" not in (repo / "dbt/models/staging/stg_shop__orders.sql").read_text()
    on_branch = _git("show", f"{done.branch}:dbt/models/staging/stg_shop__orders.sql", cwd=repo)
    assert "cast(amount_total as bigint) as amount_cents" in on_branch
    assert "- name: amount_total" in _git("show", f"{done.branch}:dbt/models/staging/_shop__sources.yml", cwd=repo)
    request = github.requests[0]
    assert request["path"] == "/repos/acme/analytics/pulls"
    assert request["body"]["base"] == "main" and request["body"]["head"] == done.branch
    assert "```diff" in request["body"]["body"] and "renames shop.orders.amount" in request["body"]["body"]
    kinds = [e["kind"] for e in store.audit_events()]
    assert [k for k in kinds if k.startswith("schema_patch.")] == [
        "schema_patch.proposed", "schema_patch.approved", "schema_patch.published"]
    with pytest.raises(PatchDecisionError, match="published, not proposed"):
        patches.approve(proposal.id, "bob@example.com", publisher)


def test_failed_verification_is_never_approvable_and_rejection_writes_nothing(repo, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    patches = SchemaPatches(store)
    found = _rename_impact()
    the_patch = patch.build_patch(repo / "dbt", _manifest_like(repo / "dbt"), [found])
    failed = patches.propose(the_patch, [found], _Verified(False))
    assert failed.status == "failed_verification"
    with pytest.raises(PatchDecisionError, match="failed_verification"):
        patches.approve(failed.id, "ana@example.com", GitPublisher(repo, "dbt"))
    assert _git("branch", "--list", "schema-fix/*", cwd=repo) == ""


def test_wrong_token_fails_the_publication_visibly(repo, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    patches = SchemaPatches(store)
    found = _rename_impact()
    proposal = patches.propose(patch.build_patch(repo / "dbt", _manifest_like(repo / "dbt"), [found]),
                               [found], _Verified(True))
    github = FakeGitHub("right")
    try:
        publisher = GitPublisher(repo, "dbt", host=GitHost(github.url, "acme/analytics", "wrong"))
        with pytest.raises(Exception, match="HTTP 401"):
            patches.approve(proposal.id, "ana@example.com", publisher)
    finally:
        github.close()
    assert patches.get(proposal.id).status == "publish_failed"
    assert "wrong" not in (patches.get(proposal.id).error or "")  # the token is not in the error


def test_cli_lists_shows_and_approves_onto_a_branch(repo, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from orchestrator.cli import cli

    url = f"sqlite:///{tmp_path / 'store.db'}"
    patches = SchemaPatches(open_store(url, cached=False))
    found = _rename_impact()
    proposal = patches.propose(patch.build_patch(repo / "dbt", _manifest_like(repo / "dbt"), [found]),
                               [found], _Verified(True))
    runner = CliRunner()
    listed = runner.invoke(cli, ["schema-changes", "list", "--store", url])
    assert listed.exit_code == 0 and f"{proposal.id}  proposed" in listed.output
    shown = runner.invoke(cli, ["schema-changes", "show", proposal.id, "--store", url])
    assert "verification: passed" in shown.output and "+    cast(amount_total as bigint)" in shown.output
    monkeypatch.setenv("ORCHESTRATOR_DBT_GIT_DIR", str(repo))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_GIT_HOST_TOKEN", raising=False)
    import assets.dbt

    monkeypatch.setattr(assets.dbt, "dbt_project", lambda: type("P", (), {"project_dir": str(repo / "dbt")})())
    approved = runner.invoke(cli, ["schema-changes", "approve", proposal.id, "--actor", "ana@example.com", "--store", url])
    assert approved.exit_code == 0, approved.output
    assert "published on branch schema-fix/shop.orders-" in approved.output
    again = runner.invoke(cli, ["schema-changes", "reject", proposal.id, "--actor", "bob@example.com", "--store", url])
    assert again.exit_code != 0 and "published, not proposed" in again.output


def test_code_location_has_the_sensor_checks_and_patch_job_outside_the_refresh(project_defs):
    import dagster as dg

    assert "schema_change_sensor" in {s.name for s in project_defs.sensors}
    assert project_defs.resolve_job_def("schema_patch") is not None
    graph = project_defs.resolve_asset_graph()
    check = dg.AssetCheckKey(dg.AssetKey(["stripe", "invoice"]), "schema_contract")
    assert check in graph.asset_check_keys
    refresh = project_defs.resolve_job_def("refresh_everything")
    assert "schema_contract_checks" not in {node.name for node in refresh.graph.node_defs}
