"""The compact representations kept for memory at 100,000 assets answer what the plain ones did.

* ``AssetGraph`` shares repeated node values (group, connector, role, kinds, owners) and uses its
  own key objects for parents: the nodes compare equal to the ones given, the parents are the
  same, and one object per distinct value is held;
* the resolution's critical-path leads are packed per asset (``AssetLeads``): compared with the
  plain algorithm (a dict of (lead, via, target) per asset, kept here as the oracle) on random
  graphs and policies, and the chains and SLAs they give;
* resolve() keeps only the frontier of its reverse pass (each asset's SLA made as its leads
  come, the leads rebuilt on first use by chain/explain): the SLAs, members and infeasible paths
  equal what the plain pass's leads give, with deadlines sharing one lead/instant per value;
* ``DurationModel`` keeps ``array('d')`` samples as arrays: the same estimates as lists, and one
  shared ``Estimate`` per prior for the assets without samples.
"""

from __future__ import annotations

import copy
import json
import pickle
from array import array
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.graph import NO_TAGS, AssetGraph, AssetNode
from orchestrator.policies.durations import DurationModel
from orchestrator.policies.model import load_policies_from_text
from orchestrator.policies.resolve import AssetLeads, resolve

NOW = datetime(2025, 6, 2, 13, 0, tzinfo=UTC)


@st.composite
def graphs(draw, max_nodes: int = 24):
    n = draw(st.integers(2, max_nodes))
    nodes = []
    for i in range(n):
        ups = draw(st.lists(st.integers(0, max(0, i - 1)), max_size=3)) if i else []
        up_keys = tuple("".join(["k", str(u)]) for u in ups)  # equal strings, other objects
        if ups and draw(st.booleans()):
            up_keys += ("not-in-graph",)
        nodes.append(AssetNode(
            f"k{i}", role=draw(st.sampled_from(["connector_table", "dbt_model", "dashboard"])),
            upstream=up_keys, group="".join(["g", str(i % 3)]),
            connector="".join(["fivetran:c", str(i % 2)]) if i % 4 == 0 else None,
            kinds=frozenset({"fivetran"}) if i % 4 == 0 else frozenset(),
            owners=("".join(["a@x.io"]),) if i % 5 == 0 else (),
            tags={"pii": ""} if i % 7 == 0 else {},
        ))
    return nodes


@settings(max_examples=60, deadline=None)
@given(graphs())
def test_graph_shares_values_and_answers_as_given(nodes):
    # the graph swaps equal shared values into the nodes it is given (in place, no copy per
    # node): compare with copies taken before, which it does not touch
    before = [AssetNode(**{f: getattr(n, f) for f in AssetNode.__dataclass_fields__}) for n in nodes]
    g = AssetGraph(nodes)
    for given_node in before:
        kept = g.node(given_node.key)
        assert kept == given_node  # equal in every field (empty tags compare equal to {})
        assert kept is next(n for n in nodes if n.key == given_node.key)  # no copy made
        want = tuple(dict.fromkeys(u for u in given_node.upstream if u in g and u != given_node.key))
        assert g.parents(given_node.key) == want
        # parents are the graph's own key objects: one string per asset
        assert all(p is g.node(p).key for p in g.parents(given_node.key))
    for field in ("group", "connector", "kinds", "owners"):
        values = [getattr(n, field) for n in g if getattr(n, field)]
        assert len({id(v) for v in values}) == len(set(values)), field
    assert all(n.tags is NO_TAGS for n in g if not n.tags)
    # a graph of the graph's own nodes is the same graph
    again = AssetGraph(list(g))
    assert [n for n in again] == [n for n in g]
    assert all(again.parents(k) == g.parents(k) for k in g.keys)


def test_shared_empty_tags_are_read_only_and_behave_as_an_empty_dict():
    node = AssetNode("a")
    assert node.tags is NO_TAGS and node.tags == {} and dict(node.tags) == {}
    with pytest.raises(TypeError, match="read-only"):
        node.tags["x"] = "1"  # type: ignore[index]
    with pytest.raises(TypeError):
        node.tags.update(x="1")  # type: ignore[attr-defined]
    assert NO_TAGS == {}
    assert pickle.loads(pickle.dumps(node)) == node and pickle.loads(pickle.dumps(node)).tags is NO_TAGS
    assert copy.deepcopy(node).tags is NO_TAGS
    assert json.dumps(node.tags) == "{}"
    assert AssetNode("b", tags={"t": "v"}).tags == {"t": "v"}


