"""The digest on the real code location: `orchestrator digest` writes .eml files to the outbox and
prints where; the digest job (schedule target) records the Markdown preview on the
orchestrator_digest asset key and sends only when asked; the schedule and the approval job are
part of the code location."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from orchestrator.digest.sample import record_sample
from orchestrator.store import open_store

UTC = timezone.utc


@pytest.fixture
def digest_env(sandbox, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/store.db"
    monkeypatch.setenv("ORCHESTRATOR_STORE_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    for name in ("SMTP_HOST", "ORCHESTRATOR_APPROVAL_SECRET", "DIGEST_RECIPIENTS"):
        monkeypatch.delenv(name, raising=False)
    store = open_store(url, cached=False)
    record_sample(store, datetime.now(UTC).replace(microsecond=0))
    yield sandbox, store
    store.dispose()


def test_cli_digest_writes_eml_to_the_outbox_and_prints_the_path(digest_env):
    sandbox, store = digest_env
    from orchestrator.cli import cli

    out = CliRunner().invoke(cli, ["digest"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    outbox = sandbox.home / "outbox"
    assert f"outbox: {outbox}" in out.output
    files = [Path(p) for p in re.findall(r"^\s+(/\S+\.eml)$", out.output, re.M)]
    assert files and all(p.exists() and outbox in p.parents for p in files)
    msgs = {message_from_bytes(p.read_bytes(), policy=policy.default)["X-Orchestrator-Digest-Owner"]: p for p in files}
    assert "finance-data@example.com" in msgs  # the pending proposal's owner gets a digest
    msg = message_from_bytes(msgs["finance-data@example.com"].read_bytes(), policy=policy.default)
    html = msg.get_body(preferencelist=("html",)).get_content()
    # sandbox: links signed with the generated per-home secret
    assert "/decide/" in html and "approve?token=" in html
    assert (sandbox.home / "approval_secret").exists()
    assert "no address for team:" in out.output  # unmapped teams are reported, still written to the outbox
    kinds = [e for e in store.audit_events(kind="digest")]
    assert kinds and kinds[-1]["payload"]["mode"] == "outbox"


def test_digest_asset_preview_and_send(digest_env, project_defs, tmp_path):
    sandbox, store = digest_env
    job = project_defs.resolve_job_def("daily_digest")
    with dg.instance_for_test() as instance:
        before = set((sandbox.home / "outbox").rglob("*.eml"))
        preview = job.execute_in_process(instance=instance)  # not launched by the schedule: preview only
        assert preview.success
        mat = preview.asset_materializations_for_node("orchestrator_digest")[0]
        assert isinstance(mat.metadata["preview"], dg.MarkdownMetadataValue)
        assert "# Daily digest" in mat.metadata["preview"].value
        assert mat.metadata["delivery"].value == "preview"
        assert set((sandbox.home / "outbox").rglob("*.eml")) == before
        sent = job.execute_in_process(instance=instance,
                                      run_config={"ops": {"orchestrator_digest": {"config": {"send": True}}}})
        mat = sent.asset_materializations_for_node("orchestrator_digest")[0]
        # the preview is on the asset key's latest materialization (what the UI's asset page shows)
        latest = instance.get_latest_materialization_event(dg.AssetKey("orchestrator_digest"))
        assert latest.asset_materialization.metadata["preview"].value.startswith("# Daily digest")
        assert mat.metadata["delivery"].value == "outbox" and mat.metadata["messages"].value >= 1
        assert set((sandbox.home / "outbox").rglob("*.eml")) - before


def test_schedule_and_approval_job_in_the_code_location(project_defs):
    sched = project_defs.resolve_schedule_def("daily_digest_schedule")
    assert sched.cron_schedule == "0 7 * * *" and sched.execution_timezone == "America/New_York"
    assert sched.job_name == "daily_digest"
    assert project_defs.resolve_job_def("approve_proposals") is not None
    # the digest is an asset of its own, outside the data lineage and the refresh job
    digest = project_defs.resolve_asset_graph().get(dg.AssetKey("orchestrator_digest"))
    assert digest.group_name == "orchestrator" and not digest.parent_keys
    refresh = project_defs.resolve_job_def("refresh_everything")
    assert dg.AssetKey("orchestrator_digest") not in refresh.asset_layer.selected_asset_keys
