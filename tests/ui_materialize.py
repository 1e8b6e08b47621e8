"""One click on the Dagster UI's "Materialize all", as GraphQL requests in the UI's order
(dagster-webserver 1.13, ``ui-core`` ``LaunchAssetExecutionButton``: ``optionsForExecuteButton``
and ``stateForLaunchingAssets``): shared by tests/test_materialize_all.py (an in-process webserver)
and benchmarks/bench_materialize_all.py (the real ``dagster dev``). ``gql(query, **variables)``
answers the GraphQL ``data``."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

GRAPH_QUERY = """
query GlobalLineage { assetNodes { assetKey { path } isExecutable isObservable hasMaterializePermission
  partitionDefinition { name } repository { name location { name } } } }"""

JOB_GRAPH_QUERY = """
query JobAssets($job: PipelineSelector!) { assetNodes(pipeline: $job) { assetKey { path } isExecutable
  isObservable hasMaterializePermission partitionDefinition { name } } }"""

LOADER_QUERY = """
query Loader($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys) {
    assetKey { path } opNames jobNames hasMaterializePermission isObservable isExecutable isMaterializable
    partitionDefinition { name type } configField { isRequired }
    assetChecksOrError { ... on AssetChecks { checks { name jobNames } } }
    dependencyKeys { path } requiredResources { resourceKey }
    repository { name location { name } }
  }
  assetNodeAdditionalRequiredKeys(assetKeys: $assetKeys) { path }
  assetNodeDefinitionCollisions(assetKeys: $assetKeys) { assetKey { path } }
}"""

RESOURCES_QUERY = """
query Resources($pipelineName: String!, $repositoryName: String!, $repositoryLocationName: String!) {
  resourcesOrError(pipelineSelector: {pipelineName: $pipelineName, repositoryName: $repositoryName,
                                      repositoryLocationName: $repositoryLocationName}) {
    __typename
    ... on ResourceConnection { resources { name configField { isRequired } } }
    ... on PythonError { message }
  }
}"""

UPSTREAM_QUERY = """
query Upstream($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys, loadMaterializations: true) {
    assetKey { path } isMaterializable assetMaterializations(limit: 1) { runId }
  }
}"""

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def _keys(nodes) -> list[dict]:
    return [{"path": n["assetKey"]["path"]} for n in nodes]


def click_materialize_all(gql: Callable[..., dict], job: str | None = None) -> dict:
    """What one click on "Materialize all" does, on the global lineage (``job=None``) or on a
    job's page (its assets, the job preferred); returns what the user sees:
    ``{"outcome": "launched" | <the dialog or alert that opened>, ...}``."""
    graph = gql(GRAPH_QUERY)["assetNodes"]
    if job is not None:  # the job's page: its assets (the code location of the project's assets)
        repo = next(n["repository"] for n in graph if n["isExecutable"])
        graph = gql(JOB_GRAPH_QUERY, job={"pipelineName": job, "repositoryName": repo["name"],
                                          "repositoryLocationName": repo["location"]["name"]})["assetNodes"]
    preferred = job
    materializable = [n for n in graph if n["isExecutable"] and not n["isObservable"]]
    if not materializable or not all(n["hasMaterializePermission"] for n in graph):
        return {"outcome": "button disabled"}
    loaded = gql(LOADER_QUERY, assetKeys=_keys(materializable))
    if loaded["assetNodeDefinitionCollisions"]:
        return {"outcome": "collision alert", "detail": loaded["assetNodeDefinitionCollisions"]}
    if loaded["assetNodeAdditionalRequiredKeys"]:
        return {"outcome": "additional keys confirmation", "detail": loaded["assetNodeAdditionalRequiredKeys"]}
    assets = loaded["assetNodes"]
    if any(a["isObservable"] or not a["isExecutable"] for a in assets):
        return {"outcome": "error alert"}
    repo = assets[0]["repository"]
    common = [j for j in assets[0]["jobNames"] if all(j in a["jobNames"] for a in assets)]
    job = preferred if preferred in common else (common[0] if common else None)
    same_repo = all(a["repository"] == repo for a in assets)
    partitioned = [a for a in assets if a["partitionDefinition"]]
    if partitioned:  # "Launch backfill" dialog (disabled until partitions are chosen)
        return {"outcome": "partitions dialog", "detail": [a["assetKey"]["path"] for a in partitioned]}
    if not same_repo or job is None:
        return {"outcome": "invalid selection alert"}
    if any((a["configField"] or {}).get("isRequired") for a in assets):
        return {"outcome": "launchpad (op config)"}
    needed = {r["resourceKey"] for a in assets for r in a["requiredResources"]}
    if needed:
        answer = gql(RESOURCES_QUERY, pipelineName=job, repositoryName=repo["name"],
                         repositoryLocationName=repo["location"]["name"])["resourcesOrError"]
        if answer["__typename"] != "ResourceConnection":
            return {"outcome": "error alert", "detail": answer}
        if any((r["configField"] or {}).get("isRequired") for r in answer["resources"] if r["name"] in needed):
            return {"outcome": "launchpad (resource config)"}
    selected = {tuple(a["assetKey"]["path"]) for a in assets}
    upstream = sorted({tuple(d["path"]) for a in assets for d in a["dependencyKeys"]} - selected)
    if upstream:
        nodes = gql(UPSTREAM_QUERY, assetKeys=[{"path": list(p)} for p in upstream])["assetNodes"]
        never = [n["assetKey"]["path"] for n in nodes if n["isMaterializable"] and not n["assetMaterializations"]]
        if never:
            return {"outcome": "are-you-sure confirmation", "detail": never}
    checks = [{"name": c["name"], "assetKey": {"path": a["assetKey"]["path"]}}
              for a in assets for c in (a["assetChecksOrError"].get("checks") or []) if job in c["jobNames"]]
    params = {
        "mode": "default", "executionMetadata": {"tags": []}, "runConfigData": "{}",
        "selector": {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
                     "pipelineName": job, "assetSelection": _keys(assets), "assetCheckSelection": checks},
    }
    launched = gql(LAUNCH, executionParams=params)["launchPipelineExecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        return {"outcome": "launch error toast", "detail": launched}
    return {"outcome": "launched", "run_id": launched["run"]["runId"], "job": job,
            "assets": {dg.AssetKey(list(p)) for p in selected}, "external": {
                dg.AssetKey(n["assetKey"]["path"]) for n in graph if not n["isExecutable"]}}
