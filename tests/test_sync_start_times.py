"""Issue 14 item 4: a sync's start time where the API exposes it. Airbyte's JobResponse has
``startTime`` (= the job's createdAt): it reaches the materialization of a sync Dagster did not
start. Fivetran's connection object has none (connector-apis.md §1.3): the failure sensor notes
when it first saw the connector ``syncing`` and carries that as ``started_at_or_before``."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from orchestrator.core.graph import CONNECTOR_TABLE, AssetGraph, AssetNode
from orchestrator.core.records import SyncRecord
from orchestrator.snapshot import ConnectorReader
from sensors import ProjectContext
from sensors.failures import failures_tick

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
GRAPH = AssetGraph([
    AssetNode("stripe/charge", role=CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:ft1"),
    AssetNode("product/users", role=CONNECTOR_TABLE, kinds=frozenset({"airbyte"}), connector="airbyte:ab1"),
])


class Reader(ConnectorReader):
    """The connector APIs' answers at one moment (what fivetran_syncs/airbyte_syncs parse)."""

    def __init__(self, ft, ab):
        super().__init__(fivetran=object(), airbyte=object())
        self._ft, self._ab = ft, ab

    def fivetran_syncs(self, tables_of):
        return [SyncRecord(r.connector, r.sync_id, r.status, r.started_at, r.ended_at, tables=tuple(tables_of[r.connector]))
                for r in self._ft]

    def airbyte_syncs(self, tables_of, since):
        return [SyncRecord(r.connector, r.sync_id, r.status, r.started_at, r.ended_at, rows=7,
                           tables=tuple(tables_of[r.connector])) for r in self._ab]


def mats(events):
    return {e.asset_key.to_user_string(): e.metadata for e in events if isinstance(e, dg.AssetMaterialization)}


def test_start_times_reach_the_materializations_of_syncs_outside_dagster():
    ctx = ProjectContext(graph=GRAPH, resolution=None)
    prev = T0 - timedelta(hours=1)
    running = SyncRecord("fivetran:ft1", "ft1@running", "running", prev)
    before = SyncRecord("fivetran:ft1", f"ft1@{prev.isoformat()}", "succeeded", prev, prev)
    ab_job = SyncRecord("airbyte:ab1", "41", "succeeded", T0, T0 + timedelta(minutes=4))
    with dg.DagsterInstance.ephemeral() as instance:
        seen_at = T0 + timedelta(minutes=1)
        _, events, state = failures_tick(instance, ctx, {"ft": {"fivetran:ft1": prev.isoformat()}}, now=seen_at,
                                         connectors=Reader([before, running], [ab_job]))
        ab = mats(events)["product/users"]
        assert ab["started_at"].value == T0.isoformat() and ab["ended_at"].value == (T0 + timedelta(minutes=4)).isoformat()
        assert state["ftrun"] == {"fivetran:ft1": seen_at.isoformat()}
        # a later tick, still syncing: the first sighting is kept, not moved
        _, _, state = failures_tick(instance, ctx, state, now=seen_at + timedelta(seconds=15),
                                    connectors=Reader([before, running], []))
        assert state["ftrun"] == {"fivetran:ft1": seen_at.isoformat()}
        done = T0 + timedelta(minutes=6)
        finished = SyncRecord("fivetran:ft1", f"ft1@{done.isoformat()}", "succeeded", done, done)
        _, events, state = failures_tick(instance, ctx, state, now=done + timedelta(seconds=10),
                                         connectors=Reader([finished], []))
        ft = mats(events)["stripe/charge"]
        assert ft["started_at_or_before"].value == seen_at.isoformat()
        assert ft["fivetran_succeeded_at"].value == done.isoformat()
        assert state["ftrun"] == {}
        # the next sync nobody saw running carries no guessed start
        later = done + timedelta(hours=1)
        nxt = SyncRecord("fivetran:ft1", f"ft1@{later.isoformat()}", "succeeded", later, later)
        _, events, _ = failures_tick(instance, ctx, state, now=later + timedelta(seconds=5),
                                     connectors=Reader([nxt], []))
        assert "started_at_or_before" not in mats(events)["stripe/charge"]
