"""The asset graph as plain data: what the decision core reasons over.

Keys are Dagster's user strings ("salesforce/account"), so a key printed by the CLI can be
pasted into the Dagster UI and back. Nothing here imports Dagster; the Dagster shell builds an
``AssetGraph`` from its repository, tests and the simulator build one from a dbt manifest.
"""

from __future__ import annotations

import gzip
import json
import threading
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_SHARED_INTS: list[int] = []
_SHARED_INTS_LOCK = threading.Lock()


def shared_ints(n: int) -> list[int]:
    """The int objects 0..n-1 (at least), one per value for the whole process: the maps of a key
    to its position or slot (the graph's index, the event log cache's slots) hold these instead
    of 100,000 ints each (~2.7 MiB a map at 100,000 assets). The list only grows; never change it."""
    if len(_SHARED_INTS) < n:
        with _SHARED_INTS_LOCK:
            if len(_SHARED_INTS) < n:
                _SHARED_INTS.extend(range(len(_SHARED_INTS), n))
    return _SHARED_INTS


# What an asset is, as far as the decision core cares.
CONNECTOR_TABLE = "connector_table"
DBT_MODEL = "dbt_model"
DBT_SOURCE = "dbt_source"
DASHBOARD = "dashboard"
OTHER = "other"


class _NoTags(dict):
    """The one empty, read-only tags mapping shared by every node without tags (a ``dict``, so it
    compares, serializes and copies like ``{}``; 64 bytes per node at 100,000 nodes otherwise)."""

    __slots__ = ()

    def _readonly(self, *_a, **_k):
        raise TypeError("AssetNode.tags is read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _readonly  # type: ignore[assignment]

    def __reduce__(self):
        return (_no_tags, ())

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


NO_TAGS: Mapping[str, str] = _NoTags()


def _no_tags() -> Mapping[str, str]:
    return NO_TAGS


@dataclass(frozen=True, slots=True)
class AssetNode:
    key: str
    role: str = OTHER
    upstream: tuple[str, ...] = ()
    kinds: frozenset[str] = frozenset()
    group: str | None = None
    owners: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=_no_tags)
    # "daily" for daily-partitioned assets, None otherwise.
    partitioning: str | None = None
    # Which connector syncs this table ("fivetran:<connector_id>" / "airbyte:<connection_id>").
    connector: str | None = None
    # dbt exposure name for dashboards, dbt unique_id for models.
    dbt_name: str | None = None
    description: str | None = None


_set = object.__setattr__  # a frozen node's field swapped in place for an equal, shared value


def _compact(node: AssetNode, shared: dict) -> AssetNode:
    """``node`` with its repeated values (group, connector, role, kinds, owners, empty tags) as the
    objects ``shared`` holds for them, swapped in place: each is equal to the value it replaces,
    so the node compares, hashes and reads as before, and no second node object is made (a copy
    per node left ~11 MiB of freed nodes scattered through the heap at 100,000 assets)."""
    for name in ("role", "group", "connector", "kinds", "owners", "partitioning"):
        value = getattr(node, name)
        if value is None or value == ():
            continue
        kept = shared.setdefault((name, value), value)
        if kept is not value:
            _set(node, name, kept)
    if not node.tags and node.tags is not NO_TAGS:
        _set(node, "tags", NO_TAGS)
    return node


class UnknownAssetError(KeyError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"unknown asset key {self.key!r}"


class _Parents(Mapping):
    """key -> its parents, read from the nodes (``AssetGraph.upstream_map``): no dict per graph."""

    __slots__ = ("_nodes",)

    def __init__(self, nodes: dict[str, AssetNode]):
        self._nodes = nodes

    def __getitem__(self, key: str) -> tuple[str, ...]:
        return self._nodes[key].upstream

    def __contains__(self, key: object) -> bool:
        return key in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)


