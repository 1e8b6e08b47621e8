"""What the sensor tests share: the project context the sensors are built from, a sensor context on
the project's connector resources, and what the daemon does with a SensorResult's asset events."""

import dagster as dg

from orchestrator.dagster_policies import load_resolution
from orchestrator.project_graph import asset_graph_from_definitions
from sensors import ProjectContext


def project_context(project_defs, sandbox) -> ProjectContext:
    graph = asset_graph_from_definitions(project_defs)
    resolution = load_resolution(graph, [sandbox.settings.policies_dir])
    specs = {spec.key: spec for a in project_defs.assets for spec in getattr(a, "specs", [])}
    return ProjectContext(graph=graph, resolution=resolution, asset_specs=specs)


def sensor_context(instance, project_defs, cursor=None):
    return dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=project_defs,
        resources={"fivetran": project_defs.resources["fivetran"], "airbyte": project_defs.resources["airbyte"]},
    )


def persist(instance, result):
    """What the daemon does with a SensorResult's asset events: report them runless."""
    for ev in result.asset_events or []:
        instance.report_runless_asset_event(ev)