def _plain_leads(graph: AssetGraph, res) -> dict[str, dict[str, tuple[float, str | None, str]]]:
    """The pass resolve() made before the leads were packed: a dict of tuples per asset."""
    durations = res.durations
    targets = res._targets
    policies = res.policy_set.policies
    # the same set expression as resolve(): the same iteration order in this process
    sources = {p.name for p in policies if p.name in targets or p.max_lag is not None}
    leads: dict[str, dict] = {}
    for key in reversed(graph.topological_order()):
        mine = None
        sla = res.sla(key)
        own = [name for name in sources if sla is not None and name in sla.policies]
        if own:
            mine = {name: (0.0, None, key) for name in own}
        for child in graph.children(key):
            theirs = leads.get(child)
            if not theirs:
                continue
            dc = durations.seconds(graph.node(child))
            if mine is None:
                mine = {}
            for name, (lead, _, target) in theirs.items():
                cand = lead + dc
                cur = mine.get(name)
                if cur is None or cand > cur[0] or (cand == cur[0] and (target, child) < (cur[2], cur[1])):
                    mine[name] = (cand, child, target)
        if mine:
            leads[key] = mine
    return leads


POLICY_TEXT = """
policies:
  - name: p0
    select: [{{key: "{a}"}}]
    deadline: {{cron: "0 6 * * *", timezone: America/New_York}}
  - name: p1
    select: [{{key: "{b}"}}]
    deadline: {{cron: "30 7 * * *", timezone: UTC, window: 12h}}
    tier: critical
  - name: p2
    select: [{{key: "{c}"}}]
    max_lag: 3h
"""


@settings(max_examples=60, deadline=None)
@given(graphs(), st.data())
def test_packed_leads_equal_the_plain_pass(nodes, data):
    g = AssetGraph(nodes)
    keys = g.keys
    picks = {name: data.draw(st.sampled_from(keys)) for name in "abc"}
    history = {k: data.draw(st.lists(st.sampled_from([60.0, 300.0, 900.0]), max_size=3)) for k in keys}
    res = resolve(load_policies_from_text(POLICY_TEXT.format(**picks)), g, DurationModel(history), NOW)
    assert res.ok, res.errors
    plain = _plain_leads(g, res)
    assert set(res._leads) == set(plain)
    for key, mine in res._leads.items():
        assert isinstance(mine, AssetLeads)
        assert dict(mine.items()) == plain[key]
        assert list(mine) == list(plain[key])  # same order: ties in max_lag/infeasible keep theirs
        for name in mine:
            assert mine[name] == plain[key][name] and name in mine
        assert "no-such-policy" not in mine
        with pytest.raises(KeyError):
            mine["no-such-policy"]
    # the chains follow the packed vias to the target
    for key, sla in res.slas.items():
        if sla.deadline is not None:
            chain = res.chain(key, sla.deadline.policy)
            assert chain[0].key == key and chain[-1].key == sla.deadline.target
            assert [link.lead.total_seconds() for link in chain] == sorted(
                (link.lead.total_seconds() for link in chain), reverse=True)
            assert res.explain(key)


TIGHT_POLICY_TEXT = """
policies:
  - name: p0
    select: [{{key: "{a}"}}]
    deadline: {{cron: "0 6 * * *", timezone: America/New_York, window: 20m}}
  - name: p1
    select: [{{key: "{b}"}}, {{key: "{a}"}}]
    deadline: {{cron: "30 7 * * *", timezone: UTC, window: 30m}}
    tier: critical
  - name: p2
    select: [{{key: "{c}"}}]
    max_lag: 25m
  - name: p3
    select: [{{key: "{b}"}}]
    tier: high
"""


@settings(max_examples=60, deadline=None)
@given(graphs(), st.data())
def test_streamed_resolution_equals_the_plain_leads(nodes, data):
    """Tight windows, so policies are infeasible: every SLA's deadline, propagation, members and
    infeasible paths are what the plain pass's leads (all held at once) give."""
    g = AssetGraph(nodes)
    keys = g.keys
    picks = {name: data.draw(st.sampled_from(keys)) for name in "abc"}
    history = {k: data.draw(st.lists(st.sampled_from([60.0, 300.0, 900.0]), max_size=3)) for k in keys}
    res = resolve(load_policies_from_text(TIGHT_POLICY_TEXT.format(**picks)), g, DurationModel(history), NOW)
    assert res.ok, res.errors
    assert res._lead_memo is None  # not kept by resolve(): rebuilt on first use
    plain = _plain_leads(g, res)
    targets = res._targets
    for key in keys:
        sla, reach = res.sla(key), plain.get(key, {})
        if sla is None:
            assert not reach
            continue
        assert sla.propagated_from == tuple(sorted(n for n, (_, via, _) in reach.items() if via is not None))
        deadlines = [(targets[n] - _td(lead), n, lead, via, target) for n, (lead, via, target) in reach.items()
                     if n in targets]
        if sla.deadline is None:
            assert not deadlines
        else:
            dl = sla.deadline
            best = min(d[0] for d in deadlines)
            assert dl.at == best and dl.at == dl.target_deadline - dl.lead
            lead, via, target = reach[dl.policy]
            assert (dl.lead, dl.via, dl.target) == (_td(lead), via, target)
    for name, keys_of in res.members.items():
        want = {k for k, sla in res.slas.items() if name in sla.policies or name in plain.get(k, {})}
        assert keys_of == want and want == keys_of and len(keys_of) == len(want) and set(keys_of) == want
        assert all((k in keys_of) == (k in want) for k in [*keys, "not-a-key"])
        assert keys_of & set(keys) == want and isinstance(keys_of | set(), frozenset)
        assert res.governed_by(name) is keys_of and hash(keys_of) == hash(frozenset(want))
    # the infeasible paths follow the plain vias from their start to the target
    assert res.infeasible or not any(sla.infeasible for sla in res.slas.values())
    for inf in res.infeasible:
        path, cur = [inf.start], plain[inf.start][inf.policy][1]
        while cur is not None:
            path.append(cur)
            cur = plain[cur][inf.policy][1]
        assert inf.path == tuple(path) and inf.target == path[-1]
        assert inf.policy in res.sla(inf.start).infeasible
    assert {k: dict(v.items()) for k, v in res._leads.items()} == plain


