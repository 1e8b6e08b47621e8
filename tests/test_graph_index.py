"""``AssetGraph``'s one index (key -> topological position, children as positions in int arrays,
parents read from the nodes) against the three per-key dicts it replaced, kept here as the
oracle: parents, children (same order), roots, leaves, closures, ``between``, the topological
order and index, the cycle error, on random graphs with repeated parents, parents outside the
graph, self-loops and cycles."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.graph import AssetGraph, AssetNode, UnknownAssetError


class PlainGraph:
    """The former representation: ``_upstream`` and ``_downstream`` dicts, Kahn on demand."""

    def __init__(self, nodes):
        self.nodes = {n.key: n for n in nodes}
        self.up = {k: tuple(u for u in dict.fromkeys(n.upstream) if u in self.nodes and u != k)
                   for k, n in self.nodes.items()}
        down = {k: [] for k in self.nodes}
        for k, ups in self.up.items():
            for u in ups:
                down[u].append(k)
        self.down = {k: tuple(v) for k, v in down.items()}

    def closure(self, starts, edges):
        seen, queue = set(), deque(starts)
        while queue:
            for nxt in edges[queue.popleft()]:
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen

    def topo(self):
        indegree = {k: len(u) for k, u in self.up.items()}
        ready = deque(k for k, d in indegree.items() if d == 0)
        order = []
        while ready:
            k = ready.popleft()
            order.append(k)
            for c in self.down[k]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    ready.append(c)
        if len(order) != len(self.nodes):
            stuck = next(k for k, d in indegree.items() if d > 0)
            raise ValueError(f"asset graph has a cycle through {stuck!r}")
        return tuple(order)


@st.composite
def graphs(draw):
    n = draw(st.integers(1, 16))
    cyclic = draw(st.integers(0, 4)) == 0
    names = [f"k{i}" for i in range(n)]
    order = draw(st.permutations(names))  # the nodes are not given in topological order
    nodes = []
    for i, key in enumerate(names):
        pool = names if cyclic else names[:i]
        ups = draw(st.lists(st.sampled_from(pool), max_size=4)) if pool else []
        if draw(st.integers(0, 5)) == 0:
            ups.append("outside")
        if ups and draw(st.booleans()):
            ups.append(ups[0])  # repeated
        nodes.append(AssetNode(key, upstream=tuple("".join(["", u]) for u in ups)))
    by_key = {nd.key: nd for nd in nodes}
    return [by_key[k] for k in order]


@settings(max_examples=40, deadline=None)
@given(graphs(), st.data())
def test_the_index_answers_what_the_dicts_answered(nodes, data):
    plain = PlainGraph(nodes)
    g = AssetGraph(nodes)
    keys = list(plain.nodes)
    assert g.keys == keys
    view = g.upstream_map()
    assert len(view) == len(keys) and list(view) == keys and dict(view) == plain.up
    for k in keys:
        assert g.parents(k) == plain.up[k] == view[k]
        assert g.children(k) == plain.down[k]  # same order: the order the nodes were given
        assert all(c is g.node(c).key for c in g.children(k))
        assert all(p is g.node(p).key for p in g.parents(k))
    assert g.roots() == [k for k, u in plain.up.items() if not u]
    assert g.leaves() == [k for k, d in plain.down.items() if not d]
    starts = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3))
    assert g.upstream_closure(*starts) == plain.closure(starts, plain.up) - set(starts)
    assert g.downstream_closure(*starts, include_self=True) == plain.closure(starts, plain.down) | set(starts)
    try:
        want = plain.topo()
    except ValueError as exc:
        with pytest.raises(ValueError, match="cycle") as got:
            g.topological_order()
        assert str(got.value) == str(exc)
        with pytest.raises(ValueError):
            g.topological_index()
    else:
        assert g.topological_order() == want
        assert g.topological_index() == {k: i for i, k in enumerate(want)}
        a, b = data.draw(st.sampled_from(keys)), data.draw(st.sampled_from(keys))
        assert g.between(a, b) == (plain.closure([a], plain.down) & plain.closure([b], plain.up)) - {a}
    for bad in ("outside", "nope"):
        for call in (g.children, g.parents, g.node):
            with pytest.raises(UnknownAssetError):
                call(bad)
        with pytest.raises(KeyError):
            view[bad]
        assert bad not in view
    sub = g.subgraph(keys[: len(keys) // 2])
    assert dict(sub.upstream_map()) == PlainGraph([plain.nodes[k] for k in keys[: len(keys) // 2]]).up
