"""`orchestrator policies check --offline` (issue 14 item 6): a CI job without connector
credentials validates policy changes against the dbt manifest and the last known connector state,
calls no connector API, and says what it could not check."""

import shutil

import pytest
from click.testing import CliRunner

from orchestrator.policies.cli import policies_group
from orchestrator.resources.connector_state import LOAD_OUTCOMES
from orchestrator.settings import get_settings

CREDENTIALS = ("FIVETRAN_API_KEY", "FIVETRAN_API_SECRET", "FIVETRAN_ACCOUNT_ID", "FIVETRAN_API_BASE_URL",
               "AIRBYTE_REST_API_BASE_URL", "AIRBYTE_CONFIGURATION_API_BASE_URL", "AIRBYTE_WORKSPACE_ID",
               "AIRBYTE_CLIENT_ID", "AIRBYTE_CLIENT_SECRET")


@pytest.fixture
def ci_env(sandbox, project_defs, monkeypatch, tmp_path):
    """A CI job: no connector credentials, the APIs unreachable, the saved states copied over."""
    saved = get_settings().connector_state_dir
    assert sorted(p.name.split("-")[0] for p in saved.glob("*.json")) == ["airbyte", "fivetran"]
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    import socket

    with socket.socket() as s:  # a port nothing listens on: any API call would fail loudly
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("ORCHESTRATOR_FIVETRAN_PORT", dead.rsplit(":", 1)[1])
    monkeypatch.setenv("ORCHESTRATOR_AIRBYTE_PORT", dead.rsplit(":", 1)[1])
    monkeypatch.setenv("ORCHESTRATOR_LOAD_API_DEADLINE", "0.5")
    LOAD_OUTCOMES.clear()
    yield saved, tmp_path
    get_settings.cache_clear()
    LOAD_OUTCOMES.clear()


def _check(*args):
    result = CliRunner().invoke(policies_group, ["check", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_offline_check_uses_the_saved_state_and_names_what_it_did_not_check(ci_env, sandbox):
    saved, tmp = ci_env
    state = tmp / "state"
    state.mkdir()
    shutil.copy(next(saved.glob("fivetran-*.json")), state)  # the Airbyte state was never saved here
    code, out = _check(str(sandbox.settings.policies_dir), "--offline", "--state", str(state))
    assert code == 0, out
    assert "fivetran: connector tables from the last known state from" in out
    assert "offline: no fivetran API called" in out
    assert "not checked: airbyte (airbyte: no last known state at" in out
    assert "policies selecting kind airbyte were disabled, not validated" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("OK: ") and last.endswith("not checked: airbyte")


def test_offline_check_still_fails_on_a_broken_policy_with_no_state_at_all(ci_env, sandbox):
    _, tmp = ci_env
    (tmp / "empty").mkdir()
    bad = tmp / "bad.yaml"
    bad.write_text(
        "policies:\n"
        "  - name: mrr\n"
        "    select: [{key: fct_mrr}]\n"
        "    deadline: {cron: '0 25 * * *', timezone: Mars/Olympus}\n"
        "    owners: [team:growth]\n"
        "    tier: critical\n"
    )
    code, out = _check(str(bad), "--offline", "--state", str(tmp / "empty"))
    assert code == 1, out
    assert "Mars/Olympus" in out or "0 25 * * *" in out
    assert "not checked: airbyte" in out and "not checked: fivetran" in out
