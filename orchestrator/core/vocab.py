"""The decision core's shared vocabularies, in one typed home (no Dagster imports).

* :class:`ActionType`: what the planner may do, with whether it starts a Dagster run
  (``starts_run``), calls a connector API (``calls_connector``), its base risk for the gate
  (``base_risk``) and whether it may ever run without approval (``never_automatic``).
* :class:`FailureClass`: the failure categories the diagnosis assigns, with whether a plain retry
  is expected to clear it (``transient``), its default retry schedule (``backoff``) and the
  response the planner prescribes (``response``: a :class:`Response`).

The planner, validation, the gate, the execution sensor and the simulator's ``sla`` adapter read
these instead of keeping their own string sets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ActionType(str, enum.Enum):
    """What the planner may do to an asset or its connector."""

    materialize = "materialize"  # run the asset (and what it needs) now
    retry = "retry"  # re-run a failed run / step
    backfill = "backfill"  # targeted backfill of affected partitions x downstream closure
    resync_table = "resync_table"  # connector: resync selected tables
    full_resync = "full_resync"  # connector: historical re-sync of everything
    pause_connector = "pause_connector"
    resume_connector = "resume_connector"
    reschedule_connector = "reschedule_connector"  # change a connector's sync frequency
    defer = "defer"  # move a run into an off-peak window
    cancel_run = "cancel_run"

    @property
    def starts_run(self) -> bool:
        """Launches a Dagster run (a RunRequest), as opposed to an API call or a cancellation."""
        return self in _RUN

    @property
    def calls_connector(self) -> bool:
        """Carried out through the Fivetran/Airbyte API of one connector (needs ``connector``)."""
        return self in _CONNECTOR

    @property
    def base_risk(self) -> float:
        """The gate's risk for the type alone (a materialize is cheap to undo, a full resync is not)."""
        return _BASE_RISK[self]

    @property
    def never_automatic(self) -> bool:
        """Always waits for a person, whatever the policy's ``auto_approve`` says."""
        return self is ActionType.full_resync

    @classmethod
    def parse(cls, value: object) -> ActionType | None:
        """The member for ``value`` (a member or its string), None when it is not one."""
        try:
            return cls(getattr(value, "value", value))
        except ValueError:
            return None


_RUN = frozenset({ActionType.materialize, ActionType.retry, ActionType.backfill, ActionType.defer})
_CONNECTOR = frozenset({
    ActionType.resync_table, ActionType.full_resync, ActionType.pause_connector,
    ActionType.resume_connector, ActionType.reschedule_connector,
})
_BASE_RISK = {
    ActionType.defer: 0.05, ActionType.materialize: 0.10, ActionType.retry: 0.15,
    ActionType.resync_table: 0.25, ActionType.backfill: 0.30, ActionType.resume_connector: 0.30,
    ActionType.cancel_run: 0.35, ActionType.reschedule_connector: 0.40, ActionType.pause_connector: 0.45,
    ActionType.full_resync: 0.90,
}

RUN_ACTIONS: frozenset[ActionType] = _RUN
CONNECTOR_ACTIONS: frozenset[ActionType] = _CONNECTOR
RUN_ACTION_VALUES: frozenset[str] = frozenset(t.value for t in _RUN)
CONNECTOR_ACTION_VALUES: frozenset[str] = frozenset(t.value for t in _CONNECTOR)


@dataclass(frozen=True)
class Backoff:
    """A retry schedule: ``base_s * factor**(attempt-1)`` seconds, capped, ``max_attempts`` tries."""

    base_s: float
    factor: float = 2.0
    max_attempts: int = 3
    cap_s: float = 2 * 3600

    def delay_s(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * self.factor ** max(0, attempt - 1))