class _ParentsWithOther(_Parents):
    """``_Parents`` with the parents of the nodes whose tuple is not the graph's (a parent outside
    the graph, one given twice) kept apart."""

    __slots__ = ("_other",)

    def __init__(self, nodes: dict[str, AssetNode], other: dict[str, tuple[str, ...]]):
        super().__init__(nodes)
        self._other = other

    def __getitem__(self, key: str) -> tuple[str, ...]:
        ups = self._other.get(key)
        return ups if ups is not None else self._nodes[key].upstream


BETWEEN_KEPT = 65_536  # (source, target) pairs AssetGraph.between keeps (a few assets each)


class AssetGraph:
    """An immutable DAG of ``AssetNode`` with cached downstream edges.

    Upstream keys that are not nodes of the graph are dropped, so a partial graph (a selection,
    a manifest with disabled sources) is still a consistent DAG.
    """

    def __init__(self, nodes: Iterable[AssetNode]):
        self._nodes: dict[str, AssetNode] = {}
        # one object per distinct value (group, connector, role, kinds, owners): a graph of
        # 100,000 nodes read from a manifest or specs has a string per node for each otherwise
        shared: dict = {}
        for node in nodes:
            self._nodes[node.key] = _compact(node, shared)
        # Parents as the graph's own key objects (one string per asset across the graph, the
        # snapshot's rows and the resolution): the node's tuple itself, swapped in place for the
        # canonical one when equal; a node whose parents differ (some outside the graph, repeated)
        # keeps its tuple and its parents are kept apart (``_other_parents``). No per-key dict of
        # parents or children: one index (key -> position, topological when the graph is a DAG,
        # the topological index itself) and the children as positions in int arrays.
        nodes_ = self._nodes
        other: dict[str, tuple[str, ...]] = {}
        for key, node in nodes_.items():
            ups = node.upstream
            canon = tuple(nodes_[u].key for u in dict.fromkeys(ups) if u in nodes_ and u != key)
            if canon == ups:
                if any(a is not b for a, b in zip(canon, ups)):
                    _set(node, "upstream", canon)
            else:
                other[key] = canon
        self._other_parents = other
        self._parents_view: Mapping[str, tuple[str, ...]] = (
            _ParentsWithOther(nodes_, other) if other else _Parents(nodes_))
        parents_of = self._parents_view.__getitem__
        # children in graph order (per parent: its children in the order the nodes were given)
        children: dict[str, list[str]] = {}
        for key in nodes_:
            for up in parents_of(key):
                lst = children.get(up)
                if lst is None:
                    children[up] = [key]
                else:
                    lst.append(key)
        # Kahn's algorithm once, here: the positions are the topological order's
        indegree = {k: len(parents_of(k)) for k in nodes_}
        ready = deque(k for k, d in indegree.items() if d == 0)
        order: list[str] = []
        while ready:
            key = ready.popleft()
            order.append(key)
            for child in children.get(key, ()):
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        self._cycle: str | None = None
        if len(order) != len(nodes_):  # raised by topological_order(), as before
            self._cycle = next(k for k, d in indegree.items() if d > 0)
            order = list(nodes_)
        del indegree, ready
        self._order: tuple[str, ...] = tuple(order)
        self._index: dict[str, int] = dict(zip(order, shared_ints(len(order))))
        index = self._index
        ptr = array("l", [0])
        down = array("l")
        for key in order:
            lst = children.get(key)
            if lst:
                down.extend(index[c] for c in lst)
            ptr.append(len(down))
        self._down_ptr, self._down = ptr, down
        del children
        # connector -> the tables it syncs (graph order), role -> nodes, group -> keys: built
        # once, so "which tables does this connector land" is a lookup, not a scan of the graph
        by_connector: dict[str, list[str]] = {}
        by_role: dict[str, list[AssetNode]] = {}
        by_group: dict[str, list[str]] = {}
        for key, node in self._nodes.items():
            if node.connector:
                by_connector.setdefault(node.connector, []).append(key)
            by_role.setdefault(node.role, []).append(node)
            if node.group is not None:
                by_group.setdefault(node.group, []).append(key)
        self._by_connector = {c: tuple(v) for c, v in by_connector.items()}
        self._by_role = {r: tuple(v) for r, v in by_role.items()}
        self._by_group = {g: tuple(v) for g, v in by_group.items()}
        self._between: dict[tuple[str, str], frozenset[str]] = {}  # (source, target) -> between()

    # -- lookup ---------------------------------------------------------------------------------
    def __contains__(self, key: object) -> bool:
        return key in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[AssetNode]:
        return iter(self._nodes.values())

    @property
    def keys(self) -> list[str]:
        return list(self._nodes)

    def node(self, key: str) -> AssetNode:
        try:
            return self._nodes[key]
        except KeyError:
            raise UnknownAssetError(key) from None

    def get(self, key: str) -> AssetNode | None:
        return self._nodes.get(key)

    def parents(self, key: str) -> tuple[str, ...]:
        # one lookup (the planner asks this ~10 times per asset a cycle plans for)
        node = self._nodes.get(key)
        if node is None:
            raise UnknownAssetError(key)
        if self._other_parents:
            ups = self._other_parents.get(key)
            if ups is not None:
                return ups
        return node.upstream

    def upstream_map(self) -> Mapping[str, tuple[str, ...]]:
        """key -> its parents (``parents(key)`` for every key) without a lookup check per call,
        for per-tick passes over the whole graph (a read-only view on the nodes, not a dict)."""
        return self._parents_view

    def children(self, key: str) -> tuple[str, ...]:
        i = self._index.get(key)
        if i is None:
            raise UnknownAssetError(key)
        ptr = self._down_ptr
        a, b = ptr[i], ptr[i + 1]
        if a == b:
            return ()
        order = self._order
        return tuple([order[j] for j in self._down[a:b]])

    def roots(self) -> list[str]:
        parents = self._parents_view
        return [k for k in self._nodes if not parents[k]]

    def leaves(self) -> list[str]:
        ptr, index = self._down_ptr, self._index
        return [k for k in self._nodes if ptr[index[k]] == ptr[index[k] + 1]]

    def by_role(self, role: str) -> list[AssetNode]:
        return list(self._by_role.get(role, ()))

    def connector_tables(self, connector: str | None) -> tuple[str, ...]:
        """The keys of the tables ``connector`` syncs, in graph order (index lookup)."""
        return self._by_connector.get(connector, ()) if connector else ()

    @property
    def connectors(self) -> dict[str, tuple[str, ...]]:
        """connector -> the keys of the tables it syncs (a copy of the index)."""
        return dict(self._by_connector)

    def group_keys(self, group: str) -> tuple[str, ...]:
        """The keys of the assets in ``group``, in graph order."""
        return self._by_group.get(group, ())

    # -- traversal ------------------------------------------------------------------------------
    def _closure(self, starts: Iterable[str], edges) -> set[str]:
        """``edges(key)``: the keys next to ``key``."""
        seen: set[str] = set()
        queue = deque()
        for start in starts:
            self.node(start)
            queue.append(start)
        while queue:
            key = queue.popleft()
            for nxt in edges(key):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen

    def upstream_closure(self, *keys: str, include_self: bool = False) -> set[str]:
        found = self._closure(keys, self._parents_view.__getitem__)
        return found | set(keys) if include_self else found - set(keys)

    def downstream_closure(self, *keys: str, include_self: bool = False) -> set[str]:
        found = self._closure(keys, self.children)
        return found | set(keys) if include_self else found - set(keys)

    def topological_order(self) -> tuple[str, ...]:
        """Kahn's algorithm (run once, when the graph is built); raises ValueError naming a node
        on a cycle."""
        if self._cycle is not None:
            raise ValueError(f"asset graph has a cycle through {self._cycle!r}")
        return self._order

    def topological_index(self) -> dict[str, int]:
        """key -> its position in ``topological_order()`` (the graph's own index; the planner
        sorts by it every cycle). Shared: read it, do not change it."""
        self.topological_order()
        return self._index

    def between(self, source: str, target: str) -> set[str]:
        """The assets strictly between ``source`` and ``target``: downstream of ``source`` and
        upstream of ``target`` (``downstream_closure(source) & upstream_closure(target)``),
        walking down from ``source`` only through ancestors of ``target``, so the cost is the size
        of the target's lineage, not of everything below the source. Kept per pair (the graph
        does not change; at most :data:`BETWEEN_KEPT` pairs): the planner asks it for each
        at-risk target every cycle, mostly the same pairs, and a lineage walked in a graph of
        100,000 assets cost 3x what it cost at 10,000 (its nodes far apart in memory)."""
        hit = self._between.get((source, target))
        if hit is not None:
            return set(hit)
        out = self._between_walk(source, target)
        if len(self._between) >= BETWEEN_KEPT:
            self._between.clear()
        self._between[(source, target)] = frozenset(out)
        return out

    def _between_walk(self, source: str, target: str) -> set[str]:
        ancestors = self.upstream_closure(target)
        self.node(source)
        seen: set[str] = set()
        queue = deque([source])
        children = self.children
        while queue:
            for nxt in children(queue.popleft()):
                if nxt in ancestors and nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        seen.discard(source)
        return seen

    def subgraph(self, keys: Iterable[str]) -> AssetGraph:
        wanted = set(keys)
        return AssetGraph(n for k, n in self._nodes.items() if k in wanted)

    # -- construction from a dbt manifest -------------------------------------------------------
    @classmethod
    def from_dbt_manifest(cls, manifest: Mapping | str | Path) -> AssetGraph:
        """Sources, models, snapshots, seeds and exposures of a manifest (v10+) as a graph.

        Keys follow dagster-dbt's defaults: ``meta.dagster.asset_key`` where set, else
        ``<source_name>/<table>`` for sources, the model name for models and
        ``dashboard/<exposure>`` for exposures.
        """
        if not isinstance(manifest, Mapping):
            path = Path(manifest)
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as fh:
                manifest = json.load(fh)

        key_of: dict[str, str] = {}
        raw: list[tuple[str, dict, str]] = []

        def explicit_key(entry: Mapping) -> str | None:
            meta = (entry.get("config") or {}).get("meta") or entry.get("meta") or {}
            key = (meta.get("dagster") or {}).get("asset_key")
            return "/".join(key) if key else None

        for uid, src in manifest.get("sources", {}).items():
            key_of[uid] = explicit_key(src) or f"{src['source_name']}/{src['name']}"
            raw.append((uid, src, DBT_SOURCE))
        for uid, node in manifest.get("nodes", {}).items():
            if node.get("resource_type") not in ("model", "snapshot", "seed"):
                continue
            key_of[uid] = explicit_key(node) or node["name"]
            raw.append((uid, node, DBT_MODEL))
        for uid, exp in manifest.get("exposures", {}).items():
            key_of[uid] = f"dashboard/{exp['name']}"
            raw.append((uid, exp, DASHBOARD))

        nodes = []
        for uid, entry, role in raw:
            config = entry.get("config") or {}
            upstream = tuple(
                key_of[d] for d in (entry.get("depends_on") or {}).get("nodes", []) if d in key_of
            )
            owners: tuple[str, ...] = ()
            if role == DASHBOARD:
                owner = entry.get("owner") or {}
                owners = tuple(o for o in (owner.get("email"), owner.get("name")) if o)[:1]
            meta = config.get("meta") or entry.get("meta") or {}
            dagster_meta = meta.get("dagster") or {}
            group = dagster_meta.get("group") or config.get("group") or entry.get("group")
            if not group and entry.get("fqn") and len(entry["fqn"]) > 2:
                group = entry["fqn"][1]
            tags = {t: "" for t in (config.get("tags") or entry.get("tags") or [])}
            incremental = config.get("materialized") == "incremental"
            nodes.append(
                AssetNode(
                    key=key_of[uid],
                    role=role,
                    upstream=upstream,
                    kinds=frozenset({"dbt"} if role != DASHBOARD else {"dashboard"}),
                    group=group,
                    owners=owners or tuple(dagster_meta.get("owners") or ()),
                    tags=tags,
                    partitioning="daily" if incremental and config.get("event_time") else None,
                    dbt_name=entry.get("name") if role == DASHBOARD else uid,
                )
            )
        return cls(nodes)
