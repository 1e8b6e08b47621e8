"""The engine as a library a team installs (``pip install sla-orchestrator``), one namespace.

What a Dagster project uses:

* ``orchestrator.components.SlaPoliciesComponent``: the Dagster Component (``defs.yaml``) that
  resolves a team's SLA policies over the assets of its project, compiles them onto the specs of
  the components it governs (``governs``: folders under its own) and adds the sensors, digest,
  approvals and agent (README, "Add to your project");
* ``sla_definitions`` / ``with_sla_policies`` / ``compile_sla_onto_specs``
  (``orchestrator.lib.project``): the same from Python;
* ``connector_resources``: the ``fivetran`` / ``airbyte`` resources the sensors read;
* ``orchestrator.lib.sensors``: the sensor, check and schedule factories
  (``ProjectContext``, ``sensor_definitions``, ``sensors.failures.build_failure_sensor`` ...);
* ``orchestrator.lib.assets``: connector asset builders (``assets.airbyte.build_airbyte_assets``,
  ``assets.fivetran.build_fivetran_assets``) and the dbt translator mapping dbt ``meta`` to
  owners, groups and tags and linking dbt sources to connector tables
  (``assets.dbt.ProjectDbtTranslator``);
* ``orchestrator.dagster_policies``: SLA compilation onto ``AssetSpec``s.

``orchestrator.lib.assets`` and ``orchestrator.lib.sensors`` are this repository's ``assets/`` and
``sensors/`` folders (symbolic links, followed when the wheel is built); nothing is installed as a
top-level ``assets`` or ``sensors`` package.
"""

from __future__ import annotations

_EXPORTS = {
    "sla_definitions": "orchestrator.lib.project",
    "with_sla_policies": "orchestrator.lib.project",
    "compile_sla_onto_specs": "orchestrator.lib.project",
    "connector_resources": "orchestrator.lib.project",
    "replace_assets": "orchestrator.lib.project",
    "assets_of": "orchestrator.lib.project",
    "SlaDefinitions": "orchestrator.lib.project",
    "ProjectContext": "orchestrator.lib.sensors",
    "sensor_definitions": "orchestrator.lib.sensors",
    "apply_sla_to_spec": "orchestrator.dagster_policies",
    "load_resolution": "orchestrator.dagster_policies",
    "asset_graph_from_assets": "orchestrator.project_graph",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):  # imported on first use: importing orchestrator.lib stays cheap
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'orchestrator.lib' has no attribute {name!r}")
