"""Issue 14 item 2: any dbt project by configuration: project dir, profiles dir (dbt's own
DBT_PROFILES_DIR honoured), profile and target. DuckDB in the project folder stays the default."""

from pathlib import Path

import pytest

from orchestrator.settings import PROJECT_ROOT, Settings, get_settings


@pytest.fixture
def fresh(monkeypatch):
    from orchestrator import resources

    for var in ("ORCHESTRATOR_DBT_PROJECT_DIR", "ORCHESTRATOR_DBT_PROFILES_DIR", "DBT_PROFILES_DIR",
                "ORCHESTRATOR_DBT_TARGET", "DBT_TARGET", "ORCHESTRATOR_DBT_PROFILE"):
        monkeypatch.delenv(var, raising=False)

    def clear():
        get_settings.cache_clear()
        resources.dbt_project.cache_clear()

    clear()
    yield clear
    clear()


def team_project(tmp_path: Path) -> tuple[Path, Path]:
    """A team's dbt project with its profiles.yml elsewhere (~/.dbt style), two DuckDB targets."""
    proj, profiles = tmp_path / "team_dbt", tmp_path / "dot_dbt"
    (proj / "models").mkdir(parents=True)
    profiles.mkdir()
    (proj / "dbt_project.yml").write_text("name: team\nversion: '1.0.0'\nconfig-version: 2\nprofile: team\n")
    (proj / "models" / "orders.sql").write_text("select 1 as id\n")
    (profiles / "profiles.yml").write_text(
        "team:\n  target: dev\n  outputs:\n"
        f"    dev: {{type: duckdb, path: '{tmp_path / 'dev_wh.duckdb'}'}}\n"
        f"    ci: {{type: duckdb, path: '{tmp_path / 'ci_wh.duckdb'}'}}\n")
    return proj, profiles


def test_the_embedded_default_is_the_project_folder(fresh):
    s = Settings()
    assert s.dbt_project_dir == PROJECT_ROOT / "dbt_project"
    assert s.dbt_profiles_dir == PROJECT_ROOT / "dbt_project" and s.dbt_target_name is None
    from orchestrator.resources import dbt_cli_args, dbt_project

    assert Path(dbt_project().profiles_dir) == PROJECT_ROOT / "dbt_project"
    assert dbt_cli_args() == ["--profiles-dir", str(PROJECT_ROOT / "dbt_project")]


def test_dbt_profiles_dir_and_target_are_honoured_in_order(fresh, monkeypatch, tmp_path):
    proj, profiles = team_project(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("ORCHESTRATOR_DBT_PROJECT_DIR", str(proj))
    assert Settings().dbt_profiles_dir == Path("~/.dbt").expanduser()  # dbt's own default
    monkeypatch.setenv("DBT_PROFILES_DIR", str(profiles))
    monkeypatch.setenv("DBT_TARGET", "ci")
    s = Settings()
    assert s.dbt_profiles_dir == profiles and s.dbt_target_name == "ci"
    monkeypatch.setenv("ORCHESTRATOR_DBT_PROFILES_DIR", str(other))  # ours wins over dbt's
    monkeypatch.setenv("ORCHESTRATOR_DBT_TARGET", "prod")
    s = Settings()
    assert s.dbt_profiles_dir == other and s.dbt_target_name == "prod"
    from orchestrator.resources import dbt_project

    fresh()
    with pytest.raises(ValueError, match=r"has no profiles.yml \(set ORCHESTRATOR_DBT_PROFILES_DIR"):
        dbt_project()


def test_a_team_project_parses_with_its_profiles_dir_and_target(fresh, monkeypatch, tmp_path):
    """The manifest the code location loads is built with the configured target (the DuckDB
    database name in relation_name is the target's file)."""
    from assets.dbt import load_manifest
    from orchestrator.resources import dbt_cli, dbt_project

    proj, profiles = team_project(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_DBT_PROJECT_DIR", str(proj))
    monkeypatch.setenv("DBT_PROFILES_DIR", str(profiles))
    monkeypatch.setenv("ORCHESTRATOR_DBT_TARGET", "ci")
    fresh()
    project = dbt_project()
    assert (Path(project.profiles_dir), project.target) == (profiles, "ci")
    cli = dbt_cli()
    assert (cli.profiles_dir, cli.target) == (str(profiles), "ci")  # what every dbt build gets
    manifest = load_manifest()
    node = manifest["nodes"]["model.team.orders"]
    assert node["relation_name"].startswith('"ci_wh"')
    assert manifest["metadata"]["adapter_type"] == "duckdb"


def test_a_missing_project_is_named(fresh, monkeypatch, tmp_path):
    from orchestrator.resources import dbt_project

    monkeypatch.setenv("ORCHESTRATOR_DBT_PROJECT_DIR", str(tmp_path / "nope"))
    fresh()
    with pytest.raises(ValueError, match="no dbt_project.yml"):
        dbt_project()


def test_the_warehouse_pool_is_per_warehouse(monkeypatch):
    from assets.dbt import WAREHOUSE_POOL
    from orchestrator.resources import warehouse_pool

    for var in ("ORCHESTRATOR_WAREHOUSE_POOL", "ORCHESTRATOR_WAREHOUSE"):
        monkeypatch.delenv(var, raising=False)
    duck = {"metadata": {"adapter_type": "duckdb"}}
    snow = {"metadata": {"adapter_type": "snowflake"}}
    assert warehouse_pool(duck) == WAREHOUSE_POOL == "duckdb_warehouse"  # one writer per DuckDB file
    assert warehouse_pool(snow) == "warehouse/snowflake"
    monkeypatch.setenv("ORCHESTRATOR_WAREHOUSE", "snowflake_prod")  # the run-queue tag's warehouse
    assert warehouse_pool(snow) == "warehouse/snowflake_prod"
    monkeypatch.setenv("ORCHESTRATOR_WAREHOUSE_POOL", "transforming_wh")
    assert warehouse_pool(snow) == "transforming_wh"
