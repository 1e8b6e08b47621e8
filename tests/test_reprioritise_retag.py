"""Issue 14 item 5: a queued run is re-prioritised by re-tagging it, not by cancel + re-submit.

Dagster's QueuedRunCoordinator daemon reads ``dagster/priority`` from the queued runs' tags in
storage at every dequeue, so re-tagging reorders the queue: the daemon's own dequeue choice is
checked here on a real instance (max 1 concurrent run)."""

from datetime import UTC, datetime
from types import SimpleNamespace

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test, instance_for_test
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from orchestrator.core.records import Action
from sensors.execution import _run_pass

NOW = datetime(2026, 11, 30, 5, tzinfo=UTC)


class Props:
    """The project store's side of the pass, recorded (the store itself is tested elsewhere)."""

    def __init__(self):
        self.executions, self.outcomes, self.begun = [], [], []

    def record_execution(self, aid, kind, **kw):
        self.executions.append((aid, kind, kw))

    def record_outcome(self, aid, ok, **kw):
        self.outcomes.append((aid, ok, kw.get("detail")))

    def begin_runs(self, aid, keys, **kw):
        self.begun.extend(keys)
        return keys

    def show(self, aid):
        return {"proposal_id": "p1"}


@pytest.fixture
def queue():
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

    def origin(job):
        repo = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("loc"), "repo")
        return RemoteJobOrigin(repository_origin=repo, job_name=job)

    overrides = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
                 "concurrency": {"runs": {"max_concurrent_runs": 1}}}
    with instance_for_test(overrides=overrides) as instance:
        first = create_run_for_test(instance, job_name="early", status=dg.DagsterRunStatus.QUEUED,
                                    remote_job_origin=origin("early"),
                                    tags={"dagster/priority": "5"})
        late = create_run_for_test(instance, job_name="late", status=dg.DagsterRunStatus.QUEUED,
                                   remote_job_origin=origin("late"),
                                   tags={"dagster/priority": "0", "orchestrator/action_id": "orig"})
        yield instance, first, late


def dequeued(instance):
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    return [r.run_id for r in daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)]


def action(run_id, priority=40):
    return Action(action_id="reprio-1", type="materialize", asset_keys=("fct_revenue",), run_id=run_id,
                  priority=priority, reason="re-prioritise", cause="priority")


def test_retagging_moves_the_queued_run_ahead_without_a_second_run(queue):
    instance, first, late = queue
    assert dequeued(instance) == [first.run_id]
    props = Props()
    requests = _run_pass(SimpleNamespace(instance=instance), props, action(late.run_id), None, NOW, "t")
    assert requests == [] and props.begun == []  # nothing submitted
    assert len(instance.get_runs()) == 2 and instance.get_run_by_id(late.run_id).status == dg.DagsterRunStatus.QUEUED
    tags = instance.get_run_by_id(late.run_id).tags
    assert tags["dagster/priority"] == "40"
    assert tags["orchestrator/action_id"] == "orig"  # the run still belongs to its own action
    assert dequeued(instance) == [late.run_id]  # the daemon now picks it first
    ((aid, ok, detail),) = props.outcomes
    assert ok and detail == {"retagged": late.run_id, "priority": {"from": "0", "to": "40"}}


def test_a_run_that_left_the_queue_is_left_alone(queue):
    instance, first, late = queue
    instance.handle_run_event(late.run_id, dg.DagsterEvent(
        event_type_value="PIPELINE_STARTING", job_name="late"))
    props = Props()
    assert _run_pass(SimpleNamespace(instance=instance), props, action(late.run_id), None, NOW, "t") == []
    assert instance.get_run_by_id(late.run_id).tags["dagster/priority"] == "0"
    assert props.outcomes[0][2]["note"] == "no longer queued"


def test_a_canceled_run_is_submitted_again(queue):
    instance, first, late = queue
    instance.report_run_canceled(instance.get_run_by_id(late.run_id))
    props = Props()
    requests = _run_pass(SimpleNamespace(instance=instance), props, action(late.run_id), None, NOW, "t")
    assert len(requests) == 1 and requests[0].tags["dagster/priority"] == "40"
    assert props.outcomes == []
