"""Where the embedded default keeps its files, and how to reach the connector APIs.

Every value comes from the environment (prefix ``ORCHESTRATOR_``) with a default that works on a
fresh clone. Moving to real accounts is configuration only: see README "Real accounts".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    home: Path = Field(PROJECT_ROOT / ".local", description="Root of all local state.")
    dbt_project_dir: Path = PROJECT_ROOT / "dbt_project"
    policies_dir: Path = PROJECT_ROOT / "policies"
    scenario: Path = PROJECT_ROOT / "orchestrator" / "emulators" / "scenarios" / "default.yaml"

    # Emulator ports on loopback (sandbox / embedded default).
    fivetran_port: int = 8701
    airbyte_port: int = 8702

    # Unset means "under home"; set ORCHESTRATOR_LANDING_DIR / ORCHESTRATOR_DUCKDB_PATH to move them.
    landing_dir_override: Path | None = Field(None, validation_alias="ORCHESTRATOR_LANDING_DIR")
    duckdb_path_override: Path | None = Field(None, validation_alias="ORCHESTRATOR_DUCKDB_PATH")

    # Connector systems this code location uses ("fivetran,airbyte", "fivetran", "airbyte", "none");
    # unset = the systems whose API is configured (FIVETRAN_API_KEY, AIRBYTE_REST_API_BASE_URL),
    # or both sandbox emulators when neither is. See ``orchestrator.resources.enabled_systems``.
    connectors: str | None = None
    # Connector selectors: comma-separated shell patterns (fnmatch) matched against a Fivetran
    # connector's id, name (its schema), service or group id / an Airbyte connection's id or name.
    # Empty = every connector of the account/workspace becomes assets.
    # Where the last known connector state is kept (default <home>/connector_state)
    connector_state_dir_override: Path | None = Field(None, validation_alias="ORCHESTRATOR_CONNECTOR_STATE_DIR")
    fivetran_connectors: str = ""
    airbyte_connections: str = ""

    # Daily digest (sensors/digest.py, orchestrator/digest): schedule, SMTP, recipients.
    digest_cron: str = "0 7 * * *"
    digest_tz: str = "America/New_York"
    smtp_host: str | None = Field(None, validation_alias="SMTP_HOST")
    smtp_port: int | None = Field(None, validation_alias="SMTP_PORT")
    smtp_starttls: bool = Field(False, validation_alias="SMTP_STARTTLS")
    smtp_ssl: bool = Field(False, validation_alias="SMTP_SSL")
    smtp_username: str | None = Field(None, validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    digest_sender: str = Field("orchestrator@localhost", validation_alias="DIGEST_SENDER")
    # "owner=addr[ addr2], ...; a bare address (or *=addr) receives the catch-all digest"
    digest_recipients: str = Field("", validation_alias="DIGEST_RECIPIENTS")
    # Approval links (orchestrator/approvals): HMAC secret, public base URL, token lifetime.
    approval_secret: SecretStr | None = None
    approval_base_url: str = "http://127.0.0.1:8703"
    approval_token_ttl: str = "12h"

    # Automatic execution (sensors/failures.py, sensors/execution.py): ``auto`` lets the policies
    # decide (their rollout and auto_approve); ``recommend`` makes every action wait for approval;
    # ``shadow`` records proposals only. A cap: it never makes a policy more automatic.
    automation: Literal["auto", "recommend", "shadow"] = "auto"
    # Multiplies the retry backoff each failure class prescribes (1 = as prescribed). Only for
    # benchmarks and demos that cannot wait 10 minutes for a 502's first retry.
    backoff_scale: float = Field(1.0, ge=0.0)

    # --- The dbt project and its warehouse (README "Your own dbt project") ---
    # profiles.yml: ORCHESTRATOR_DBT_PROFILES_DIR, else dbt's own DBT_PROFILES_DIR, else the
    # project folder when it holds a profiles.yml, else dbt's default ~/.dbt.
    dbt_profiles_dir_override: Path | None = Field(None, validation_alias="ORCHESTRATOR_DBT_PROFILES_DIR")
    # profile / target of profiles.yml (unset: the project's `profile:` and the profile's `target:`);
    # ORCHESTRATOR_DBT_TARGET, else dbt's own DBT_TARGET.
    dbt_profile: str | None = None
    dbt_target: str | None = None
    # Dashboards (dbt exposures): ``auto`` = the DuckDB extract (row counts read from the DuckDB
    # file) when the project's adapter is DuckDB, else ``exposures``: a refresh records the
    # upstream models' latest materializations, on any warehouse, with no warehouse query.
    dashboards: Literal["auto", "duckdb", "exposures", "tableau", "off"] = "auto"
    # Where cost records come from: ``embedded`` (compute seconds x rates, the default),
    # ``snowflake`` (ACCOUNT_USAGE metering + query attribution, per model by query_tag) or
    # ``bigquery`` (INFORMATION_SCHEMA.JOBS, per model by job labels). See orchestrator/cost.
    cost_source: Literal["embedded", "snowflake", "bigquery"] = "embedded"
    snowflake_account: str | None = None
    snowflake_user: str | None = None
    snowflake_password: SecretStr | None = None
    snowflake_private_key_path: Path | None = None
    snowflake_role: str | None = None
    snowflake_warehouse: str | None = None  # the warehouse that runs the cost queries
    snowflake_warehouses: str = ""  # comma-separated: only these warehouses' cost (empty = all)
    snowflake_usd_per_credit: float = Field(3.0, gt=0)
    bigquery_project: str | None = None
    bigquery_region: str = "us"
    bigquery_pricing: Literal["on_demand", "standard", "enterprise", "enterprise_plus"] = "on_demand"
    bigquery_usd_per_tib: float = Field(6.25, gt=0)

    @property
    def dbt_profiles_dir(self) -> Path:
        import os

        for raw in (self.dbt_profiles_dir_override, os.environ.get("DBT_PROFILES_DIR")):
            if raw:
                return Path(raw).expanduser()
        if (Path(self.dbt_project_dir) / "profiles.yml").is_file():
            return Path(self.dbt_project_dir)
        return Path("~/.dbt").expanduser()

    @property
    def dbt_target_name(self) -> str | None:
        import os

        return self.dbt_target or os.environ.get("DBT_TARGET") or None

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def landing_dir(self) -> Path:
        return self.landing_dir_override or self.warehouse_dir / "landing"

    @property
    def duckdb_path(self) -> Path:
        return self.duckdb_path_override or self.warehouse_dir / "analytics.duckdb"

    @property
    def connector_state_dir(self) -> Path:
        return self.connector_state_dir_override or self.home / "connector_state"

    @property
    def emulator_state_dir(self) -> Path:
        return self.home / "emulators"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"


@lru_cache
def get_settings() -> Settings:
    return Settings()
