"""Dagster Components of the library: ``SlaPoliciesComponent``.

A team adds SLA policies to its existing ``dg`` project with one ``defs.yaml``::

    # src/<project>/defs/sla/defs.yaml
    type: orchestrator.components.SlaPoliciesComponent
    attributes:
      policies: "{{ project_root }}/policies"
      connectors: [airbyte]

The component reads the assets of every *other* component of the project (the component tree's
own cached definitions, so nothing is built twice), and loads the folders listed in ``governs``
(components under its own folder: ``.py`` files and ``defs.yaml`` components, as Dagster loads a
defs folder) itself, so that it can compile the policies onto *their* specs (SLA tags, owners, a
native FreshnessPolicy): a component cannot change the assets another component returned. It
resolves the policies over the graph of both and adds
the freshness, cost, failure, planning, execution, schema-change, health and notification sensors,
their asset checks on the team's governed assets, the daily digest, the approval job and (with an
OpenAI-compatible endpoint configured) the LLM agent. Its graph is rebuilt each time the code
location loads; each sensor tick reads runs, materializations and checks from the repository and
the instance. Attributes override the environment variables of the same meaning for the process
(``ORCHESTRATOR_*``, README "Add to your project").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import dagster as dg
from dagster.components import Component, ComponentLoadContext, Model, Resolvable

log = logging.getLogger(__name__)


class DigestSettings(Model):
    cron: str | None = None  # ORCHESTRATOR_DIGEST_CRON, default "0 7 * * *"
    timezone: str | None = None  # ORCHESTRATOR_DIGEST_TZ
    recipients: list[str] | None = None  # DIGEST_RECIPIENTS
    sender: str | None = None  # DIGEST_SENDER
    schedule: Literal["on", "off"] | None = None  # ORCHESTRATOR_DIGEST_SCHEDULE


class ApprovalSettings(Model):
    base_url: str | None = None  # ORCHESTRATOR_APPROVAL_BASE_URL
    secret: str | None = None  # ORCHESTRATOR_APPROVAL_SECRET (use "{{ env.MY_SECRET }}")
    token_ttl: str | None = None  # ORCHESTRATOR_APPROVAL_TOKEN_TTL


class AgentSettings(Model):
    base_url: str | None = None  # OPENAI_BASE_URL (an OpenAI-compatible endpoint)
    api_key: str | None = None  # OPENAI_API_KEY (use "{{ env.OPENAI_API_KEY }}")
    fast_model: str | None = None  # ORCHESTRATOR_LLM_FAST_MODEL
    deep_model: str | None = None  # ORCHESTRATOR_LLM_DEEP_MODEL
    timeout_s: float | None = None  # ORCHESTRATOR_LLM_TIMEOUT


class SlaPoliciesComponent(Component, Model, Resolvable):
    """SLA policies compiled onto the assets of the project it is added to, with the sensors,
    digest, approvals and agent of the SLA-aware orchestrator."""

    policies: list[str] = ["policies"]  # policy files or folders; relative to this defs.yaml's folder
    home: str | None = None  # ORCHESTRATOR_HOME: local state (connector states, SQLite store, outbox)
    store_url: str | None = None  # ORCHESTRATOR_STORE_URL (SQLAlchemy URL; default SQLite under home)
    automation: Literal["auto", "recommend", "shadow"] | None = None  # ORCHESTRATOR_AUTOMATION
    connectors: list[Literal["fivetran", "airbyte"]] | None = None  # ORCHESTRATOR_CONNECTORS ([] = none)
    fivetran_connectors: list[str] | None = None  # ORCHESTRATOR_FIVETRAN_CONNECTORS (shell patterns)
    airbyte_connections: list[str] | None = None  # ORCHESTRATOR_AIRBYTE_CONNECTIONS (shell patterns)
    dbt_project_dir: str | None = None  # ORCHESTRATOR_DBT_PROJECT_DIR (schema-change sensor, lineage)
    connector_resources: bool = True  # bind the `fivetran` / `airbyte` resources the sensors read
    # folders under this defs.yaml's folder holding the team's components (.py files, defs.yaml
    # components) whose asset specs get the policies compiled onto them; the component loads them
    governs: list[str] = []
    connector_owners: list[str] | None = None  # ORCHESTRATOR_CONNECTOR_OWNERS rules ("pattern=owner")
    connector_groups: Literal["schema", "source"] | None = None  # ORCHESTRATOR_CONNECTOR_GROUPS
    digest: DigestSettings | None = None
    approvals: ApprovalSettings | None = None
    agent: AgentSettings | None = None

    # --- configuration -------------------------------------------------------------------------

    def _path(self, context: ComponentLoadContext, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (context.path / path).resolve()

    def environment(self, context: ComponentLoadContext) -> dict[str, str]:
        """The environment variables the attributes set (the library reads its settings there)."""
        env: dict[str, str] = {}

        def put(name: str, value) -> None:
            if value is not None:
                env[name] = ",".join(value) if isinstance(value, list) else str(value)

        put("ORCHESTRATOR_POLICIES_DIR", str(self._path(context, self.policies[0])) if self.policies else None)
        put("ORCHESTRATOR_HOME", str(self._path(context, self.home)) if self.home else None)
        put("ORCHESTRATOR_STORE_URL", self.store_url)
        put("ORCHESTRATOR_AUTOMATION", self.automation)
        if self.connectors is not None:
            put("ORCHESTRATOR_CONNECTORS", ",".join(self.connectors) or "none")
        put("ORCHESTRATOR_FIVETRAN_CONNECTORS", self.fivetran_connectors)
        put("ORCHESTRATOR_AIRBYTE_CONNECTIONS", self.airbyte_connections)
        put("ORCHESTRATOR_CONNECTOR_OWNERS", self.connector_owners)
        put("ORCHESTRATOR_CONNECTOR_GROUPS", self.connector_groups)
        put("ORCHESTRATOR_DBT_PROJECT_DIR",
            str(self._path(context, self.dbt_project_dir)) if self.dbt_project_dir else None)
        if self.digest:
            put("ORCHESTRATOR_DIGEST_CRON", self.digest.cron)
            put("ORCHESTRATOR_DIGEST_TZ", self.digest.timezone)
            put("DIGEST_RECIPIENTS", self.digest.recipients)
            put("DIGEST_SENDER", self.digest.sender)
            put("ORCHESTRATOR_DIGEST_SCHEDULE", self.digest.schedule)
        if self.approvals:
            put("ORCHESTRATOR_APPROVAL_BASE_URL", self.approvals.base_url)
            put("ORCHESTRATOR_APPROVAL_SECRET", self.approvals.secret)
            put("ORCHESTRATOR_APPROVAL_TOKEN_TTL", self.approvals.token_ttl)
        if self.agent:
            put("OPENAI_BASE_URL", self.agent.base_url)
            put("OPENAI_API_KEY", self.agent.api_key)
            put("ORCHESTRATOR_LLM_FAST_MODEL", self.agent.fast_model)
            put("ORCHESTRATOR_LLM_DEEP_MODEL", self.agent.deep_model)
            put("ORCHESTRATOR_LLM_TIMEOUT", self.agent.timeout_s)
        return env

    # --- the project's other assets ------------------------------------------------------------

    @staticmethod
    def _project_assets(context: ComponentLoadContext) -> list:
        """The assets of every other component of the project, from the component tree (whose
        definitions are cached per component: the project's own load reuses them)."""
        from dagster.components.core.defs_module import ComponentPath

        from orchestrator.lib.project import assets_of

        mine = context.component_loc
        mine_path = mine.file_path if isinstance(mine, ComponentPath) else None

        def holds_me(loc) -> bool:
            if loc == mine:
                return True
            if mine_path is None or not isinstance(loc, ComponentPath):
                return not isinstance(loc, ComponentPath)  # the root (or an aggregate): descend
            return mine_path == loc.file_path or loc.file_path in mine_path.parents

        def others(decl) -> Iterator:
            for child in decl.iterate_child_component_decls():
                if child.loc == mine or (isinstance(child.loc, ComponentPath) and mine_path is not None
                                         and child.loc.file_path == mine_path and child.loc.instance_key is None):
                    continue
                if holds_me(child.loc):
                    yield from others(child)
                else:
                    yield child

        found = []
        for decl in others(context.component_tree.find_root_decl()):
            found.extend(assets_of(context.build_defs(decl.loc)))
        return found

    def _governed_folder(self, context: ComponentLoadContext, value: str) -> Path:
        folder = self._path(context, value)
        if folder == context.path or context.path not in folder.parents:
            raise ValueError(
                f"SlaPoliciesComponent at {context.path}: governs {value!r} ({folder}) is not a folder under "
                "the component's own folder; move the components whose specs carry the policies there "
                "(Dagster would load them a second time elsewhere)")
        if not folder.is_dir():
            raise ValueError(f"SlaPoliciesComponent at {context.path}: governs {value!r}: no folder {folder}")
        return folder

    def _governed_defs(self, context: ComponentLoadContext, folder: Path) -> dg.Definitions:
        """The definitions of the components in ``folder``, loaded the way Dagster loads a defs
        folder (``.py`` files, ``defs.yaml`` components, sub-folders, post-processing), as a
        component tree rooted there: Dagster does not descend into a YAML component's folder."""
        import importlib

        from dagster.components.core.component_tree import ComponentTree

        module = importlib.import_module(context.defs_relative_module_name(folder))
        return ComponentTree.from_module(defs_module=module, project_root=context.project_root).build_defs(folder)

    def build_defs(self, context: ComponentLoadContext) -> dg.Definitions:
        from orchestrator.lib.project import assets_of, connector_resources, replace_assets, sla_definitions
        from orchestrator.resources import SYSTEMS, enabled_systems
        from orchestrator.settings import get_settings

        os.environ.update(self.environment(context))
        get_settings.cache_clear()
        governed = [self._governed_defs(context, self._governed_folder(context, f)) for f in self.governs]
        governed_assets = [a for d in governed for a in assets_of(d)]
        assets = self._project_assets(context)
        systems = enabled_systems()
        unused = [s for s in SYSTEMS if s not in systems]
        policies = [self._path(context, p) for p in self.policies]
        sla = sla_definitions(assets, policies, unavailable_kinds=unused, governed=governed_assets)
        if not sla.resolution.ok:
            log.error("SLA policies not applied: %s", sla.resolution.skip_reason)
        compiled = iter(sla.governed)  # in the order of governed_assets
        parts = [replace_assets(d, [next(compiled) for _ in assets_of(d)]) for d in governed]
        parts.append(sla.definitions)
        if self.connector_resources:
            parts.append(dg.Definitions(resources=connector_resources(systems)))
        return dg.Definitions.merge(*parts)
