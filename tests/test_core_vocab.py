"""The shared vocabularies (orchestrator.core.vocab) are the one source the decision core reads."""

from orchestrator.core import vocab
from orchestrator.core.vocab import ActionType, FailureClass, Response
from orchestrator.diagnosis.rules import CATEGORIES


def test_failure_classes_are_the_diagnosis_categories():
    assert {c.value for c in FailureClass} == set(CATEGORIES)
    assert FailureClass.parse("no-such-class") is FailureClass.unknown


def test_failure_class_attributes():
    assert FailureClass.rate_limit.transient and FailureClass.rate_limit.backoff.max_attempts == 5
    assert FailureClass.auth_expired.response is Response.pause_and_escalate and FailureClass.auth_expired.needs_person
    assert FailureClass.code_error.backoff is None and FailureClass.code_error.needs_person
    assert FailureClass.schema_drift.response is Response.retry_or_resync
    assert FailureClass.rate_limit.backoff.delay_s(3) == 1200


def test_action_type_attributes():
    runs = {t for t in ActionType if t.starts_run}
    conns = {t for t in ActionType if t.calls_connector}
    assert runs == {ActionType.materialize, ActionType.retry, ActionType.backfill, ActionType.defer}
    assert not runs & conns and ActionType.cancel_run not in runs | conns
    assert [t for t in ActionType if t.never_automatic] == [ActionType.full_resync]
    assert ActionType.materialize.base_risk < ActionType.pause_connector.base_risk < ActionType.full_resync.base_risk
    assert ActionType.parse("materialize") is ActionType.materialize and ActionType.parse("drop_table") is None


def test_consumers_read_the_vocab():
    import importlib

    common, gate, planner = (importlib.import_module(f"orchestrator.planning.{m}") for m in ("common", "gate", "planner"))
    from orchestrator.policies import ActionType as PolicyActionType
    from sensors import execution

    assert PolicyActionType is ActionType
    assert planner.DEFAULT_BACKOFF is vocab.DEFAULT_BACKOFF and planner.Backoff is vocab.Backoff
    assert gate.NOT_RETRYABLE is vocab.NOT_RETRYABLE
    assert gate.TYPE_RISK == {t.value: t.base_risk for t in ActionType}
    assert common.ESCALATE_CATEGORIES == {"auth_expired", "permission_denied", "config_error"}
    assert execution.RUN_TYPES == {"materialize", "retry", "backfill", "defer"}
