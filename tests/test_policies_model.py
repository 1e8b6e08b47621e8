"""Policy files: errors name file:line:field, suggest the nearest name; the CLI exits non-zero."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.policies.cli import policies_group
from orchestrator.policies.model import load_policies
from orchestrator.policies.resolve import resolve

KIPPTAF = "/work/shared/data/dbt_manifests/teamster_kipptaf.manifest.json.gz"
if not Path(KIPPTAF).exists():  # CI: shared/ beside the clone
    KIPPTAF = str(Path(__file__).resolve().parents[2] / "shared/data/dbt_manifests/teamster_kipptaf.manifest.json.gz")


def small_graph() -> AssetGraph:
    return AssetGraph([
        AssetNode("salesforce/account", role="connector_table", kinds=frozenset({"fivetran"}), group="fivetran_salesforce"),
        AssetNode("stg_salesforce__accounts", role="dbt_model", upstream=("salesforce/account",), kinds=frozenset({"dbt"}), group="dbt_staging"),
        AssetNode("dashboard/executive_revenue", role="dashboard", upstream=("stg_salesforce__accounts",), kinds=frozenset({"dashboard"}), owners=("finance-data@example.com",)),
    ])


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_for(tmp_path: Path, text: str) -> list[str]:
    write(tmp_path, "p.yaml", text)
    res = resolve(load_policies([tmp_path]), small_graph())
    assert not res.ok and not res.slas  # never half-applies
    return [str(e) for e in res.errors]


def test_unknown_key_names_file_line_field_and_suggests_nearest(tmp_path):
    errs = errors_for(tmp_path, """\
policies:
  - name: revenue
    select:
      - exposure: executive_revenue
      - key: salesforce/acount
""")
    assert len(errs) == 1
    assert errs[0].endswith(
        "p.yaml:5: policies[0](revenue).select[1].key: unknown asset key 'salesforce/acount'; "
        "did you mean 'salesforce/account'?")


def test_typos_in_field_names_enums_and_selectors(tmp_path):
    errs = "\n".join(errors_for(tmp_path, """\
policies:
  - name: revenue
    select:
      - exposure: exec_revenue
      - group: fivetran_salesforc
      - upstream_of: {kind: fivetrn}
    deadlin: {cron: "0 6 * * *"}
    tier: critcal
    rollout: automatic
    auto_approve: [retyr]
"""))
    assert "p.yaml:7: policies[0](revenue).deadlin: unknown field 'deadlin'; did you mean 'deadline'?" in errs
    assert "p.yaml:8: policies[0](revenue).tier: 'critcal' is not one of" in errs and "did you mean 'critical'" in errs
    assert "p.yaml:9: policies[0](revenue).rollout:" in errs
    assert "p.yaml:10: policies[0](revenue).auto_approve: unknown action 'retyr'; did you mean 'retry'?" in errs


def test_unknown_group_kind_exposure_suggest(tmp_path):
    errs = "\n".join(errors_for(tmp_path, """\
policies:
  - name: revenue
    select:
      - exposure: executive_revenu
      - group: fivetran_salesforc
      - upstream_of: {kind: fivetrn}
      - key: "salesfroce/*"
"""))
    assert "p.yaml:4: policies[0](revenue).select[0].exposure: unknown exposure 'executive_revenu'; did you mean 'executive_revenue'?" in errs
    assert "p.yaml:5: policies[0](revenue).select[1].group: unknown group 'fivetran_salesforc'; did you mean 'fivetran_salesforce'?" in errs
    assert "p.yaml:6: policies[0](revenue).select[2].upstream_of.kind: unknown kind 'fivetrn'; did you mean 'fivetran'?" in errs
    assert "p.yaml:7: policies[0](revenue).select[3].key: glob 'salesfroce/*' matches no asset" in errs


def test_bad_values_time_zone_cron_duration_owner_holidays(tmp_path):
    errs = "\n".join(errors_for(tmp_path, """\
