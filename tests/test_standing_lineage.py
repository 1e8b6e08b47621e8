"""A standing-approval request covers the policy's lineage (its assets and everything upstream):
the same set as walking the graph by hand, for any graph; kept between planning cycles for the
same resolution and graph, and walked again when either changes."""

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core import standing
from orchestrator.core.graph import AssetGraph, AssetNode


class _Resolution:
    def __init__(self, members):
        self.members = members

    def governed_by(self, name):
        return self.members.get(name, frozenset())


@st.composite
def dags(draw):
    n = draw(st.integers(1, 40))
    nodes = [AssetNode(f"a{i}", upstream=tuple(sorted({f"a{j}" for j in draw(
        st.lists(st.integers(0, i - 1), max_size=3))})) if i > 0 else ()) for i in range(n)]
    governed = draw(st.lists(st.integers(0, n + 3), max_size=6))  # a few not in the graph
    return AssetGraph(nodes), frozenset(f"a{i}" for i in governed)


def _by_hand(graph, governed):
    seen, stack = set(), [k for k in governed if k in graph]
    while stack:
        k = stack.pop()
        if k not in seen:
            seen.add(k)
            stack.extend(graph.node(k).upstream)
    return seen


@settings(max_examples=80, deadline=None)
@given(dags())
def test_lineage_is_the_upstream_walk_and_is_kept(case):
    graph, governed = case
    res = _Resolution({"p": governed})
    first = standing.lineage(res, graph, "p")
    assert set(first) == _by_hand(graph, governed)
    assert standing.lineage(res, graph, "p") is first  # next cycle: no walk
    other = AssetGraph(list(graph))  # a reloaded graph: walked again, same answer
    again = standing.lineage(res, other, "p")
    assert again == first and again is not first
    res.members = {"p": frozenset(list(governed)[:1])}  # policies re-resolved
    assert set(standing.lineage(res, other, "p")) == _by_hand(other, res.members["p"])


def test_request_lists_the_lineage_in_order():
    class Policy:
        name, rollout, auto_approve, owners = "exec", "recommend", (), ()

        def model_dump(self, mode):
            return {"name": self.name}

    graph = AssetGraph([AssetNode("c"), AssetNode("b", upstream=("c",)), AssetNode("a", upstream=("b",)),
                        AssetNode("z")])
    res = _Resolution({"exec": frozenset({"a"})})
    res.ok = True
    res.policy_set = type("PS", (), {"policies": [Policy()]})()
    book = standing.StandingBook([])
    asks = standing.requests(res, graph, book, datetime(2026, 1, 5, 6, tzinfo=UTC))
    assert [a.asset_keys for a in asks] == [("a", "b", "c")]
    assert standing.requests(res, graph, book, datetime(2026, 1, 5, 6, tzinfo=UTC))[0].asset_keys == ("a", "b", "c")
