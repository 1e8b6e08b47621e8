"""Owners and asset keys of connector tables, by configuration (issue 14, item 3).

Owners: ``ORCHESTRATOR_CONNECTOR_OWNERS`` is a comma-separated list of ``pattern=owner`` rules,
first match wins; a pattern (shell glob, case-insensitive) is matched against the Fivetran group
(destination) id and name / the Airbyte workspace id and name, and the connector's id and name.
The owner ``source`` means "the group / workspace itself": ``team:<its name>`` (made a valid
Dagster owner). Without a matching rule the owner stays ``team:data-platform``. SLA policies'
``owners`` override these for everything the sensors, digest and notifications do.

Groups: ``ORCHESTRATOR_CONNECTOR_GROUPS`` = ``schema`` (default: ``fivetran_<schema>`` /
``airbyte_<schema>``) or ``source``: the Fivetran group (destination) / Airbyte workspace name,
made a valid Dagster group name (``Shop warehouse`` -> ``Shop_warehouse``; its id when the API
gave no name).

Asset keys: ``ORCHESTRATOR_AIRBYTE_ASSET_KEYS`` = ``schema`` (default: ``<schema>/<table>`` like
Fivetran's) or ``dagster`` (dagster-airbyte's default, the destination table name alone), so a
team already keyed on dagster-airbyte's defaults keeps its keys. Fivetran tables keep
dagster-fivetran's default ``<schema>/<table>``.
"""

from __future__ import annotations

import fnmatch
import os
import re

DEFAULT_INGESTION_OWNER = "team:data-platform"
KEY_STYLES = ("schema", "dagster")
GROUP_STYLES = ("schema", "source")
_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_BAD_GROUP = re.compile(r"[^A-Za-z0-9_]+")


def _team(name: str) -> str:
    return "team:" + (_BAD.sub("_", name.strip()).strip("_") or "unnamed")


def owner_rules(raw: str | None = None) -> list[tuple[str, str]]:
    raw = os.environ.get("ORCHESTRATOR_CONNECTOR_OWNERS", "") if raw is None else raw
    rules = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        pattern, sep, owner = part.partition("=")
        if not sep or not pattern.strip() or not owner.strip():
            raise ValueError(f"ORCHESTRATOR_CONNECTOR_OWNERS: {part!r} is not pattern=owner "
                             "(e.g. 'sales_*=team:sales-data,*=source')")
        rules.append((pattern.strip().lower(), owner.strip()))
    return rules


def ingestion_owner(*, source_id: str | None, source_name: str | None, connector_id: str | None,
                    connector_name: str | None, rules: list[tuple[str, str]] | None = None) -> str:
    """The owner of a connector's tables: the first rule matching the group/workspace or the
    connector, ``source`` = ``team:<group/workspace name>``; else ``team:data-platform``."""
    rules = owner_rules() if rules is None else rules
    names = [str(v).lower() for v in (source_id, source_name, connector_id, connector_name) if v]
    for pattern, owner in rules:
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            if owner.lower() == "source":
                return _team(source_name or source_id or "unnamed")
            return owner if owner.startswith("team:") or "@" in owner else _team(owner)
    return DEFAULT_INGESTION_OWNER


def airbyte_key_style(raw: str | None = None) -> str:
    value = (os.environ.get("ORCHESTRATOR_AIRBYTE_ASSET_KEYS", "") if raw is None else raw).strip().lower() or "schema"
    if value not in KEY_STYLES:
        raise ValueError(f"ORCHESTRATOR_AIRBYTE_ASSET_KEYS={value!r}: use 'schema' (<schema>/<table>) "
                         "or 'dagster' (dagster-airbyte's default key, the table name)")
    return value


def group_style(raw: str | None = None) -> str:
    value = (os.environ.get("ORCHESTRATOR_CONNECTOR_GROUPS", "") if raw is None else raw).strip().lower() or "schema"
    if value not in GROUP_STYLES:
        raise ValueError(f"ORCHESTRATOR_CONNECTOR_GROUPS={value!r}: use 'schema' (fivetran_<schema> / "
                         "airbyte_<schema>) or 'source' (the Fivetran group / Airbyte workspace name)")
    return value


def connector_group(system: str, schema: str | None, *, source_id: str | None, source_name: str | None,
                    style: str | None = None) -> str:
    """The Dagster group of a connector table: ``<system>_<schema>``, or (style ``source``) the
    Fivetran group / Airbyte workspace name as a valid group name."""
    style = style or group_style()
    if style == "source" and (source_name or source_id):
        return _BAD_GROUP.sub("_", str(source_name or source_id).strip()).strip("_") or f"{system}_default"
    return _BAD_GROUP.sub("_", f"{system}_{schema or 'default'}")


def wants_source_names() -> bool:
    """Whether the builders should read group / workspace names (one API call): owner rules or
    groups named after the source are configured."""
    return bool(owner_rules()) or group_style() == "source"