def _td(seconds: float):
    from datetime import timedelta

    return timedelta(seconds=seconds)


def test_prior_estimates_are_shared_and_equal_the_plain_prior():
    model = DurationModel({"h": [100.0] * 6})
    nodes = [AssetNode(f"m{i}", role="dbt_model") for i in range(5)] + [
        AssetNode("t", role="connector_table", connector="fivetran:c", kinds=frozenset({"fivetran"})),
        AssetNode("u", role="connector_table", connector="airbyte:c", kinds=frozenset({"airbyte"})),
        AssetNode("o", role="other"), AssetNode("x", role="custom")]
    got = [model.estimate(n) for n in nodes]
    assert all(e is got[0] for e in got[:5]) and got[0].seconds == 180 and got[0].basis == "prior for dbt_model"
    assert [(e.seconds, e.basis) for e in got[5:]] == [model.prior(n) for n in nodes[5:]]
    assert got[5].basis == "prior for fivetran syncs" and got[6].basis == "prior for airbyte syncs"
    assert model.estimate(AssetNode("h", role="dbt_model")).basis == "p90 of 6 runs"
    assert not model._cache.keys() - {"h"}  # no entry per asset without samples


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from([f"a{i}" for i in range(6)]),
                       st.lists(st.floats(min_value=-5, max_value=5000) | st.just(float("nan")), max_size=120)))
def test_duration_model_arrays_estimate_as_lists(history):
    plain = DurationModel(history)
    packed = DurationModel({k: array("d", v) for k, v in history.items()})
    for k in [*history, "other"]:
        node = AssetNode(k, role="dbt_model")
        a, b = plain.estimate(node), packed.estimate(node)
        assert a == b
        assert list(plain.history.get(k, [])) == list(packed.history.get(k, []))
    # one basis text per distinct value
    bases = [plain.estimate(AssetNode(k, role="dbt_model")).basis for k in history]
    assert len({id(b) for b in bases}) == len(set(bases))


@settings(max_examples=60, deadline=None)
@given(graphs(), st.data(), st.sampled_from([POLICY_TEXT, TIGHT_POLICY_TEXT]))
def test_shared_sla_profiles_read_as_plain_slas(nodes, data, text):
    """Assets governed alike share one profile tuple (tier, policies, windows, ...): every SLA
    reads, compares, hashes, prints, pickles and copies as one built with its own values (no
    interning table), is immutable, and the table holds one profile per distinct combination."""
    from dataclasses import FrozenInstanceError

    from orchestrator.policies.resolve import _SLA_FIELDS, EffectiveSLA

    g = AssetGraph(nodes)
    keys = g.keys
    picks = {name: data.draw(st.sampled_from(keys)) for name in "abc"}
    history = {k: data.draw(st.lists(st.sampled_from([60.0, 300.0, 900.0]), max_size=3)) for k in keys}
    res = resolve(load_policies_from_text(text.format(**picks)), g, DurationModel(history), NOW)
    assert res.ok, res.errors
    profiles = {}
    for key, sla in res.slas.items():
        values = {name: getattr(sla, name) for name in _SLA_FIELDS}
        plain = EffectiveSLA(**values)
        assert plain == sla and hash(plain) == hash(sla) and repr(plain) == repr(sla)
        assert {name: getattr(plain, name) for name in _SLA_FIELDS} == values and sla.key == key
        assert sla.direct == bool(sla.policies)
        assert pickle.loads(pickle.dumps(sla)) == sla and copy.deepcopy(sla) == sla
        other = EffectiveSLA(**{**values, "predicted_duration_s": values["predicted_duration_s"] + 1})
        assert other != sla
        with pytest.raises(FrozenInstanceError):
            sla.tier = None
        profiles.setdefault(tuple(values[n] for n in _SLA_FIELDS if n not in
                                  ("key", "deadline", "max_lag", "predicted_duration_s")), set()).add(
            id(sla._profile))
    # equal profiles are one object (the parts resolve() hands out are shared), and stay shared
    # through a pickle of the resolution's SLAs
    assert all(len(ids) == 1 for ids in profiles.values())
    back = pickle.loads(pickle.dumps(res.slas))
    assert back == res.slas
    assert len({id(s._profile) for s in back.values()}) == len({id(s._profile) for s in res.slas.values()})
