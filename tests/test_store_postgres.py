"""The project store on a real PostgreSQL server, started by the test (``tests/pg_server.py``:
initdb + pg_ctl in a temp dir on a random port)."""

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from planning_fixtures import NOW, failure, fresh, scenario

from pg_server import PG_BIN, PgServer


@pytest.fixture(scope="module")
def pg_url():
    if PG_BIN is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; .ci/run does)")
    server = PgServer()
    try:
        yield server.create_db("orch")
    finally:
        server.stop()


def test_proposal_lifecycle_on_postgres(pg_url):
    from orchestrator.agent.client import LLMCall
    from orchestrator.planning import CircuitBreaker
    from orchestrator.proposals import Proposals
    from orchestrator.store import downgrade, open_store

    store = open_store(pg_url, cached=False)
    try:
        assert store.engine.dialect.name == "postgresql"
        tables = set(sa.inspect(store.engine).get_table_names())
        assert {"proposals", "proposal_actions", "approvals", "executions", "llm_calls", "breaker_state",
                "audit_events", "failure_signatures"} <= tables
        with store.engine.connect() as c:
            from alembic.script import ScriptDirectory

            from orchestrator.store import MIGRATIONS_DIR

            head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
            assert c.execute(sa.text("select version_num from alembic_version")).scalar() == head
        props = Proposals(store)
        sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                      # An unrecognised failure: its retry waits for a person (a known transient class
                      # such as rate_limit would now be retried automatically).
                      failures=[failure("f1", "unknown", "Something went wrong within the destination connector",
                                        connector="fivetran:crm", at=NOW - timedelta(hours=3))])
        r = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None)
        r.llm_calls.append(LLMCall("m", "fast", "review", "ok", 10, 5, 0.001, 0.2))
        props.store.append_audit("test", payload={"calls": 1})
        assert r.recorded and len(r.new_action_ids) == len(r.decisions)
        # the same situation again: nothing new
        r2 = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None)
        assert r2.new_action_ids == []
        pending = props.list(status="pending")
        assert pending, props.list()
        aid = next(p["action_id"] for p in pending if p["type"] == "retry")
        props.approve(aid, actor="ana@example.com", via="email", comment="ok", now=NOW + timedelta(minutes=5))
        shown = props.show(aid)
        assert shown["status"] == "approved" and shown["approvals"][0]["via"] == "email"
        assert aid in [a.action_id for a in props.executable(NOW + timedelta(hours=2))]
        assert props.claim(aid) and not props.claim(aid)  # conditional update: only one claimer
        props.record_execution(aid, "run", run_key=aid, run_id="run-1")
        props.record_outcome(aid, True)
        assert props.show(aid)["status"] == "succeeded"
        # the outcome taught the failure memory (a retry worked for this class)
        rates = props.memory.success_rates("unknown")
        assert any(res == "retry" for (_, res) in rates), rates
        # breaker state persists as JSON
        br = CircuitBreaker(threshold=1)
        br.record("connector:fivetran:crm", False, NOW)
        props.save_breaker(br)
        assert props.breaker().is_open("connector:fivetran:crm")
        # the audit trail is still append-only
        assert {"proposal", "gate.decision", "approval", "execution", "outcome"} <= {
            e["kind"] for e in store.audit_events()}
        for stmt in ("update audit_events set actor = 'x'", "delete from audit_events"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                with store.engine.begin() as c:
                    c.execute(sa.text(stmt))
        downgrade(store.engine, "0001_failure_memory")
        assert "proposals" not in set(sa.inspect(store.engine).get_table_names())
    finally:
        downgrade(store.engine, "base")
        store.dispose()


def test_deploy_instance_config_matches_dagster_schema(monkeypatch):
    import yaml
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config_schema
    from dagster._core.run_coordinator import QueuedRunCoordinator

    for k, v in {"DAGSTER_PG_HOST": "pg", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "u",
                 "DAGSTER_PG_PASSWORD": "p", "DAGSTER_PG_DB": "d", "DAGSTER_K8S_NAMESPACE": "n",
                 "DAGSTER_PG_URL": "postgresql://u:p@pg:5432/d"}.items():
        monkeypatch.setenv(k, v)
    cfg = yaml.safe_load((Path(__file__).parents[1] / "deploy" / "dagster.yaml").read_text())
    res = process_config(dagster_instance_config_schema(), cfg)
    assert res.success, res.errors
    assert cfg["run_launcher"]["class"] == "K8sRunLauncher" and "postgres" in cfg["storage"]
    coord = process_config(QueuedRunCoordinator.config_type(), cfg["run_coordinator"]["config"])
    assert coord.success, coord.errors
    # the limits live under concurrency > runs (tests/test_deploy_instance.py loads the real instance)
    assert any(t["key"] == "orchestrator/action_type" for t in cfg["concurrency"]["runs"]["tag_concurrency_limits"])
