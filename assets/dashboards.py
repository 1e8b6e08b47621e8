"""Dashboards (dbt exposures) as assets downstream of the marts they read.

dagster-dbt does not turn exposures into assets. Here each exposure is an asset whose
materialization is a dashboard refresh, so "is the dashboard fresh" has the same meaning in the
UI as for any other asset. How it refreshes depends on the warehouse (``dashboard_mode``): on the
embedded DuckDB default it reads the marts from the DuckDB file and writes the extract the BI tool
would serve; on any other warehouse it records the latest materialization of each model the
exposure reads (no warehouse query, no driver).
"""


import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt.dbt_manifest import validate_manifest

from .dbt import DAILY_JOB, PARTITIONED_SELECTOR, WAREHOUSE_POOL, ProjectDbtTranslator
from .dbt_meta import tag_value
from orchestrator.settings import get_settings

DASHBOARD_GROUP = "dashboards"


def dashboard_key(exposure_name: str) -> dg.AssetKey:
    return dg.AssetKey(["dashboard", exposure_name])


_PARTITION_TAG = PARTITIONED_SELECTOR.split(":", 1)[1]


def _not_built_yet(model: str) -> str:
    return f"{model}: no day built yet (the {DAILY_JOB} job builds it one day per run)"


def partitioned_parents(manifest: Mapping[str, Any]) -> dict[dg.AssetKey, set[str]]:
    """dashboard key -> the daily-partitioned models it reads (by dbt name). Such a model is
    built one day per run by its own job, so a dashboard refresh before its first day reads it
    as empty (and says so) instead of failing: "Materialize all" stays one successful run."""
    nodes = manifest["nodes"]
    return {
        dashboard_key(exposure["name"]): {
            nodes[uid]["name"] for uid in exposure["depends_on"]["nodes"]
            if uid in nodes and _PARTITION_TAG in (nodes[uid].get("tags") or ())
        }
        for exposure in manifest.get("exposures", {}).values()
    }


def _exposure_specs(manifest: Mapping[str, Any], translator: ProjectDbtTranslator):
    specs, upstream_relations = [], {}
    nodes = manifest["nodes"]
    for exposure in sorted(manifest.get("exposures", {}).values(), key=lambda e: e["name"]):
        parents = [uid for uid in exposure["depends_on"]["nodes"] if uid in nodes]
        owner = exposure.get("owner") or {}
        key = dashboard_key(exposure["name"])
        specs.append(
            dg.AssetSpec(
                key=key,
                deps=[translator.get_asset_key(nodes[uid]) for uid in parents],
                description=exposure.get("description")
                or f"{exposure.get('label') or exposure['name']} ({exposure.get('type', 'dashboard')})",
                group_name=DASHBOARD_GROUP,
                owners=translator.exposure_owners(exposure),
                kinds=translator.exposure_kinds(exposure),
                tags={"dbt_exposure": tag_value(exposure["name"])},
                metadata={
                    "dbt_exposure": exposure["unique_id"],
                    "owner_name": owner.get("name") or "",
                    **({"url": dg.MetadataValue.url(exposure["url"])} if exposure.get("url") else {}),
                    **({"maturity": exposure["maturity"]} if exposure.get("maturity") else {}),
                },
                skippable=True,
            )
        )
        # Schema-qualified only: the database part of relation_name is the DuckDB file name at
        # parse time, which need not be the file the warehouse is opened from now.
        upstream_relations[key] = {
            nodes[uid]["name"]: f'"{nodes[uid]["schema"]}"."{nodes[uid].get("alias") or nodes[uid]["name"]}"'
            for uid in parents
        }
    return specs, upstream_relations


def dashboard_mode(manifest: Mapping[str, Any], setting: str | None = None) -> str:
    """How a dashboard refreshes (``ORCHESTRATOR_DASHBOARDS``): ``duckdb`` (the embedded
    default: an extract of row counts read from the DuckDB file), ``exposures`` (any warehouse:
    the refresh records the latest materialization of every model the exposure reads; no
    warehouse query), ``tableau`` (the dashboards of the configured Tableau site, refreshed there:
    ``assets/tableau.py``) or ``off``. ``auto`` = ``duckdb`` when the project's adapter is DuckDB."""
    setting = setting or get_settings().dashboards
    if setting != "auto":
        return setting
    adapter = (manifest.get("metadata") or {}).get("adapter_type")
    return "duckdb" if adapter == "duckdb" else "exposures"


