"""A run split for approval lets a model run now when its input in the waiting part is already
fresh for the model's own cycle (plan-answers).

Generated world 107 (seeds 100-119): two dashboards share their models; dash-0's window opened at
15:00, dash-1's opens at 20:00, both due at 23:00. The connector's own 16:15 sync made the inputs
fresh for dash-0, and the planner proposed dash-0's models in one run with a sync asked ahead for
dash-1's later cycle. That sync is not pre-authorised (the platform policy): the run waited whole
for the standing approval asked at 14:00, answered after the approvers' night at 21:15, and both
23:00 cycles were missed (cron-tuned met them). The split of a mixed run kept a model back behind
any input of the run that waits, even one whose data already served the model's cycle.
"""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.graph import CONNECTOR_TABLE, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.planning.planner import APPROVAL_PART, _split_preauthorised


class _Sla:
    def __init__(self, preauthorised: bool):
        self.preauthorised, self.policies, self.propagated_from = preauthorised, ("p",), ()

    def may_run_without_approval(self, _type) -> bool:
        return self.preauthorised


class _Resolution:
    def __init__(self, preauthorised: dict[str, bool]):
        self.preauthorised = preauthorised

    def sla(self, key):
        return _Sla(self.preauthorised[key])


class _Cycles:
    """``holds(u, k)``: ``u``'s data is older than ``k``'s cycle (not in ``fresh``)."""

    def __init__(self, fresh: set[tuple[str, str]]):
        self.fresh = fresh

    def holds(self, u: str, k: str) -> bool:
        return (u, k) not in self.fresh


@st.composite
def _runs(draw):
    """A run of connector tables and models (a random DAG), which steps are pre-authorised, and
    which inputs already hold data fresh for their consumer's cycle."""
    nodes, keys = [], []
    for c in range(draw(st.integers(1, 3))):
        for t in range(draw(st.integers(1, 2))):
            key = f"c{c}/t{t}"
            nodes.append(AssetNode(key, CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector=f"fivetran:c{c}"))
            keys.append(key)
    for m in range(draw(st.integers(1, 6))):
        ups = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True))
        nodes.append(AssetNode(f"m{m}", DBT_MODEL, upstream=tuple(ups)))
        keys.append(f"m{m}")
    graph = AssetGraph(nodes)
    preauthorised = {k: draw(st.booleans()) for k in keys}
    edges = [(u, k) for k in keys for u in graph.parents(k)]
    fresh = {e for e in edges if draw(st.booleans())}
    return graph, keys, preauthorised, fresh


def _split(graph, keys, preauthorised, fresh):
    members = {"root": list(keys)}
    st_ = SimpleNamespace(resolution=_Resolution(preauthorised), graph=graph, incidents=SimpleNamespace(standing=None),
                          topo_index=graph.topological_index(), cycles=_Cycles(fresh), notes=[])
    _split_preauthorised(st_, members, {})
    return set(members["root"]), set(members.get("root" + APPROVAL_PART, ()))


@settings(max_examples=150, deadline=None)
@given(_runs())
def test_the_part_that_starts_now_never_reads_data_too_old_for_its_cycle(run):
    """Any run: the part that starts now is pre-authorised, never holds a table of a connector
    whose sync waits, and never reads an input of the waiting part whose data is older than its
    cycle; and every pre-authorised model whose inputs in the run start now or are already fresh
    for its cycle starts now (it does not wait for a person's answer it does not need)."""
    graph, keys, preauthorised, fresh = run
    free, waiting = _split(graph, keys, preauthorised, fresh)
    if not waiting:  # not split: the run stays whole
        assert free == set(keys)
        return
    assert free | waiting == set(keys) and not free & waiting
    waiting_conns = {graph.get(k).connector for k in waiting if graph.get(k).connector}
    for k in free:
        assert preauthorised[k]
        assert graph.get(k).connector not in waiting_conns
        assert all(u in free or (u, k) in fresh for u in graph.parents(k) if u in keys), k
    for k in waiting:
        node = graph.get(k)
        if preauthorised[k] and not node.connector:
            assert any(u in waiting and (u, k) not in fresh for u in graph.parents(k) if u in keys), k


def test_a_model_fresh_for_its_cycle_does_not_wait_for_a_sync_asked_for_a_later_one_world_107():
    """The shape of world 107: a sync the platform policy does not pre-authorise, asked for a
    later cycle, and the model it feeds, whose own cycle the connector's last sync already serves:
    the model starts now, the sync waits for the person."""
    graph = AssetGraph([AssetNode("src0/t0", CONNECTOR_TABLE, kinds=frozenset({"airbyte"}), connector="airbyte:src0"),
                        AssetNode("l0/m3", DBT_MODEL, upstream=("src0/t0",)),
                        AssetNode("l1/m4", DBT_MODEL, upstream=("l0/m3",))])
    keys = ["src0/t0", "l0/m3", "l1/m4"]
    preauthorised = {"src0/t0": False, "l0/m3": True, "l1/m4": True}
    free, waiting = _split(graph, keys, preauthorised, {("src0/t0", "l0/m3")})
    assert free == {"l0/m3", "l1/m4"} and waiting == {"src0/t0"}
    # its data older than the model's cycle: the model waits with the sync (it would read old data)
    free, waiting = _split(graph, keys, preauthorised, set())
    assert free == set(keys) and not waiting  # nothing can start now: the run is not split


def test_world_107_meets_both_first_cycles(tmp_path):
    """The world that showed it: sla 8/10 (cron-tuned 10/10); it now serves dash-0 from the
    connector's own sync, and dash-1 once the standing approval came."""
    from orchestrator.simulator import load_scenario
    from orchestrator.simulator.bench import run_benchmark
    from orchestrator.simulator.worlds import generate_world

    r = run_benchmark(load_scenario(generate_world(107, tmp_path)), "sla", 107)
    assert r.unsafe_actions == 0
    assert r.met == r.deadlines == 10, (r.met, r.deadlines, r.note)
