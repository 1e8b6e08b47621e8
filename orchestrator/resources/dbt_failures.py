"""dbt failures carried in the run's events, not left on the run's disk.

Under a run launcher that runs each run in its own pod (K8sRunLauncher), dbt's ``run_results.json``
lives in that pod and is gone when the failure sensor looks. ``stream_dbt`` streams a dbt
invocation's events as dagster-dbt does and, when dbt fails, raises a ``dagster.Failure`` with
dagster-dbt's own error text as its description (the diagnosis reads it as before) and the failed,
errored and skipped nodes of the invocation's ``run_results.json`` as the ``dbt_run_results``
metadata entry: stored with the step failure event in the instance, read back by
``orchestrator.snapshot`` (``run_results_from_failure``) wherever the sensor runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

METADATA_KEY = "dbt_run_results"
MAX_NODES = 500
MAX_MESSAGE = 2000
KEEP = ("error", "fail", "runtime error", "skipped", "warn")


def compact_run_results(run_results: Mapping[str, Any], manifest: Mapping[str, Any] | None = None) -> dict:
    """The part of ``run_results.json`` that explains a failure: nodes that did not pass, with
    dbt's message and, for tests, the node they test (from the invocation's manifest)."""
    nodes = (manifest or {}).get("nodes") or {}
    results = []
    for res in run_results.get("results") or []:
        status = str(res.get("status") or "").lower()
        if status not in KEEP:
            continue
        uid = res.get("unique_id") or ""
        item: dict[str, Any] = {"unique_id": uid, "status": status,
                                "message": (res.get("message") or "")[:MAX_MESSAGE]}
        if res.get("failures") is not None:
            item["failures"] = res["failures"]
        node = nodes.get(uid) or {}
        if uid.startswith("test.") and node:
            if node.get("attached_node"):
                item["attached_node"] = node["attached_node"]
            item["depends_on"] = {"nodes": list(((node.get("depends_on") or {}).get("nodes") or []))[:20]}
        results.append(item)
        if len(results) >= MAX_NODES:
            break
    meta = run_results.get("metadata") or {}
    return {"metadata": {k: meta.get(k) for k in ("invocation_id", "generated_at") if meta.get(k)},
            "results": results, "truncated": len(results) >= MAX_NODES}


def dbt_failure(invocation, error: BaseException) -> dg.Failure:
    """A Failure with dagster-dbt's error text and the invocation's failed nodes as metadata."""
    metadata: dict[str, Any] = {}
    try:
        run_results = invocation.get_artifact("run_results.json")
    except Exception:  # noqa: BLE001 - dbt died before writing it: the text alone still explains
        run_results = None
    if run_results:
        try:
            manifest = invocation.get_artifact("manifest.json")
        except Exception:  # noqa: BLE001
            manifest = None
        metadata[METADATA_KEY] = dg.MetadataValue.json(compact_run_results(run_results, manifest))
    return dg.Failure(description=str(error), metadata=metadata)


def stream_dbt(invocation) -> Iterator[Any]:
    """``yield from invocation.stream()``, with a dbt failure raised as ``dbt_failure``."""
    from dagster_dbt.errors import DagsterDbtCliRuntimeError

    try:
        yield from invocation.stream()
    except DagsterDbtCliRuntimeError as exc:
        raise dbt_failure(invocation, exc) from None


def run_results_from_failure(step_failure_data) -> dict | None:
    """The ``dbt_run_results`` a failed dbt step carried in its failure event (None: none)."""
    user = getattr(step_failure_data, "user_failure_data", None)
    entry = (getattr(user, "metadata", None) or {}).get(METADATA_KEY) if user is not None else None
    value = getattr(entry, "value", entry)
    if isinstance(value, Mapping) and isinstance(value.get("results"), list):
        return dict(value)
    return None
