"""Realistic vendor error texts used when a fault does not spell out its own message."""

from __future__ import annotations

FIVETRAN_SYNC_ERRORS: dict[str, str] = {
    "salesforce": (
        "Salesforce API request failed: REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded. "
        "The sync will resume when the daily API quota resets."
    ),
    "stripe": (
        "Stripe API returned HTTP 500 for GET /v1/invoices: An unknown error occurred while "
        "processing this request (request id req_8Hq1pXzK2)."
    ),
    "zendesk": (
        "Zendesk Support API returned HTTP 503 Service Unavailable for /api/v2/incremental/tickets "
        "after 5 attempts."
    ),
    "postgres": (
        "ERROR: canceling statement due to conflict with recovery. Detail: User query might have "
        "needed to see row versions that must be removed."
    ),
}
FIVETRAN_DEFAULT_SYNC_ERROR = "{service} API returned HTTP 502 Bad Gateway after 5 attempts."

FIVETRAN_AUTH_DETAILS = (
    "Authentication failed (401 Unauthorized). Verify the provided credentials and permissions."
)

AIRBYTE_SOURCE_ERRORS: dict[str, tuple[str, str]] = {
    # source_type -> (externalMessage, internalMessage)
    "postgres": (
        "Something went wrong within the source connector",
        "org.postgresql.util.PSQLException: ERROR: canceling statement due to conflict with recovery",
    ),
    "hubspot": (
        "Something went wrong within the source connector",
        "HTTPError: 502 Server Error: Bad Gateway for url: https://api.hubapi.com/marketing/v3/campaigns",
    ),
    "google-ads": (
        "Something went wrong within the source connector",
        "google.ads.googleads.errors.GoogleAdsException: RESOURCE_TEMPORARILY_EXHAUSTED: "
        "Too many requests. Retry in 30 seconds.",
    ),
}
AIRBYTE_DEFAULT_SOURCE_ERROR = (
    "Something went wrong within the source connector",
    "io.airbyte.workers.internal.exception.SourceException: Source process exited with non-zero exit code 1",
)

AIRBYTE_CHECK_FAILED = (
    "Checking source connection failed - please review this connection's configuration to "
    "prevent future syncs from failing"
)
AIRBYTE_AUTH_INTERNAL: dict[str, str] = {
    "postgres": 'State code: 28P01; Message: FATAL: password authentication failed for user "airbyte"',
    "hubspot": "HTTPError: 401 Client Error: Unauthorized. The OAuth token used to make this call expired.",
    "google-ads": "google.auth.exceptions.RefreshError: ('invalid_grant: Token has been expired or revoked.')",
}
AIRBYTE_DEFAULT_AUTH_INTERNAL = "401 Unauthorized: the credentials for this source are no longer valid."

AIRBYTE_CANCELLED_EXTERNAL = "This attempt was cancelled"
AIRBYTE_CANCELLED_INTERNAL = "Setting attempt to FAILED because the job was cancelled"


def java_stacktrace(internal_message: str, worker_class: str = "DefaultReplicationWorker") -> str:
    return (
        f"io.airbyte.workers.exception.WorkerException: {internal_message}\n"
        f"\tat io.airbyte.workers.general.{worker_class}.run({worker_class}.java:194)\n"
        "\tat io.airbyte.workers.temporal.TemporalAttemptExecution.get(TemporalAttemptExecution.java:142)\n"
        "\tat java.base/java.lang.Thread.run(Thread.java:1583)\n"
    )
