"""Approve and reject from the Dagster UI: the approve_proposals job, launched with the proposal
ids as config (as from the Launchpad), and from the CLI (the same Proposals API)."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest
from click.testing import CliRunner

from orchestrator.digest.sample import record_sample
from orchestrator.proposals import Proposals
from orchestrator.store import open_store
from sensors.digest import build_approve_job

UTC = timezone.utc


@pytest.fixture
def props(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    store = open_store(url, cached=False)
    record_sample(store, datetime.now(UTC).replace(microsecond=0))
    yield url, Proposals(store)
    store.dispose()


def run(url, **config):
    job = build_approve_job(store_url=url)
    return job.execute_in_process(run_config={"ops": {"decide_proposals": {"config": config}}},
                                  instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_launchpad_job_approves_by_proposal_id(props):
    url, p = props
    pending = p.list(status="pending")
    proposal_id = pending[0]["proposal_id"]
    result = run(url, proposal_ids=[proposal_id], decision="approve", approver="ana@example.com")
    assert result.success
    for row in pending:
        shown = p.show(row["action_id"])
        # a standing approval (the sample's recommend policy) stands once approved; the rest run
        assert shown["status"] == ("standing" if shown["type"] == "standing_approval" else "approved")
        assert shown["approvals"][-1]["actor"] == "ana@example.com" and shown["approvals"][-1]["via"] == "ui"
        assert result.run_id in shown["approvals"][-1]["comment"]
    ui = p.store.audit_events(kind="approval.ui")
    assert {e["subject"] for e in ui} == {f"action:{r['action_id']}" for r in pending}
    assert all(e["payload"]["run_id"] == result.run_id for e in ui)


def test_launchpad_job_rejects_action_ids_and_reports_refusals(props):
    url, p = props
    pending = p.list(status="pending")
    aid = pending[0]["action_id"]
    result = run(url, proposal_ids=[aid, "no-such-id"], decision="reject", approver="lead@example.com",
                 comment="not today")
    assert not result.success  # one id was refused: the run says so
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "1 decided, 1 refused" in failure.event_specific_data.error.message
    shown = p.show(aid)
    assert shown["status"] == "declined" and shown["approvals"][-1]["comment"] == "not today"
    # deciding again is refused: it is no longer pending
    again = run(url, proposal_ids=[aid], decision="approve", approver="lead@example.com")
    assert not again.success and p.show(aid)["status"] == "declined"
    bad = run(url, proposal_ids=[pending[1]["action_id"]], decision="maybe", approver="x")
    assert not bad.success and p.show(pending[1]["action_id"])["status"] == "pending"


def test_job_config_schema_is_launchpad_ready():
    job = build_approve_job(store_url="sqlite://")
    schema = job.run_config_schema.config_type
    op_cfg = schema.fields["ops"].config_type.fields["decide_proposals"].config_type.fields["config"].config_type
    assert {"proposal_ids", "decision", "approver", "comment"} <= set(op_cfg.fields)
    assert op_cfg.fields["proposal_ids"].is_required and op_cfg.fields["approver"].is_required


def test_cli_approve_and_reject_use_the_same_api(props):
    url, p = props
    from orchestrator.cli import cli

    a, b = [r["action_id"] for r in p.list(status="pending")[:2]]
    out = CliRunner().invoke(cli, ["proposals", "approve", a, "--actor", "ops@example.com", "--store", url])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(cli, ["proposals", "reject", b, "--actor", "ops@example.com", "--store", url])
    assert out.exit_code == 0, out.output
    assert p.show(a)["status"] == "approved" and p.show(b)["status"] == "declined"
