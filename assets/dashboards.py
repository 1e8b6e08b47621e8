"""Dashboards (dbt exposures) as assets downstream of the marts they read.

dagster-dbt does not turn exposures into assets. Here each exposure is an asset whose
materialization is a dashboard extract refresh: it reads the marts the exposure depends on from
the warehouse and writes the extract the BI tool would serve, so "is the dashboard fresh" has the
same meaning in the UI as for any other asset.
"""


import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt.dbt_manifest import validate_manifest

from .dbt import WAREHOUSE_POOL, ProjectDbtTranslator
from .dbt_meta import tag_value
from orchestrator.settings import get_settings

DASHBOARD_GROUP = "dashboards"


def dashboard_key(exposure_name: str) -> dg.AssetKey:
    return dg.AssetKey(["dashboard", exposure_name])


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


def build_dashboard_assets(manifest_path, translator: ProjectDbtTranslator) -> dg.AssetsDefinition:
    """``manifest_path``: the manifest's path or the parsed manifest (``assets.dbt.load_manifest``)."""
    manifest = validate_manifest(manifest_path)  # a path is parsed once (dagster-dbt's cache)
    specs, upstream_relations = _exposure_specs(manifest, translator)

    @dg.multi_asset(name="dashboard_extracts", specs=specs, can_subset=True, pool=WAREHOUSE_POOL)
    def dashboard_extracts(context: dg.AssetExecutionContext):
        settings = get_settings()
        out_dir = settings.home / "dashboards"
        out_dir.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
            for key in sorted(context.selected_asset_keys):
                counts = {}
                for model, relation in upstream_relations[key].items():
                    try:
                        counts[model] = con.execute(f"select count(*) from {relation}").fetchone()[0]
                    except duckdb.Error as exc:
                        raise dg.Failure(
                            f"Dashboard {key.to_user_string()} cannot refresh: {relation} is not "
                            f"readable ({exc}). Materialize its upstream dbt models first."
                        ) from exc
                extract = {
                    "dashboard": key.path[-1],
                    "refreshed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "row_counts": counts,
                }
                path = out_dir / f"{key.path[-1]}.json"
                path.write_text(json.dumps(extract, indent=2))
                yield dg.MaterializeResult(
                    asset_key=key,
                    metadata={
                        "extract_path": dg.MetadataValue.path(str(path)),
                        "rows_read": sum(counts.values()),
                        **{f"rows/{m}": n for m, n in counts.items()},
                    },
                )

    return dashboard_extracts