policies:
  - name: revenue
    select: [{exposure: executive_revenue}]
    deadline:
      cron: "0 25 * * *"
      timezone: America/New_Yrok
      calendar:
        weekdays: [mon, tus]
        holidays: {country: US, subdivision: NX}
    max_lag: 2 hours
    owners: [finance]
    windows:
      off_peak: [{start: "22:00", end: 2025-01-01}]
"""))
    assert "p.yaml:5: policies[0](revenue).deadline.cron: invalid cron expression '0 25 * * *'" in errs
    assert "p.yaml:6: policies[0](revenue).deadline.timezone: unknown IANA time zone 'America/New_Yrok'; did you mean 'America/New_York'?" in errs
    assert "p.yaml:8: policies[0](revenue).deadline.calendar.weekdays: unknown weekday 'tus'; did you mean 'tue'?" in errs
    assert "p.yaml:9: policies[0](revenue).deadline.calendar.holidays: unknown subdivision 'NX' of US" in errs
    assert "p.yaml:10: policies[0](revenue).max_lag: invalid duration '2 hours'" in errs
    assert "p.yaml:11: policies[0](revenue).owners[0]: invalid owner 'finance'" in errs
    assert "p.yaml:13: policies[0](revenue).windows.off_peak[0]: start and end must both be" in errs


def test_yaml_syntax_error_and_duplicates_across_files(tmp_path):
    write(tmp_path, "a.yaml", "policies:\n  - name: x\n    select: [{exposure: executive_revenue}]\n")
    write(tmp_path, "b.yaml", "policies:\n  - name: x\n    select: [{exposure: executive_revenue}]\n")
    write(tmp_path, "c.yaml", "policies:\n  - name: y\n    select: [\n")
    errs = [str(e) for e in load_policies([tmp_path]).errors]
    assert any("b.yaml:2: policies[0].name: duplicate policy name 'x' (first defined at" in e
               and "a.yaml:2)" in e for e in errs)
    assert any("c.yaml:4: YAML syntax error" in e for e in errs)


def test_unquoted_clock_times_and_country_no_are_strings(tmp_path):
    write(tmp_path, "p.yaml", """\
policies:
  - name: oslo
    select: [{exposure: executive_revenue}]
    deadline: {cron: "0 6 * * *", timezone: Europe/Oslo, calendar: {holidays: {country: NO}}}
    windows:
      off_peak: [{start: 22:00, end: 05:30}]
""")
    res = resolve(load_policies([tmp_path]), small_graph())
    assert res.ok, res.errors
    w = res.sla("dashboard/executive_revenue").off_peak[0]
    assert (w.start_time.hour, w.end_time.hour, w.end_time.minute, w.timezone) == (22, 5, 30, "Europe/Oslo")


def test_cli_check_exit_codes_and_messages(tmp_path):
    runner = CliRunner()
    bad = write(tmp_path, "bad.yaml", "policies:\n  - name: attrition\n    select:\n      - exposure: attrition_dashbord\n")
    result = runner.invoke(policies_group, ["check", str(bad), "--manifest", KIPPTAF])
    assert result.exit_code == 1
    assert f"{bad}:4: policies[0](attrition).select[0].exposure: unknown exposure 'attrition_dashbord'; did you mean 'attrition_dashboard'?" in result.output
    assert "no policy applies" in result.output

    good = write(tmp_path, "good.yaml", "policies:\n  - name: attrition\n    select:\n      - exposure: attrition_dashboard\n    deadline: {cron: '0 6 * * *', timezone: America/New_York}\n")
    result = runner.invoke(policies_group, ["check", str(good), "--manifest", KIPPTAF])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 1 policies in 1 file(s) govern 88 assets (88 with a deadline)")

    result = runner.invoke(policies_group, ["explain", "dashboard/attrition_dashbord", "--policies", str(good), "--manifest", KIPPTAF])
    assert result.exit_code == 1 and "did you mean 'dashboard/attrition_dashboard'?" in result.output


def test_cli_is_registered_in_the_orchestrator_group():
    from orchestrator.cli import cli

    result = CliRunner().invoke(cli, ["policies", "--help"])
    assert result.exit_code == 0 and "check" in result.output and "explain" in result.output