class Response(str, enum.Enum):
    """What the planner prescribes for a failure class."""

    retry = "retry"  # a backed-off retry (a new sync for a connector)
    retry_or_resync = "retry_or_resync"  # schema drift: retry if the connector absorbs it, else resync tables
    pause_and_escalate = "pause_and_escalate"  # a person must fix credentials/setup; stop futile syncs
    escalate = "escalate"  # a person must fix code or data; nothing to re-run
    wait = "wait"  # wait for the upstream
    retry_if_transient = "retry_if_transient"  # retry when the diagnosis calls it transient, else escalate


class FailureClass(str, enum.Enum):
    """Failure categories (``orchestrator.diagnosis.rules.CATEGORIES``)."""

    rate_limit = "rate_limit"
    auth_expired = "auth_expired"
    permission_denied = "permission_denied"
    schema_drift = "schema_drift"
    source_unavailable = "source_unavailable"
    destination_capacity = "destination_capacity"
    data_quality = "data_quality"
    code_error = "code_error"
    resource_exhausted = "resource_exhausted"
    upstream_delay = "upstream_delay"
    config_error = "config_error"
    unknown = "unknown"

    @property
    def transient(self) -> bool:
        """Whether a plain retry (with backoff) is expected to succeed, by default."""
        return _CLASS[self][0]

    @property
    def backoff(self) -> Backoff | None:
        """The default retry schedule (None: never retried automatically)."""
        return _CLASS[self][1]

    @property
    def response(self) -> Response:
        return _CLASS[self][2]

    @property
    def rerun_resolves(self) -> bool:
        """A new run of the failed work is the prescribed resolution (a backed-off retry; for a
        deadline cycle that needs the assets, its routine refresh after the backoff is that run)."""
        return self.response is Response.retry

    @property
    def needs_person(self) -> bool:
        """Only a person can fix it (credentials, grants, setup, code, data)."""
        return self.response in (Response.pause_and_escalate, Response.escalate)

    @classmethod
    def parse(cls, value: object) -> FailureClass:
        """The member for ``value``; anything unknown is ``unknown``."""
        try:
            return cls(getattr(value, "value", value))
        except ValueError:
            return cls.unknown


_CLASS: dict[FailureClass, tuple[bool, Backoff | None, Response]] = {
    FailureClass.rate_limit: (True, Backoff(300, 2.0, 5), Response.retry),
    FailureClass.auth_expired: (False, None, Response.pause_and_escalate),
    FailureClass.permission_denied: (False, None, Response.pause_and_escalate),
    FailureClass.schema_drift: (False, Backoff(0, 1.0, 2), Response.retry_or_resync),
    FailureClass.source_unavailable: (True, Backoff(600, 2.0, 4), Response.retry),
    FailureClass.destination_capacity: (True, Backoff(900, 2.0, 3), Response.retry),
    FailureClass.data_quality: (False, None, Response.escalate),
    FailureClass.code_error: (False, None, Response.escalate),
    FailureClass.resource_exhausted: (False, Backoff(600, 2.0, 3), Response.retry),
    FailureClass.upstream_delay: (True, None, Response.wait),
    FailureClass.config_error: (False, None, Response.pause_and_escalate),
    FailureClass.unknown: (False, Backoff(300, 2.0, 2), Response.retry_if_transient),
}

# Derived sets (string values) for the places that match on category strings.
PAUSE_AND_ESCALATE: frozenset[str] = frozenset(c.value for c in FailureClass if c.response is Response.pause_and_escalate)
ESCALATE_ONLY: frozenset[str] = frozenset(c.value for c in FailureClass if c.response is Response.escalate)
NO_ACTION: frozenset[str] = frozenset(c.value for c in FailureClass if c.response is Response.wait)
# Classes a plain retry never fixes, whatever a single diagnosis says.
NOT_RETRYABLE: frozenset[str] = frozenset(
    c.value for c in FailureClass if c.response not in (Response.retry, Response.wait)
)
DEFAULT_BACKOFF: dict[str, Backoff] = {c.value: c.backoff for c in FailureClass if c.backoff is not None}
TRANSIENT: dict[str, bool] = {c.value: c.transient for c in FailureClass}
