"""Dashboards from a BI integration (Tableau): the deadline-carrying assets are the dashboards of
the configured Tableau site, not the dbt exposures (``ORCHESTRATOR_DASHBOARDS=tableau``).

At load, the site's workbooks are read once through the Metadata API (``orchestrator/resources/
tableau.py``): each dashboard becomes the asset ``dashboard/<workbook>/<dashboard>`` (kinds
``tableau``, ``dashboard``; owner: the workbook owner's e-mail), downstream of the dbt models whose
relation (schema + alias) is one of the workbook's upstream tables. A materialization is a refresh
of the workbook's extracts (one Tableau job per workbook, polled to its finish code), so a policy's
deadline on a dashboard means "refreshed in Tableau by then". Tables that match no dbt model are
listed in the ``tableau/unmatched_tables`` metadata. When Tableau cannot be read at load, the error
is logged and no dashboard is built (the rest of the code location loads).
"""


import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from orchestrator.resources.tableau import TableauClient, TableauConfig, TableauError

log = logging.getLogger(__name__)
DASHBOARD_GROUP = "dashboards"
_SLUG = re.compile(r"[^A-Za-z0-9_]+")


def _slug(name: str) -> str:
    return _SLUG.sub("_", name.strip()).strip("_") or "unnamed"


def tableau_dashboard_key(workbook: str, dashboard: str) -> dg.AssetKey:
    return dg.AssetKey(["dashboard", _slug(workbook), _slug(dashboard)])


def _relations(manifest: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(schema, relation name) -> dbt node, lower-cased, for models, snapshots and seeds."""
    out = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") in ("model", "snapshot", "seed") and node.get("schema"):
            out[(str(node["schema"]).lower(), str(node.get("alias") or node["name"]).lower())] = node
    return out


def _view_url(config: TableauConfig, path: str | None) -> str | None:
    if not path:
        return None
    site = f"/site/{config.site}" if config.site else ""
    return f"{config.server_url}/#{site}/views/{path}"


def tableau_dashboard_specs(workbooks: list[dict], manifest: Mapping[str, Any],
                            key_of: Callable[[Mapping[str, Any]], dg.AssetKey],
                            config: TableauConfig) -> tuple[list[dg.AssetSpec], dict[dg.AssetKey, str]]:
    """The dashboards' specs and, per dashboard key, its workbook's LUID."""
    relations = _relations(manifest)
    specs, workbook_of = [], {}
    for wb in sorted(workbooks, key=lambda w: w.get("name") or ""):
        deps, unmatched = [], []
        for table in wb.get("upstreamTables") or []:
            node = relations.get((str(table.get("schema") or "").lower(), str(table.get("name") or "").lower()))
            if node is None:
                unmatched.append(table.get("fullName") or f"{table.get('schema')}.{table.get('name')}")
            elif key_of(node) not in deps:
                deps.append(key_of(node))
        owner = (wb.get("owner") or {}).get("email")
        for dash in sorted(wb.get("dashboards") or [], key=lambda d: d.get("name") or ""):
            key = tableau_dashboard_key(wb["name"], dash["name"])
            url = _view_url(config, dash.get("path"))
            specs.append(dg.AssetSpec(
                key=key, deps=deps, group_name=DASHBOARD_GROUP, owners=[owner] if owner else [],
                kinds={"tableau", "dashboard"}, skippable=True,
                description=f"Tableau dashboard {dash['name']} of workbook {wb['name']}"
                            + (f" (project {wb['projectName']})" if wb.get("projectName") else ""),
                tags={"bi_tool": "tableau"},
                metadata={
                    "tableau/workbook_luid": wb["luid"], "tableau/dashboard_luid": dash.get("luid") or "",
                    "tableau/project": wb.get("projectName") or "",
                    **({"tableau/unmatched_tables": ", ".join(sorted(unmatched))} if unmatched else {}),
                    **({"url": dg.MetadataValue.url(url)} if url else {}),
                },
            ))
            workbook_of[key] = wb["luid"]
    return specs, workbook_of


def build_tableau_dashboards(manifest: Mapping[str, Any], key_of: Callable[[Mapping[str, Any]], dg.AssetKey],
                             config: "TableauConfig | None" = None, client_factory=TableauClient,
                             ) -> dg.AssetsDefinition | None:
    """The Tableau dashboards as one refresh multi-asset (None when Tableau cannot be read or has
    no dashboard). ``key_of``: the asset key of a dbt node (the project's dbt translator)."""
    try:
        config = config or TableauConfig.from_env()
        with client_factory(config) as client:
            workbooks = client.workbooks()
    except TableauError as exc:
        log.error("Tableau dashboards not loaded: %s", exc)
        return None
    specs, workbook_of = tableau_dashboard_specs(workbooks, manifest, key_of, config)
    if not specs:
        return None

    @dg.multi_asset(name="tableau_dashboards", specs=specs, can_subset=True)
    def tableau_dashboards(context: dg.AssetExecutionContext):
        selected = sorted(context.selected_asset_keys)
        with client_factory(config) as client:
            for luid in sorted({workbook_of[k] for k in selected}):
                started = client.refresh_workbook(luid)
                context.log.info("Tableau refresh job %s started for workbook %s", started["id"], luid)
                try:
                    job = client.wait(started["id"])
                except TableauError as exc:
                    raise dg.Failure(str(exc)) from None
                for key in (k for k in selected if workbook_of[k] == luid):
                    yield dg.MaterializeResult(asset_key=key, metadata={
                        "refresh": "tableau", "tableau/job_id": started["id"],
                        **({"tableau/completed_at": job["completedAt"]} if job.get("completedAt") else {}),
                    })

    return tableau_dashboards
