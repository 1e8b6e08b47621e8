"""Turn dagster's bare sync failures into ones that carry the vendor's own error message.

dagster-airbyte fails with "Job failed: 42" and dagster-fivetran with "Sync for connector 'x'
failed!"; the reason lives elsewhere (Airbyte's configuration API ``jobs/get``, Fivetran's
connector ``status.tasks``/``warnings``/``setup_tests``). An engineer, and the failure sensor,
should see it in the run itself.
"""


import re
from collections.abc import Mapping
from typing import Any

import dagster as dg

from orchestrator.scrubbing import scrub_obj
# the vendor payload readers are plain Python (the dagster-free `plan --dry-run` reads them too)
from orchestrator.vendor_reasons import airbyte_failure_reasons, fivetran_problems  # noqa: F401
from orchestrator.scrubbing import scrub_pii as scrub

AIRBYTE_JOB_ID = re.compile(r"Job (?:failed|was cancelled): (\d+)")


def scrubbed_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The metadata a failure carries into run events, scrubbed value by value: dagster-fivetran
    puts the connector's whole details (vendor messages included) in ``connector_details``."""
    out: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if isinstance(value, dg.JsonMetadataValue):
            out[key] = dg.MetadataValue.json(scrub_obj(value.data))
        elif isinstance(value, dg.UrlMetadataValue):
            out[key] = dg.MetadataValue.url(scrub(value.url))
        elif isinstance(value, (dg.TextMetadataValue, dg.MarkdownMetadataValue)):
            out[key] = type(value)(scrub(value.value))
        elif isinstance(value, str):
            out[key] = scrub(value)
        elif isinstance(value, (dict, list)):
            out[key] = scrub_obj(value)
        else:
            out[key] = value
    return out


def explain_airbyte_failure(failure: dg.Failure, client) -> dg.Failure:
    match = AIRBYTE_JOB_ID.search(failure.description or "")
    if not match:
        return failure
    job_id = int(match.group(1))
    try:
        info = client._single_request(  # the config API is the only place failure reasons live
            method="POST", url=f"{client.configuration_api_base_url}/jobs/get", data={"id": job_id}
        )
    except Exception:  # the original failure is still the truth; the explanation is best effort
        return failure
    reasons = scrub_obj(airbyte_failure_reasons(info or {}))
    if not reasons:
        return failure
    last = reasons[-1]
    message = "; ".join(m for m in (last.get("externalMessage"), last.get("internalMessage")) if m)
    return dg.Failure(
        description=scrub(f"{failure.description}: [{last.get('failureOrigin')}/{last.get('failureType')}] {message}"),
        metadata={
            **scrubbed_metadata(failure.metadata),
            "airbyte_job_id": job_id,
            "failure_reasons": dg.MetadataValue.json(reasons),
        },
    )


def explain_fivetran_failure(failure: dg.Failure, client, connector_id: str) -> dg.Failure:
    metadata = failure.metadata or {}
    details_value = metadata.get("connector_details")
    details = getattr(details_value, "data", None) or getattr(details_value, "value", None)
    if not isinstance(details, Mapping):
        try:
            details = client.get_connector_details(connector_id)
        except Exception:
            return failure
    problems = [scrub(p) for p in fivetran_problems(details)]
    if not problems:
        return failure
    return dg.Failure(
        description=scrub(f"{failure.description} {' | '.join(problems)}"),
        metadata={**scrubbed_metadata(metadata), "fivetran_problems": dg.MetadataValue.json(problems)},
    )


