"""What a vendor says about a failed sync, read from its own payloads (plain Python, no Dagster):
Airbyte's failure reasons of a job's attempts, Fivetran's tasks, warnings and failed setup tests
of a connector. ``orchestrator.resources.sync_failures`` (run failures) and
``orchestrator.snapshot`` (the connectors' sync state) both read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def airbyte_failure_reasons(job_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    reasons = []
    for attempt in job_info.get("attempts") or []:
        summary = (attempt.get("attempt") or {}).get("failureSummary") or {}
        for failure in summary.get("failures") or []:
            reasons.append(
                {
                    key: failure[key]
                    for key in ("failureOrigin", "failureType", "externalMessage", "internalMessage", "retryable")
                    if key in failure
                }
            )
    return reasons


def fivetran_problems(connector_details: Mapping[str, Any]) -> list[str]:
    status = connector_details.get("status") or {}
    problems = [
        f"{item.get('code')}: {item.get('message')}" + (f" ({item['details']})" if item.get("details") else "")
        for item in [*(status.get("tasks") or []), *(status.get("warnings") or [])]
    ]
    problems += [
        f"setup test {t.get('title')!r} {t.get('status')}: {t.get('message')}"
        + (f" ({t['details']})" if t.get("details") else "")
        for t in connector_details.get("setup_tests") or []
        if t.get("status") in ("FAILED", "JOB_FAILED")
    ]
    return problems
