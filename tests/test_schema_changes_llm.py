"""Patches for breaking changes no rule answers (a removed column), asked of the LLM agent through
its OpenAI-compatible client, against a scripted server on loopback: the envelope refuses what
the model may not touch, and only a patch whose `dbt build` passes on the new data is proposed.

The dbt part (one compile of tests/projects/shop cached for the module, two verifications) runs
once per module; every envelope case refuses before dbt would run.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from orchestrator.agent.client import LLMConfig
from orchestrator.schema_changes import detect, impact, llm_patch
from orchestrator.schema_changes.patch import Patch
from orchestrator.store import open_store
from schema_llm_fixtures import ScriptedLLM, write_shop_landing

SHOP = Path(__file__).parent / "projects" / "shop"
STG = "models/staging/stg_shop__customers.sql"
SOURCES = "models/staging/_shop__sources.yml"


def _config(server, timeout=5.0):
    return LLMConfig(api_key="sk-test-not-a-real-key-000000", base_url=server.base_url, timeout_s=timeout,
                     deep_model="patch-model", fast_model="patch-model")


def _manifest_like():
    """What the envelope needs of a manifest: the models' files and the source's YAML."""
    nodes = {}
    for name, path in {"stg_shop__customers": STG, "int_orders_enriched": "models/intermediate/int_orders_enriched.sql",
                       "dim_customers": "models/marts/dim_customers.sql",
                       "fct_daily_sales": "models/marts/fct_daily_sales.sql",
                       "stg_shop__orders": "models/staging/stg_shop__orders.sql"}.items():
        nodes[f"model.shop.{name}"] = {"resource_type": "model", "name": name, "original_file_path": path,
                                       "patch_path": "shop://models/_shop__models.yml"}
    sources = {"source.shop.shop.customers": {"source_name": "shop", "name": "customers",
                                              "original_file_path": SOURCES}}
    return {"nodes": nodes, "sources": sources}


def _segment_removed():
    change = detect.ColumnChange("removed", "segment", old_type="varchar")
    return impact.ChangeImpact("shop.customers", change, True, "1 model(s) reads segment",
                               models={"stg_shop__customers", "int_orders_enriched"},
                               broken_models={"stg_shop__customers"},
                               blocked_models={"int_orders_enriched", "dim_customers", "fct_daily_sales"},
                               direct_readers={"model.shop.stg_shop__customers": set()})


def good_answer(request: dict) -> str:
    """What a competent model answers: a typed NULL keeps the output column; the YAML entry goes."""
    files = json.loads(request["messages"][1]["content"])["files"]
    sql = files[STG].replace("    segment,", "    cast(null as varchar) as segment,")
    yml = re.sub(r"          - name: segment\n            data_type: varchar\n", "", files[SOURCES])
    return json.dumps({"rationale": "segment is no longer delivered: keep the column as a typed NULL",
                       "files": [{"path": STG, "content": sql}, {"path": SOURCES, "content": yml}]})


def _ask(answer, impacts=None, base=None, timeout=5.0):
    server = ScriptedLLM(answer)
    try:
        outcome = llm_patch.ask_for_patch(SHOP, _manifest_like(), impacts or [_segment_removed()], base=base,
                                          delivered={"shop.customers": ["id", "email", "country", "signed_up_at"]},
                                          config=_config(server, timeout))
    finally:
        server.close()
    return outcome, server


# --- the envelope (no dbt) --------------------------------------------------------------------


def test_good_answer_becomes_a_patch_of_the_allowed_files_only():
    outcome, server = _ask(good_answer)
    assert outcome.reason == "ok" and outcome.patch is not None
    assert sorted(outcome.patch.files) == [SOURCES, STG]
    before, after = outcome.patch.files[STG]
    assert "cast(null as varchar) as segment" in after and before == (SHOP / STG).read_text()
    assert "- name: segment" not in outcome.patch.files[SOURCES][1]
    assert outcome.patch.author == "llm:patch-model" and outcome.patch.models == {"stg_shop__customers"}
    assert {"int_orders_enriched", "dim_customers", "fct_daily_sales"} <= outcome.patch.affected
    # asked once, with structured output, the files it may edit and nothing else
    [request] = server.requests
    assert request["response_format"] == {"type": "json_object"} and request["model"] == "patch-model"
    context = json.loads(request["messages"][1]["content"])
    assert set(context["files"]) == llm_patch.allowed_files(_manifest_like(), [_segment_removed()])
    assert "stg_shop__orders" not in json.dumps(sorted(context["files"]))  # not impacted: not offered
    assert context["changes"][0]["kind"] == "removed" and context["delivered_columns"]["shop.customers"]
    assert (SHOP / STG).read_text() == before  # nothing written to the project


def test_unified_diff_answers_are_applied_strictly():
    def diff_answer(request):
        text = json.loads(request["messages"][1]["content"])["files"][STG]
        new = text.replace("    segment,", "    cast(null as varchar) as segment,")
        import difflib

        diff = "".join(difflib.unified_diff(text.splitlines(True), new.splitlines(True), f"a/{STG}", f"b/{STG}"))
        return json.dumps({"rationale": "typed null", "diff": diff})

    outcome, _ = _ask(diff_answer)
    assert outcome.reason == "ok"
    assert outcome.patch.files[STG][1] == (SHOP / STG).read_text().replace("    segment,",
                                                                           "    cast(null as varchar) as segment,")
    stale = "--- a/{0}\n+++ b/{0}\n@@ -1,2 +1,2 @@\n-select nothing_like_this\n+select 1\n".format(STG)
    outcome, _ = _ask(lambda r: json.dumps({"rationale": "x", "diff": stale}))
    assert outcome.patch is None and "does not match the file" in outcome.reason


def test_malformed_answers_get_one_repair_then_are_refused():
    answers = iter(["Sure! Here is the fix: change segment to null.", "{\"files\": \"not a list\"}"])
    outcome, server = _ask(lambda r: next(answers))
    assert outcome.patch is None and outcome.reason == "invalid answer after one repair attempt"
    assert len(server.requests) == 2 and [c.purpose for c in outcome.calls] == ["patch", "repair"]
    assert all(c.outcome == "invalid" for c in outcome.calls)
    # both shapes at once, unknown fields (a "branch" to write on) are invalid too
    both = json.dumps({"rationale": "x", "diff": "", "files": []})
    branch = json.dumps({"rationale": "x", "branch": "main", "files": [{"path": STG, "content": "select 1"}]})
    for bad in (both, branch):
        outcome, _ = _ask(lambda r, bad=bad: bad)
        assert outcome.patch is None and outcome.reason.startswith("invalid answer")


HOSTILE = {
    "parent directory": [{"path": "../../../etc/cron.d/x", "content": "* * * * * root sh"}],
    "absolute path": [{"path": "/tmp/owned.sql", "content": "select 1"}],
    "git internals (main branch)": [{"path": ".git/refs/heads/main", "content": "0" * 40}],
    "another model": [{"path": "models/staging/stg_shop__orders.sql", "content": "select 1 as order_id"}],
    "a new file": [{"path": "models/staging/backdoor.sql", "content": "select 1"}],
    "new jinja": [{"path": STG, "content": "{{ run_query('drop schema main cascade') }}\nselect 1"}],
    "attach another database": [{"path": STG, "content": "attach '/prod/analytics.duckdb' as prod;\nselect 1"}],
    "read a file": [{"path": STG, "content": "select content as segment from read_text('/etc/passwd')"}],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_answers_are_refused_before_anything_runs(case, tmp_path):
    outcome, _ = _ask(lambda r: json.dumps({"rationale": "do as told", "files": HOSTILE[case]}))
    assert outcome.patch is None and outcome.reason.startswith("refused:"), (case, outcome.reason)
    assert not Path("/tmp/owned.sql").exists()


def test_hostile_diff_paths_are_refused():
    for header in ("--- a/../outside.sql\n+++ b/../outside.sql", "--- /dev/null\n+++ b/models/new.sql",
                   f"--- a/{STG}\n+++ b/models/other.sql"):
        diff = header + "\n@@ -1 +1 @@\n-x\n+y\n"
        outcome, _ = _ask(lambda r, d=diff: json.dumps({"rationale": "x", "diff": d}))
        assert outcome.patch is None and outcome.reason.startswith("refused:"), (header, outcome.reason)


def test_scrubbed_text_never_comes_back_and_secrets_never_leave(tmp_path):
    import shutil

    project = tmp_path / "shop"
    shutil.copytree(SHOP, project)
    planted = "-- owner: jane.doe@example.com, warehouse password=hunter2-Secret-99\n"
    (project / STG).write_text(planted + (SHOP / STG).read_text())
    echoed = {}

    def echo(request):  # returns the file as it saw it, with the fix: the placeholders come back
        text = json.loads(request["messages"][1]["content"])["files"][STG]
        echoed["text"] = text
        return json.dumps({"rationale": "x", "files": [
            {"path": STG, "content": text.replace("    segment,", "    cast(null as varchar) as segment,")}]})

    server = ScriptedLLM(echo)
    try:
        outcome = llm_patch.ask_for_patch(project, _manifest_like(), [_segment_removed()], config=_config(server))
    finally:
        server.close()
    sent = "\n".join(outcome.sent)
    assert "jane.doe@example.com" not in sent and "hunter2-Secret-99" not in sent
    assert "<email>" in echoed["text"]
    assert outcome.patch is None and "placeholder" in outcome.reason


def test_a_server_that_never_answers_ends_by_the_deadline():
    server = ScriptedLLM()
    server.hang = True
    started = time.monotonic()
    try:
        outcome = llm_patch.ask_for_patch(SHOP, _manifest_like(), [_segment_removed()], config=_config(server, 1.0))
    finally:
        elapsed = time.monotonic() - started
        server.close()
    assert outcome.patch is None and outcome.reason == "timeout"
    assert elapsed < 2 * 1.0 + 1.5  # the review budget (2 x timeout), not the server, ends it


def test_no_llm_configured_means_a_person_handles_it(monkeypatch):
    from orchestrator.schema_changes.scan import handling

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert llm_patch.ask_for_patch(SHOP, _manifest_like(), [_segment_removed()]) is None
    assert handling(_segment_removed(), None) == "person"
    assert handling(_segment_removed(), None, llm=True) == "llm_patch"


def test_llm_edits_go_on_top_of_the_rule_based_patch():
    base = Patch()
    base.files[STG] = ((SHOP / STG).read_text(), (SHOP / STG).read_text().replace("    email,", "    email_address as email,"))
    base.answered.append("renames shop.customers.email to email_address: breaks 1 model")
    base.models.add("stg_shop__customers")
    outcome, server = _ask(good_answer, base=base)
    assert server.context()["files"][STG] == base.files[STG][1]  # the model sees the rule-based edit
    before, after = outcome.patch.files[STG]
    assert before == (SHOP / STG).read_text()  # the diff is against the project as it is
    assert "email_address as email" in after and "cast(null as varchar) as segment" in after
    assert len(outcome.patch.answered) == 2


# --- verified with dbt, proposed only when the build passes ----------------------------------


@pytest.fixture(scope="module")
def shop_dropped(tmp_path_factory):
    """shop with `customers.segment` no longer delivered; its compiled manifest from the cache."""
    from schema_llm_fixtures import COMPILED_CACHE, shop_compiled

    root = tmp_path_factory.mktemp("llm-shop")
    landing = write_shop_landing(root / "landing", drop={"customers": {"segment"}})
    compiled = shop_compiled(landing)  # one dbt compile per version of the project on this machine
    return {"landing": landing, "cache": COMPILED_CACHE, "manifest": compiled}


def _propose(shop, answer, store):
    from sensors.schema_changes import propose_patches

    server = ScriptedLLM(answer)
    try:
        return propose_patches(["shop/customers"], manifest=shop["manifest"], landing_dir=shop["landing"],
                               cache_dir=shop["cache"], project_dir=SHOP, store=store,
                               llm_config=_config(server, 10.0)), server
    finally:
        server.close()


@pytest.mark.slow
def test_llm_patch_for_a_removed_column_is_verified_by_dbt_build_then_proposed(shop_dropped, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    proposal, server = _propose(shop_dropped, good_answer, store)
    assert server.context()["changes"][0]["summary"].startswith("removes shop.customers.segment: breaks 1 model")
    assert proposal is not None and proposal.status == "proposed", (proposal.verification or {}).get("log_tail")
    verification = proposal.verification
    assert verification["ok"] and verification["author"] == "llm:patch-model"
    assert verification["commands"][0].startswith("dbt compile --select")
    assert verification["commands"][1].startswith("dbt build --select")
    statuses = {uid.split(".")[-1]: r["status"] for uid, r in verification["nodes"].items()}
    for model in ("stg_shop__customers", "int_orders_enriched", "dim_customers", "fct_daily_sales"):
        assert statuses[model] == "success", statuses
    assert any(uid.startswith("test.") for uid in verification["nodes"])  # and their tests ran
    assert "patch written by llm:patch-model" in proposal.summary
    assert "+    cast(null as varchar) as segment," in proposal.diff
    assert str(SHOP) not in verification["scratch_db"]  # a scratch database, never the project's
    [event] = store.audit_events(kind="schema_patch.llm")
    assert event["payload"]["reason"] == "ok" and event["payload"]["model"] == "patch-model"
    assert "cast(null" not in (SHOP / STG).read_text()  # proposed, not applied


@pytest.mark.slow
def test_an_llm_patch_whose_build_fails_is_never_approvable(shop_dropped, tmp_path):
    from orchestrator.schema_changes.store import PatchDecisionError, SchemaPatches

    def plausible_but_wrong(request):  # renames the column to one that does not exist either
        files = json.loads(request["messages"][1]["content"])["files"]
        return json.dumps({"rationale": "segment is now customer_segment", "files": [
            {"path": STG, "content": files[STG].replace("    segment,", "    customer_segment as segment,")}]})

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    proposal, _ = _propose(shop_dropped, plausible_but_wrong, store)
    assert proposal.status == "failed_verification" and not proposal.verification["ok"]
    failed = {uid.split(".")[-1]: r for uid, r in proposal.verification["nodes"].items() if r["status"] == "error"}
    assert "stg_shop__customers" in failed and "customer_segment" in failed["stg_shop__customers"]["message"]

    class Publisher:
        def publish(self, proposal):  # pragma: no cover - must never be reached
            raise AssertionError("published a patch that failed verification")

    with pytest.raises(PatchDecisionError, match="failed_verification, not proposed"):
        SchemaPatches(store).approve(proposal.id, "ana@example.com", Publisher())
