"""`orchestrator plan` and `orchestrator proposals` on a synthetic fleet."""

import json

from click.testing import CliRunner

from orchestrator.cli import cli


def test_plan_dry_run_then_record_approve_reject(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_STORE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    run = CliRunner().invoke
    out = run(cli, ["plan", "--synthetic", "1000", "--dry-run", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["planner"] == "deterministic" and data["decisions"] and not data["recorded"]
    assert all({"decision", "risk", "reason", "action"} <= set(d) for d in data["decisions"])
    assert run(cli, ["proposals", "list"]).output.strip() == "no proposals"

    text = run(cli, ["plan", "--synthetic", "1000", "--dry-run"]).output
    assert "AWAIT_APPROVAL" in text and "why:" in text and "ESCALATE" in text

    out = run(cli, ["plan", "--synthetic", "1000"])
    assert out.exit_code == 0 and "recorded proposal" in out.output
    rows = json.loads(run(cli, ["proposals", "list", "--json", "--status", "pending"]).output)
    assert len(rows) >= 2
    a, b = rows[0]["action_id"], rows[1]["action_id"]
    # the synthetic fleet lives on 2026-03-10; approving now would find the proposals expired
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store

    props = Proposals(open_store())
    with props.store.session() as s:
        from orchestrator.store.agent_models import ActionRow

        for r in s.query(ActionRow).all():
            r.expires_at = None
    out = run(cli, ["proposals", "approve", a, "--actor", "ana@example.com", "--via", "cli", "--comment", "go"])
    assert out.exit_code == 0 and "approved by ana@example.com via cli" in out.output
    out = run(cli, ["proposals", "reject", b, "--actor", "bo@example.com"])
    assert out.exit_code == 0 and "declined" in out.output
    shown = json.loads(run(cli, ["proposals", "show", a]).output)
    assert shown["status"] == "approved" and shown["approvals"][0]["comment"] == "go"
    assert run(cli, ["proposals", "approve", a]).exit_code != 0  # not pending any more
    assert "no proposal or action" in run(cli, ["proposals", "show", "nope"]).output
    proposal = json.loads(run(cli, ["proposals", "show", shown["proposal_id"]]).output)
    assert proposal["planner"] == "deterministic" and proposal["actions"]