def build_dashboard_assets(manifest_path, translator: ProjectDbtTranslator,
                           mode: str | None = None) -> dg.AssetsDefinition | None:
    """``manifest_path``: the manifest's path or the parsed manifest (``assets.dbt.load_manifest``).
    None when dashboards are off or the project has no exposures."""
    manifest = validate_manifest(manifest_path)  # a path is parsed once (dagster-dbt's cache)
    mode = dashboard_mode(manifest, mode)
    if mode == "tableau":  # a BI integration: its dashboards, not the dbt exposures
        from .tableau import build_tableau_dashboards

        return build_tableau_dashboards(manifest, translator.get_asset_key)
    specs, upstream_relations = _exposure_specs(manifest, translator)
    if mode == "off" or not specs:
        return None
    if mode == "exposures":
        return _exposure_refresh(specs, partitioned_parents(manifest),
                                 {translator.get_asset_key(n): n["name"] for n in manifest["nodes"].values()})
    daily = partitioned_parents(manifest)

    @dg.multi_asset(name="dashboard_extracts", specs=specs, can_subset=True, pool=WAREHOUSE_POOL)
    def dashboard_extracts(context: dg.AssetExecutionContext):
        settings = get_settings()
        out_dir = settings.home / "dashboards"
        out_dir.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
            for key in sorted(context.selected_asset_keys):
                counts, not_built = {}, []
                for model, relation in upstream_relations[key].items():
                    try:
                        counts[model] = con.execute(f"select count(*) from {relation}").fetchone()[0]
                    except duckdb.CatalogException as exc:
                        if model not in daily.get(key, ()):
                            raise dg.Failure(
                                f"Dashboard {key.to_user_string()} cannot refresh: {relation} is not "
                                f"readable ({exc}). Materialize its upstream dbt models first."
                            ) from exc
                        counts[model] = 0
                        not_built.append(_not_built_yet(model))
                        context.log.warning(f"{key.to_user_string()}: {not_built[-1]}")
                    except duckdb.Error as exc:
                        raise dg.Failure(
                            f"Dashboard {key.to_user_string()} cannot refresh: {relation} is not "
                            f"readable ({exc}). Materialize its upstream dbt models first."
                        ) from exc
                extract = {
                    "dashboard": key.path[-1],
                    "refreshed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "row_counts": counts,
                    **({"not_built": not_built} if not_built else {}),
                }
                path = out_dir / f"{key.path[-1]}.json"
                path.write_text(json.dumps(extract, indent=2))
                yield dg.MaterializeResult(
                    asset_key=key,
                    metadata={
                        "extract_path": dg.MetadataValue.path(str(path)),
                        "rows_read": sum(counts.values()),
                        **{f"rows/{m}": n for m, n in counts.items()},
                        **({"not_built": "; ".join(not_built)} if not_built else {}),
                    },
                )

    return dashboard_extracts


def _exposure_refresh(specs: list[dg.AssetSpec], daily: Mapping[dg.AssetKey, set[str]] | None = None,
                      model_names: Mapping[dg.AssetKey, str] | None = None) -> dg.AssetsDefinition:
    """Dashboards on any warehouse: a refresh is the moment the exposure's models are all
    materialized; it records when each was (``upstream/<model>``) and the oldest of them, read
    from the Dagster instance, not from the warehouse. The BI tool itself is not called."""
    deps = {spec.key: [d.asset_key for d in spec.deps] for spec in specs}

    @dg.multi_asset(name="dashboard_extracts", specs=specs, can_subset=True)
    def dashboard_extracts(context: dg.AssetExecutionContext):
        for key in sorted(context.selected_asset_keys):
            seen, missing, not_built = {}, [], []
            for dep in deps[key]:
                event = context.instance.get_latest_materialization_event(dep)
                name = (model_names or {}).get(dep)
                if event is None and name in (daily or {}).get(key, ()):
                    not_built.append(_not_built_yet(name))  # a daily model before its first day
                    context.log.warning(f"{key.to_user_string()}: {not_built[-1]}")
                elif event is None:
                    missing.append(dep.to_user_string())
                else:
                    seen[dep.to_user_string()] = event.timestamp
            if missing:
                raise dg.Failure(
                    f"Dashboard {key.to_user_string()} cannot refresh: {', '.join(missing)} never "
                    "materialized. Materialize its upstream dbt models first.")
            oldest = min(seen.values()) if seen else None
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "refresh": "exposures",
                    **({"not_built": "; ".join(not_built)} if not_built else {}),
                    **({"oldest_upstream": dg.MetadataValue.timestamp(oldest)} if oldest else {}),
                    **{f"upstream/{k}": dg.MetadataValue.timestamp(t) for k, t in seen.items()},
                },
            )

    return dashboard_extracts
