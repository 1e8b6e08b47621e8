"""Template root-cause summaries and remediation steps per failure category (no LLM needed).

:func:`summarize` turns a diagnosis into a short summary (2-4 sentences) that names what the
evidence says, plus remediation steps. It is what people see when no LLM is configured, and the
fallback when an LLM answer is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.diagnosis.rules import CATEGORIES


@dataclass(frozen=True)
class Template:
    cause: str
    retry: str
    steps: tuple[str, ...] = field(default_factory=tuple)


TEMPLATES: dict[str, Template] = {
    "rate_limit": Template(
        "The {system} API refused requests because a request-rate or concurrency limit was hit.",
        "A retry with backoff after the limit window usually succeeds.",
        ("Retry with exponential backoff (respect Retry-After when given).",
         "Lower the sync frequency or concurrency for this connector.",
         "If it recurs daily, ask the vendor for a higher quota or spread the schedule."),
    ),
    "auth_expired": Template(
        "{system} no longer accepts the credentials: a token, session or password expired or was revoked.",
        "Retrying will not help until the credentials are renewed.",
        ("Re-authenticate the connection (refresh the OAuth grant or rotate the key).",
         "Update the secret where the connector reads it, then re-run the failed sync.",
         "Check whether a password or token rotation policy expired the credential."),
    ),
    "permission_denied": Template(
        "The credentials used by {system} are valid but lack a privilege needed for this operation.",
        "Retrying will not help until access is granted.",
        ("Grant the missing privilege/role on the object named in the evidence.",
         "Verify the connector's role or service account is the intended one.",
         "Re-run the failed step once access is in place."),
    ),
    "schema_drift": Template(
        "The structure of the data changed: a column was added, removed, renamed or changed type between "
        "source and destination.",
        "A plain retry will fail the same way.",
        ("Compare the source schema with the destination table named in the evidence.",
         "Resync the affected table (or refresh the connector schema), then update downstream models.",
         "If the change was intended, update model contracts/types; otherwise contact the source owner."),
    ),
    "source_unavailable": Template(
        "{system} could not be reached or answered with a server-side error (connection refused, timeout, 5xx).",
        "These are usually transient: a retry with backoff often succeeds.",
        ("Retry with backoff.",
         "If it persists, check the service status page, network/VPN/firewall and DNS.",
         "Confirm the host and port in the connection settings are still correct."),
    ),
    "destination_capacity": Template(
        "The warehouse/database ran out of capacity for this work: a statement timeout, lock contention, "
        "connection limit or quota was hit.",
        "A retry later may succeed once load drops.",
        ("Retry off-peak or with lower concurrency.",
         "Check warehouse size/credits, connection limits and long-running locks.",
         "Raise the statement timeout or quota if the workload legitimately needs it."),
    ),
    "data_quality": Template(
        "Some data values are invalid for their target: a conversion, constraint or data test failed.",
        "Retrying will fail again on the same rows.",
        ("Find the offending rows/values named in the evidence (run the failing test's SQL).",
         "Fix or filter them at the source or in staging, or relax the test if it is wrong.",
         "Re-run the model and its tests."),
    ),
    "code_error": Template(
        "The code or definition itself is wrong: SQL/Jinja compilation, a missing reference or a bug raised "
        "an error.",
        "Retrying will fail the same way until the code changes.",
        ("Open the model/op named in the evidence and fix the error.",
         "Run it locally (dbt compile/run -s, or the op's test) before re-running the pipeline."),
    ),
    "resource_exhausted": Template(
        "The job ran out of compute resources (memory, CPU, disk or process limits) and was killed.",
        "A retry on the same resources usually fails again.",
        ("Increase the memory/CPU limits of the run worker or pod, or use a larger warehouse.",
         "Reduce the batch size or partition the work.",
         "Check for a data volume spike behind the sudden growth."),
    ),
    "upstream_delay": Template(
        "This step waited on something upstream that was late, stale, still running or failed.",
        "It should succeed once the upstream completes.",
        ("Look at the upstream asset or sync named in the evidence.",
         "Re-run after the upstream lands; do not re-run this step alone."),
    ),
    "config_error": Template(
        "A setting is missing or wrong for {system}: configuration, connection parameters, environment "
        "variables or installed packages.",
        "Retrying will not help until the configuration is fixed.",
        ("Check the configuration value named in the evidence (profiles, env vars, connector setup).",
         "Fix it where it is defined and re-run."),
    ),
    "unknown": Template(
        "The message does not say why {system} failed.",
        "Whether a retry helps is unknown.",
        ("Open the full run logs around the failure.",
         "Label the failure once the cause is known, so the next occurrence is recognized."),
    ),
}
assert set(TEMPLATES) == set(CATEGORIES)


def summarize(category: str, evidence: list[str] | None = None, system: str | None = None,
              transient: bool | None = None) -> dict[str, object]:
    """``{"summary": str, "remediation": [str, ...]}`` for a diagnosis (deterministic)."""
    t = TEMPLATES.get(category, TEMPLATES["unknown"])
    sys_name = system or "the system"
    parts = [t.cause.format(system=sys_name)]
    ev = [e for e in (evidence or []) if not e.startswith("memory:")]
    if ev:
        first = ev[0] if len(ev[0]) <= 160 else ev[0][:157] + "…"
        parts.append(f'The log says: "{first}".')
    parts.append(t.retry)
    return {"summary": " ".join(parts), "remediation": list(t.steps)}


__all__ = ["TEMPLATES", "Template", "summarize"]
