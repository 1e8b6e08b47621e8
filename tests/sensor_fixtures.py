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


def launch(instance, result, sensor_name: str = "failure_diagnosis_sensor") -> list[str]:
    """What the daemon does with a SensorResult's run requests: one run each, tagged with its run
    key and the sensor's name (how Dagster skips a run key it already launched). Returns run ids."""
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
    from dagster._core.utils import make_new_run_id

    ids = []
    for rr in result.run_requests or []:
        tags = {**rr.tags, "dagster/run_key": rr.run_key, "dagster/sensor_name": sensor_name}
        run = DagsterRun(job_name="__ASSET_JOB", run_id=make_new_run_id(), tags=tags, status=DagsterRunStatus.NOT_STARTED)
        instance.add_run(run)
        ids.append(run.run_id)
    return ids
