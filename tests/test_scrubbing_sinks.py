"""Planted secrets and personal data never leave the process: every string of a corpus of
real-shaped credentials and PII (tests/data/secrets_corpus.jsonl), plus the literal values of the
secrets the project is configured with, is checked in every sink a failure message reaches: the
LLM context (which must stay valid JSON), the digest (HTML, text, Markdown), the failure messages
and metadata raised into Dagster run events, the project store (failure memory, rationales,
audit), the approval pages and the logs."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from planning_fixtures import NOW, FakeLLM, failure, fresh, scenario

from orchestrator.scrubbing import configured_secrets, scrub, scrub_obj, scrub_pii

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "secrets_corpus.jsonl").read_text().splitlines()
          if line.strip()]
# Configured secrets with no recognisable shape: only their literal value gives them away.
LITERALS = {
    "FIVETRAN_API_KEY": "warmbreeze42",
    "FIVETRAN_API_SECRET": "tuesdaylunchbox",
    "AIRBYTE_CLIENT_SECRET": "greenpotato7",
    "SMTP_PASSWORD": "correcthorse",
    "ORCHESTRATOR_APPROVAL_SECRET": "approvalsecretvalue-0123456789abcdef",
    "OPENAI_API_KEY": "localllmkey1",
    "DAGSTER_PG_PASSWORD": "pgsecret9x",
    "SNOWFLAKE_PASSWORD": "bigwarehousepw",
}
LITERAL_MESSAGES = [f"vendor said: credentials rejected ({v}) while connecting" for v in LITERALS.values()]
MESSAGES = [r["message"] for r in CORPUS] + LITERAL_MESSAGES
SECRETS = [(r["kind"], r["secret"]) for r in CORPUS] + [(k, v) for k, v in LITERALS.items()]


@pytest.fixture(autouse=True)
def configured(monkeypatch):
    for k, v in LITERALS.items():
        monkeypatch.setenv(k, v)
    from orchestrator.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def leaks(text: str) -> list[str]:
    return [kind for kind, secret in SECRETS if secret in text]


def test_corpus_is_large_and_real_shaped():
    assert len(CORPUS) >= 60 and len(SECRETS) >= 68
    assert len({r["kind"] for r in CORPUS}) == len(CORPUS)


def test_every_planted_secret_is_redacted_by_the_scrubber():
    assert set(LITERALS.values()) <= configured_secrets()
    found = {kind: scrub_pii(msg) for (kind, _), msg in zip(SECRETS, MESSAGES)}
    assert [k for k, out in found.items() if leaks(out)] == []


def test_scrub_keeps_ordinary_failure_text():
    for text in ["HTTP 429 Too Many Requests: retry after 60s", "token expired for user etl_loader",
                 "Column 'amount' changed type from STRING to NUMERIC", "Job failed: 4242 at 2026-03-10T09:00:00Z",
                 "max_tokens: 2000", "password authentication failed for user \"etl\""]:
        assert scrub(text) == text


# -- LLM context ------------------------------------------------------------------------------------
def test_llm_context_is_scrubbed_field_by_field_and_stays_valid_json():
    from orchestrator.agent import LLMConfig, review
    from orchestrator.planning import build_context, plan

    server = FakeLLM()
    try:
        for start in range(0, len(MESSAGES), 8):
            chunk = MESSAGES[start:start + 8]
            fails = [failure(f"f{start + i}", "auth_expired", m, connector="fivetran:crm", transient=False)
                     for i, m in enumerate(chunk)]
            sc = scenario(freshness=[fresh("dashboard/exec", blocker="crm/account")], failures=fails)
            base = plan(sc.snapshot, sc.assessment, sc.resolution, now=NOW)
            ctx, _ = build_context(base, sc.snapshot, sc.assessment, sc.resolution, max_tokens=100_000)
            assert leaks(json.dumps(ctx)) == []
            # the raw context (unscrubbed, strings ending in key=value) through the client
            raw = {"failures": [{"message": m, "tail": f"{m} token=abc123XYZ"} for m in chunk], "note": 'x password="y'}
            server.script = [("json", {"rationale": "ok", "actions": []})]
            review(base, raw, config=LLMConfig(api_key="k", base_url=server.base_url, timeout_s=5), client=None)
            sent = server.requests[-1]["messages"][1]["content"]
            assert json.loads(sent)["failures"][0]["message"]  # valid JSON, one object
            assert leaks(server.raw_received()) == []
    finally:
        server.stop()


# -- Dagster run events ---------------------------------------------------------------------------
def test_failures_raised_into_run_events_are_scrubbed():
    import dagster as dg

    from orchestrator.resources.sync_failures import explain_airbyte_failure, explain_fivetran_failure

    class Airbyte:
        configuration_api_base_url = "http://x"

        def _single_request(self, **kw):
            return {"attempts": [{"attempt": {"failureSummary": {"failures": [
                {"failureOrigin": "source", "failureType": "config_error", "externalMessage": m,
                 "internalMessage": m} for m in MESSAGES]}}}]}

    class Fivetran:
        def get_connector_details(self, cid):
            return {"status": {"tasks": [{"code": "x", "message": m, "details": m} for m in MESSAGES]},
                    "setup_tests": [{"title": "t", "status": "FAILED", "message": m} for m in MESSAGES]}

    for exc in (explain_airbyte_failure(dg.Failure("Job failed: 42"), Airbyte()),
                explain_fivetran_failure(dg.Failure("Sync for connector 'c' failed!"), Fivetran(), "c")):
        meta = {k: getattr(v, "data", getattr(v, "value", v)) for k, v in (exc.metadata or {}).items()}
        assert leaks(exc.description) == [] and leaks(json.dumps(meta, default=str)) == []
        assert "<secret>" in exc.description


# -- project store -------------------------------------------------------------------------------
def _dump_store(store) -> str:
    from sqlalchemy import text

    out = []
    with store.session() as s:
        for table in ("failure_signatures", "failure_occurrences", "audit_events", "proposals", "proposal_actions",
                      "llm_calls", "approvals"):
            out += [repr(tuple(r)) for r in s.execute(text(f"SELECT * FROM {table}")).all()]
    return "\n".join(out)


def test_project_store_keeps_no_secret(tmp_path):
    from orchestrator.agent import LLMConfig
    from orchestrator.diagnosis.memory import FailureMemory
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store

    store = open_store(f"sqlite:///{tmp_path}/s.db", cached=False)
    mem = FailureMemory(store, embeddings=False)
    for m in MESSAGES:
        mem.observe(m, "auth_expired", confidence=0.9)
    props = Proposals(store, memory=mem)
    fails = [failure(f"f{i}", "auth_expired", m, connector="fivetran:crm", transient=False)
             for i, m in enumerate(MESSAGES[:20])]
    sc = scenario(freshness=[fresh("dashboard/exec", blocker="crm/account")], failures=fails)
    server = FakeLLM()
    try:
        base = __import__("orchestrator.planning", fromlist=["plan"]).plan(sc.snapshot, sc.assessment, sc.resolution,
                                                                          now=NOW)
        server.script = [("json", {"rationale": " ".join(MESSAGES), "actions": [
            {"ref": a.action_id, "type": a.type, "asset_keys": list(a.asset_keys), "connector": a.connector,
             "tables": {k: list(v) for k, v in a.tables.items()}, "partitions": list(a.partitions),
             "priority": a.priority, "rationale": " ".join(MESSAGES[i::5]), "confidence": 0.5}
            for i, a in enumerate(base.actions)]})]
        r = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW,
                            llm=LLMConfig(api_key="k", base_url=server.base_url, timeout_s=5))
        assert r.plan.planner.startswith("llm:")
    finally:
        server.stop()
    dump = _dump_store(store)
    assert "<secret>" in dump
    assert leaks(dump) == []


# -- digest ------------------------------------------------------------------------------------
def test_digest_html_text_and_markdown_keep_no_secret(tmp_path, monkeypatch):
    from datetime import datetime, timezone

    from sqlalchemy import text, update

    from orchestrator.digest import run_digest
    from orchestrator.digest.sample import _failure, record_sample
    from orchestrator.settings import Settings
    from orchestrator.store import open_store
    from orchestrator.store.agent_models import ActionRow, ProposalRow

    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path))
    monkeypatch.delenv("SMTP_HOST", raising=False)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    store = open_store(f"sqlite:///{tmp_path}/d.db", cached=False)
    snap, asm, res = record_sample(store, now)
    # rows written before scrubbing existed (or by another writer): the digest scrubs what it prints
    with store.session() as s:
        # another writer bypassing the project's triggers (proposals are append-only)
        s.execute(text("DROP TRIGGER IF EXISTS proposals_no_update"))
        s.execute(text("DROP TRIGGER IF EXISTS proposal_actions_settled"))
        s.execute(update(ProposalRow).values(rationale=" ".join(MESSAGES)))
        s.execute(update(ActionRow).values(reason=" | ".join(MESSAGES)))
    for i, m in enumerate(MESSAGES):
        d = _failure(f"x{i}", "auth_expired", m, now - timedelta(minutes=i + 1), connector="fivetran:crm",
                     asset="crm/account", transient=False)
        asm.failures.append(d)
        snap.failures.append(d.failure)
        # the failure sensor's record of it, left raw by another writer: the digest's incident
        # summary (which quotes the evidence) and post-mortem are built from it
        store.append_audit("failure.diagnosed", actor="failure_sensor", subject=f"x{i}", payload={
            "category": "auth_expired", "transient": False, "confidence": 0.9, "evidence": [m], "root": None,
            "system": "fivetran", "asset_key": "crm/account", "connector": "fivetran:crm", "run_id": None,
            "at": (now - timedelta(minutes=i + 1)).isoformat()})
    run = run_digest(store, snap, asm, res, now=now, send=False, settings=Settings(digest_recipients="*=ops@example.com"))
    assert run.outgoing
    bodies = [run.markdown]
    for o in run.outgoing:
        for part in o.message.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                bodies.append(part.get_content())
    assert any("<secret>" in b or "&lt;secret&gt;" in b for b in bodies)
    assert {k: leaks(b) for k, b in enumerate(bodies) if leaks(b)} == {}


# -- approval pages ----------------------------------------------------------------------------
def test_approval_pages_show_no_secret(tmp_path):
    from datetime import datetime, timezone

    from sqlalchemy import update
    from starlette.testclient import TestClient

    from orchestrator.approvals.app import create_app
    from orchestrator.approvals.tokens import decision_url, issue
    from orchestrator.digest.sample import record_sample
    from orchestrator.settings import Settings
    from orchestrator.store import open_store
    from orchestrator.store.agent_models import ActionRow

    now = datetime.now(timezone.utc).replace(microsecond=0)
    store = open_store(f"sqlite:///{tmp_path}/a.db", cached=False)
    record_sample(store, now)
    with store.session() as s:
        row = s.query(ActionRow).filter(ActionRow.status == "pending").first()
        aid, pid = row.id, row.proposal_id
        s.execute(update(ActionRow).where(ActionRow.id == aid).values(reason=" | ".join(MESSAGES)))
    secret = b"s" * 32
    app = create_app(store=store, secret=secret, settings=Settings())
    with TestClient(app, base_url="http://127.0.0.1:8703") as c:
        tok = issue(aid, pid, "approve", "ops@example.com", secret=secret, now=now, ttl=timedelta(hours=1))
        url = decision_url("http://127.0.0.1:8703", aid, "approve", tok)
        page = c.get(url)
        assert page.status_code == 200 and "&lt;secret&gt;" in page.text
        assert leaks(page.text) == []
        done = c.post(f"/decide/{aid}/approve", data={"token": tok, "comment": " ".join(MESSAGES)},
                      headers={"origin": "http://127.0.0.1:8703"})
        assert done.status_code == 200, done.text
        assert leaks(done.text) == []


# -- logs --------------------------------------------------------------------------------------
def test_log_records_of_any_logger_keep_no_secret(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("orchestrator.sensors", "uvicorn.error", "dagster", "httpx"):
        log = logging.getLogger(name)
        for m in MESSAGES:
            log.warning("failure: %s", m)
            log.info(m)
        try:
            raise RuntimeError(MESSAGES[0] + " " + MESSAGES[-1])
        except RuntimeError:
            log.exception("boom")
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "<secret>" in text
    assert leaks(text) == []


def test_scrub_obj_output_serialises_to_valid_json():
    obj = {"a": "user said token=abc\"", "b": ['password="x', "key: 'v'"], "api_key=zzz": 1}
    assert json.loads(json.dumps(scrub_obj(obj)))


# -- notifications (Slack threads, Teams cards) -------------------------------------------------
def test_slack_and_teams_notifications_keep_no_secret(tmp_path):
    """One incident per planted string (its message is the failure's evidence, as the failure
    sensor records it verbatim), each told to Slack and Teams over real HTTP."""
    from notify_servers import SlackServer, TeamsServer

    from orchestrator.notify import Notifier, NotifySettings, owners_from_project
    from orchestrator.proposals import Proposals
    from orchestrator.settings import Settings
    from orchestrator.store import open_store

    token = "xoxb-4242424242-1717171717-Zq8WvT3kLmN0pRsTuVwXyZ12"
    slack, teams = SlackServer(token), TeamsServer()
    try:
        fails = [failure(f"f{i}", "unknown", m, connector="fivetran:crm", asset="crm/account",
                         at=NOW - timedelta(minutes=200 - i)) for i, m in enumerate(MESSAGES)]
        sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")], failures=fails)
        store = open_store(f"sqlite:///{tmp_path}/n.db", cached=False)
        Proposals(store).run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None)
        for i, m in enumerate(MESSAGES):
            store.append_audit("failure.diagnosed", actor="failure_sensor", subject=f"f{i}", payload={
                "category": "unknown", "transient": True, "confidence": 0.5, "evidence": [m, m[::-1]],
                "root": None, "system": "fivetran", "asset_key": "crm/account", "connector": "fivetran:crm",
                "run_id": None, "at": (NOW - timedelta(minutes=200 - i)).isoformat()})
        settings = NotifySettings(slack_token=token, slack_api_url=slack.api_url, slack_channels="*=#data-alerts",
                                  teams_webhooks=f"*={teams.url('hook-' + LITERALS['SMTP_PASSWORD'])}",
                                  notify_min_interval=0.0, notify_max_wait=60.0)
        n = Notifier(store, settings, approval_settings=Settings(approval_secret=LITERALS["ORCHESTRATOR_APPROVAL_SECRET"],
                                                                 approval_base_url="https://a.example.test",
                                                                 home=tmp_path),
                     owners_of=owners_from_project(sc.snapshot.graph, sc.resolution))
        for k in range(6):  # a tick sends what its time budget allows; the next ones the rest
            if not n.tick(NOW + timedelta(minutes=1 + k)).sent:
                break
        bodies = [*slack.raw, *[json.dumps(r["body"]) for r in teams.received]]
        told = "\n".join(bodies)
        # every planted string reached a sink (its incident was told), none of its secret did
        assert len(slack.messages()) >= len(MESSAGES) and len(teams.received) >= len(MESSAGES)
        assert "secret&gt;" in told or "<secret>" in told
        assert leaks(told) == []
        assert leaks(json.dumps(store.audit_events(kind="notification", limit=100000), default=str)) == []
    finally:
        slack.stop()
        teams.stop()


# -- schema-patch proposals ------------------------------------------------------------------------
def test_schema_patch_proposals_keep_no_secret(tmp_path):
    """A patch whose verification (dbt's per-node messages, the log tail) and whose failed
    publication (git's error, a remote URL with its token) carry the planted strings: the
    proposal rows and the audit keep none of them."""
    from sqlalchemy import text

    from orchestrator.schema_changes.patch import Patch, Verification
    from orchestrator.schema_changes.store import SchemaPatches
    from orchestrator.store import open_store

    store = open_store(f"sqlite:///{tmp_path}/p.db", cached=False)
    patches = SchemaPatches(store)
    for i in range(0, len(MESSAGES), 10):
        chunk = MESSAGES[i:i + 10]
        patch = Patch(files={f"models/m{i}.sql": ("select 1\n", f"select 2 -- {i}\n")},
                      answered=[f"stripe.invoice.amount renamed (case {i})"])
        ver = Verification(ok=True, compile_ok=True, duration_s=1.0, commands=["dbt build"], scratch_db="x.duckdb",
                           nodes={f"model.p.m{i}_{k}": {"status": "error", "message": m} for k, m in enumerate(chunk)},
                           log_tail="\n".join(chunk))
        proposal = patches.propose(patch, [], ver)

        class Publisher:
            def publish(self, proposal, chunk=chunk):
                raise RuntimeError("git push https://x-access-token:ghp_Zq8WvT3kLmN0pRsTuVwXyZ12abcdEFGH@github.com/o/r "
                                   "failed: " + " | ".join(chunk))

        with pytest.raises(RuntimeError):
            patches.approve(proposal.id, "ops@example.com", Publisher())
    with store.session() as s:
        rows = [repr(tuple(r)) for r in s.execute(text("SELECT * FROM schema_patches")).all()]
    dump = "\n".join(rows) + json.dumps(store.audit_events(limit=100000), default=str)
    assert "<secret>" in dump and "publish_failed" in dump
    assert "ghp_Zq8WvT3kLmN0pRsTuVwXyZ12abcdEFGH" not in dump
    assert leaks(dump) == []


# -- the failure sensor: asset-check metadata and the audit -----------------------------------------
def test_failure_sensor_metadata_and_audit_keep_no_secret(tmp_path):
    """What the failure sensor emits into Dagster (observation and ``connector_sync`` check
    metadata) and records (``failure.diagnosed``), for real diagnoses of every planted string."""
    from orchestrator.core.records import DiagnosedFailure, FailureRecord, SyncRecord
    from orchestrator.diagnosis import diagnose
    from orchestrator.store import open_store
    from sensors.failures import _observation_metadata, _record_diagnosis, _sync_check_metadata

    store = open_store(f"sqlite:///{tmp_path}/f.db", cached=False)
    out = []
    for i, m in enumerate(MESSAGES):
        dx = diagnose(m, "fivetran")
        d = DiagnosedFailure(FailureRecord(failure_id=f"sync:fivetran:crm:{i}", at=NOW, message=m, system="fivetran",
                                           connector="fivetran:crm"),
                             dx.category, dx.transient, dx.confidence, tuple(dx.evidence) or (m,))
        _record_diagnosis(store, None, d, NOW)
        for meta in (_observation_metadata(d, "fivetran:crm"),
                     _sync_check_metadata("fivetran:crm", SyncRecord("fivetran:crm", str(i), "failed", NOW,
                                                                    error_message=m), d)):
            out.append(json.dumps({k: getattr(v, "text", getattr(v, "md_str", getattr(v, "value", v)))
                                   for k, v in meta.items()}, default=str))
    dump = "\n".join(out) + json.dumps(store.audit_events(kind="failure.diagnosed", limit=100000), default=str)
    assert "<secret>" in dump
    assert leaks(dump) == []


# -- a real Dagster run --------------------------------------------------------------------------
def test_a_real_dagster_run_failing_with_vendor_secrets_keeps_none_in_events_or_compute_logs(tmp_path):
    """Two syncs fail in a real run (dagster's own failure shapes: dagster-fivetran's
    ``connector_details`` metadata, dagster-airbyte's "Job failed: N") with vendor messages
    carrying every planted secret; the project explains them (``orchestrator.resources``) and
    neither the run's events (STEP_FAILURE message, cause, metadata) nor anything the instance
    wrote (event log, compute logs) holds one."""
    import dagster as dg

    from orchestrator.resources.sync_failures import explain_airbyte_failure, explain_fivetran_failure

    details = {"paused": False, "status": {"setup_state": "broken", "tasks": [
        {"code": "auth", "message": m, "details": m} for m in MESSAGES]},
        "setup_tests": [{"title": "Connecting", "status": "FAILED", "message": m} for m in MESSAGES]}

    class Airbyte:
        configuration_api_base_url = "http://x"

        def _single_request(self, **kw):
            return {"attempts": [{"attempt": {"failureSummary": {"failures": [
                {"failureOrigin": "source", "failureType": "config_error", "externalMessage": m,
                 "internalMessage": m} for m in MESSAGES]}}}]}

    @dg.asset
    def crm_account():
        failure = dg.Failure("Sync for connector 'crm' failed!", metadata={
            "connector_details": dg.MetadataValue.json(details),
            "log_url": dg.MetadataValue.url("https://fivetran.com/dashboard/connectors/crm")})
        raise explain_fivetran_failure(failure, None, "crm") from None  # as FivetranWorkspaceResource does

    @dg.asset
    def events_page_view():
        raise explain_airbyte_failure(dg.Failure("Job failed: 42"), Airbyte()) from None  # as AirbyteWorkspaceResource

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = dg.materialize([crm_account, events_page_view], instance=instance, raise_on_error=False)
        assert not result.success
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert len(failures) == 2
        assert "<secret>" in str(failures[0].event_specific_data.error.message)
        records = instance.all_logs(result.run_id)
        dumped = "\n".join(dg.serialize_value(r) for r in records)
        assert "STEP_FAILURE" in dumped and "fivetran_problems" in dumped and "failure_reasons" in dumped
        assert leaks(dumped) == []
        # every file the instance wrote: the run and event log databases, compute logs of the steps
        files = [p for p in home.rglob("*") if p.is_file()]
        assert any(p.suffix == ".db" for p in files)
        written = "\n".join(p.read_bytes().decode("utf-8", errors="replace") for p in files)
        assert "Sync for connector" in written and leaks(written) == []


def test_schema_change_pull_requests_and_commits_keep_no_secret(tmp_path):
    """A patch whose summary and impact carry the planted strings (they come from the warehouse's
    and the connector's words), published through a real git repository and a pull-request host:
    the pull request's title and body, the commit message and the store keep none of them."""
    import subprocess

    from sqlalchemy import text

    from orchestrator.schema_changes.patch import Patch
    from orchestrator.schema_changes.publish import GitPublisher
    from orchestrator.schema_changes.store import SchemaPatches
    from orchestrator.store import open_store

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path / "repo", check=True, capture_output=True,
                              text=True).stdout

    (tmp_path / "repo" / "models").mkdir(parents=True)
    (tmp_path / "repo" / "models" / "m.sql").write_text("select 1\n")
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "init")

    class Host:
        prs: list = []

        def open_pull_request(self, head, base, title, body):
            self.prs.append((title, body))
            return "https://git.example.test/pr/1"

    class Impact:
        def __init__(self, m):
            self.table, self.owners, self.m = "shop.orders", set(), m

        def as_dict(self):
            return {"summary": f"breaks stg_orders: {self.m}"}

    class Verified:
        ok = True

        def as_dict(self):
            return {"ok": True, "commands": ["dbt build"]}

    store = open_store(f"sqlite:///{tmp_path}/p.db", cached=False)
    patches = SchemaPatches(store)
    host = Host()
    proposal = patches.propose(Patch(files={"models/m.sql": ("select 1\n", "select 2\n")}, answered=MESSAGES[:40]),
                               [Impact(m) for m in MESSAGES], Verified())
    patches.approve(proposal.id, "ops@example.com", GitPublisher(tmp_path / "repo", host=host))
    (title, body), = host.prs
    log = git("log", "--all", "--format=%B")
    with store.session() as s:
        rows = "\n".join(repr(tuple(r)) for r in s.execute(text("SELECT * FROM schema_patches")).all())
    assert "<secret>" in body and "select 2" in body
    assert leaks(title) == [] and leaks(body) == [] and leaks(log) == []
    assert leaks(rows + json.dumps(store.audit_events(limit=100000), default=str)) == []


# -- schema-change notifications (Slack threads, Teams cards) ---------------------------------------
def test_schema_change_notifications_keep_no_secret(tmp_path):
    """Breaking schema changes whose summaries, landing origin, patch summary and publication error
    carry the planted strings (they come from the warehouse's, the connector's and git's words), told
    by the schema-change notifier to Slack and Teams over real HTTP: no message keeps a secret."""
    from datetime import datetime, timezone

    from notify_servers import SlackServer, TeamsServer

    from orchestrator.notify import NotifySettings
    from orchestrator.schema_changes.notify import SchemaChangeNotifier
    from orchestrator.store import open_store

    token = "xoxb-4242424242-1717171717-Zq8WvT3kLmN0pRsTuVwXyZ12"
    slack, teams = SlackServer(token), TeamsServer()
    try:
        store = open_store(f"sqlite:///{tmp_path}/sc.db", cached=False)
        tables = []
        for i in range(0, len(MESSAGES), 10):
            chunk, table = MESSAGES[i:i + 10], f"shop.t{i}"
            tables.append(table)
            store.append_audit("schema_change.detected", actor="schema_sensor", subject=f"shop/t{i}", payload={
                "breaking": True, "key": f"shop/t{i}", "table": table, "origin": f"sync {chunk[0]}",
                "summaries": chunk, "handling": [[m, "patch" if k % 2 else "person"] for k, m in enumerate(chunk)],
                "owners": ["sales-ops@example.com"]})
            store.append_audit("schema_patch.proposed", actor="schema_sensor", subject=f"p{i}", payload={
                "tables": [table], "status": "proposed", "summary": " | ".join(chunk)})
            store.append_audit("schema_patch.publish_failed", actor="ops@example.com", subject=f"p{i}",
                               payload={"error": "git push failed: " + " | ".join(reversed(chunk))})
        settings = NotifySettings(slack_token=token, slack_api_url=slack.api_url, slack_channels="*=#data-alerts",
                                  teams_webhooks=f"*={teams.url('hook-' + LITERALS['SMTP_PASSWORD'])}",
                                  notify_min_interval=0.0, notify_max_wait=60.0)
        n = SchemaChangeNotifier(store, settings)
        now = datetime.now(timezone.utc)
        for k in range(6):
            if not n.tick(now + timedelta(minutes=1 + k)).sent:
                break
        bodies = [*slack.raw, *[json.dumps(r["body"]) for r in teams.received]]
        told = "\n".join(bodies)
        # every change's thread was opened and followed (patch proposed, publication failed), in both
        assert len(slack.messages()) >= 3 * len(tables) and len(teams.received) >= 3 * len(tables)
        assert all(t in told for t in tables)
        assert "secret&gt;" in told or "<secret>" in told
        assert leaks(told) == []
        assert leaks(json.dumps(store.audit_events(kind="notification", limit=100000), default=str)) == []
    finally:
        slack.stop()
        teams.stop()


# -- incidents: summaries, evidence, post-mortems (`orchestrator incidents show / list`) ---------------
def test_incident_summaries_and_postmortems_keep_no_secret(tmp_path):
    """Incidents built from ``failure.diagnosed`` events whose evidence holds the planted strings
    verbatim (rows an older or another writer left unscrubbed), with actions that ran and worked (a
    post-mortem): ``orchestrator incidents show`` (text and JSON) and ``list`` keep no secret."""
    from click.testing import CliRunner
    from sqlalchemy import select

    from orchestrator.diagnosis.incidents import incidents_group
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store
    from orchestrator.store.agent_models import ActionRow

    url = f"sqlite:///{tmp_path}/i.db"
    store = open_store(url, cached=False)
    fails = [failure(f"f{i}", "auth_expired", m, connector="fivetran:crm", asset="crm/account", transient=False,
                     at=NOW - timedelta(minutes=200 - i)) for i, m in enumerate(MESSAGES)]
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")], failures=fails)
    Proposals(store).run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None)
    for i, m in enumerate(MESSAGES):
        store.append_audit("failure.diagnosed", actor="failure_sensor", subject=f"f{i}", payload={
            "category": "auth_expired", "transient": False, "confidence": 0.9, "evidence": [m, f"vendor: {m}"],
            "root": None, "system": "fivetran", "asset_key": "crm/account", "connector": "fivetran:crm",
            "run_id": None, "at": (NOW - timedelta(minutes=200 - i)).isoformat()})
    with store.session() as s:
        action_ids = [r.id for r in s.scalars(select(ActionRow)).all()]
    assert action_ids
    for aid in action_ids:
        store.append_audit("approval", actor="ops@example.com", subject=f"action:{aid}", payload={})
        store.append_audit("outcome", actor="executor", subject=f"action:{aid}", payload={"success": True})
    runner = CliRunner()
    listed = runner.invoke(incidents_group, ["list", "--store-url", url, "--json"])
    assert listed.exit_code == 0, listed.output
    ids = [json.loads(line)["id"] for line in listed.output.splitlines()]
    assert len(ids) == len(MESSAGES)
    out = [listed.output]  # every incident's summary, evidence and post-mortem, as JSON
    for iid in ids[::17]:  # and the screens (a sample: each `show` rebuilds the incidents)
        for extra in ([], ["--json"]):
            shown = runner.invoke(incidents_group, ["show", iid, "--store-url", url, *extra])
            assert shown.exit_code == 0, shown.output
            out.append(shown.output)
    told = "\n".join(out)
    assert '"postmortem": "' in listed.output and "<secret>" in told  # resolved ones, evidence shown redacted
    assert leaks(told) == []
