"""Selector matching and validation against an ``AssetGraph`` (with nearest-name suggestions)."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterable

from orchestrator.core.graph import DASHBOARD, AssetGraph
from orchestrator.policies.model import Policy, Selector

# Specificity of a selector term (higher = more specific); used for precedence.
SPECIFICITY = {
    "key": 50,
    "exposure": 50,
    "key_glob": 40,
    "tag": 30,
    "owner": 30,
    "kind": 20,
    "group": 20,
    "role": 15,
    "upstream_of": 10,
}

_GLOB_CHARS = re.compile(r"[*?\[]")


def is_glob(text: str) -> bool:
    return bool(_GLOB_CHARS.search(text))


def suggest(name: str, candidates: Iterable[str], cutoff: float = 0.55) -> str | None:
    cands = list(candidates)
    if not cands:
        return None
    hit = difflib.get_close_matches(name, cands, n=1, cutoff=cutoff)
    if hit:
        return hit[0]
    # keys like "salesforce/acount": compare the last path segment too
    tail = name.rsplit("/", 1)[-1]
    by_tail: dict[str, str] = {}
    for c in cands:
        by_tail.setdefault(c.rsplit("/", 1)[-1], c)
    hit = difflib.get_close_matches(tail, list(by_tail), n=1, cutoff=cutoff)
    return by_tail[hit[0]] if hit else None


class GraphIndex:
    """Lookup tables over a graph, built once per resolution."""

    def __init__(self, graph: AssetGraph):
        self.graph = graph
        self.keys: list[str] = graph.keys
        self.key_set = set(self.keys)
        self.groups: dict[str, set[str]] = defaultdict(set)
        self.kinds: dict[str, set[str]] = defaultdict(set)
        self.owners: dict[str, set[str]] = defaultdict(set)
        self.roles: dict[str, set[str]] = defaultdict(set)
        self.tags: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.exposures: dict[str, str] = {}
        for node in graph:
            if node.group:
                self.groups[node.group].add(node.key)
            for kind in node.kinds:
                self.kinds[kind].add(node.key)
            for owner in node.owners:
                self.owners[owner].add(node.key)
            self.roles[node.role].add(node.key)
            for tk, tv in (node.tags or {}).items():
                self.tags[tk][str(tv)].add(node.key)
            if node.role == DASHBOARD:
                name = node.dbt_name or node.key.split("/", 1)[-1]
                self.exposures[name] = node.key
        self._glob_cache: dict[str, set[str]] = {}

    def glob(self, pattern: str) -> set[str]:
        hit = self._glob_cache.get(pattern)
        if hit is None:
            rx = re.compile(fnmatch.translate(pattern))
            hit = {k for k in self.keys if rx.match(k)}
            self._glob_cache[pattern] = hit
        return hit


def _lookup(table, value: str) -> set[str]:
    """Exact lookup, or the union over every name matching a glob (``fivetran_*``)."""
    if is_glob(value):
        out: set[str] = set()
        for name in fnmatch.filter(table, value):
            out |= table[name]
        return out
    return set(table.get(value, ()))


def _known(table, value: str) -> bool:
    return bool(fnmatch.filter(table, value)) if is_glob(value) else value in table


def _tag_match(index: GraphIndex, name: str, value: str | None) -> set[str]:
    values = index.tags.get(name)
    if not values:
        return set()
    if value is None:
        out: set[str] = set()
        for keys in values.values():
            out |= keys
        return out
    return set(values.get(value, ()))


def match(selector: Selector, index: GraphIndex) -> set[str]:
    """Assets matched by one selector (its terms ANDed)."""
    result: set[str] | None = None

    def narrow(found: set[str]) -> None:
        nonlocal result
        result = set(found) if result is None else result & found

    if selector.key is not None:
        narrow(index.glob(selector.key) if is_glob(selector.key) else
               ({selector.key} if selector.key in index.key_set else set()))
    if selector.exposure is not None:
        if is_glob(selector.exposure):
            names = fnmatch.filter(index.exposures, selector.exposure)
            narrow({index.exposures[n] for n in names})
        else:
            key = index.exposures.get(selector.exposure)
            narrow({key} if key else set())
    if selector.group is not None:
        narrow(_lookup(index.groups, selector.group))
    if selector.kind is not None:
        narrow(_lookup(index.kinds, selector.kind))
    if selector.role is not None:
        narrow(index.roles.get(selector.role, set()))
    if selector.owner is not None:
        narrow(_lookup(index.owners, selector.owner))
    for name, value in selector.tag_items():
        narrow(_tag_match(index, name, value))
    if selector.upstream_of is not None:
        inner = selector.upstream_of
        if isinstance(inner, str):
            starts = index.glob(inner) if is_glob(inner) else ({inner} & index.key_set)
        else:
            starts = match(inner, index)
        found = index.graph.upstream_closure(*starts) if starts else set()
        if selector.include_self:
            found |= starts
        narrow(found)
    return result or set()


def specificity(selector: Selector) -> int:
    best = 0
    terms = 0
    for name in ("exposure", "tag", "owner", "kind", "group", "role", "upstream_of"):
        value = getattr(selector, name)
        if value is not None:
            terms += 1
            best = max(best, SPECIFICITY[name])
    if selector.key is not None:
        terms += 1
        best = max(best, SPECIFICITY["key_glob" if is_glob(selector.key) else "key"])
    return best + max(terms - 1, 0)


def validate(selector: Selector, index: GraphIndex) -> list[tuple[tuple, str]]:
    """Problems with one selector as (field path inside the selector, message)."""
    problems: list[tuple[tuple, str]] = []

    def unknown(field: tuple, what: str, name: str, candidates: Iterable[str]) -> None:
        hint = suggest(name, candidates)
        problems.append(
            (field, f"unknown {what} {name!r}" + (f"; did you mean {hint!r}?" if hint else ""))
        )

    def check_key(field: tuple, key: str) -> None:
        if is_glob(key):
            if not index.glob(key):
                prefix = re.split(r"[*?\[]", key, maxsplit=1)[0]
                hint = suggest(prefix.rstrip("/"), index.keys) if prefix else None
                problems.append(
                    (field, f"glob {key!r} matches no asset"
                     + (f"; nearest key is {hint!r}" if hint else ""))
                )
        elif key not in index.key_set:
            unknown(field, "asset key", key, index.keys)

    if selector.key is not None:
        check_key(("key",), selector.key)
    if selector.exposure is not None:
        if is_glob(selector.exposure):
            if not fnmatch.filter(index.exposures, selector.exposure):
                problems.append((("exposure",), f"glob {selector.exposure!r} matches no exposure"))
        elif selector.exposure not in index.exposures:
            unknown(("exposure",), "exposure", selector.exposure, index.exposures)
    if selector.group is not None and not _known(index.groups, selector.group):
        unknown(("group",), "group", selector.group, index.groups)
    if selector.kind is not None and not _known(index.kinds, selector.kind):
        unknown(("kind",), "kind", selector.kind, index.kinds)
    if selector.owner is not None and not _known(index.owners, selector.owner):
        unknown(("owner",), "owner", selector.owner, index.owners)
    for name, value in selector.tag_items():
        if name not in index.tags:
            unknown(("tag",), "tag", name, index.tags)
        elif value is not None and value not in index.tags[name]:
            unknown(("tag",), f"value of tag {name!r}:", value, index.tags[name])
    if selector.upstream_of is not None:
        inner = selector.upstream_of
        if isinstance(inner, str):
            check_key(("upstream_of",), inner)
        else:
            problems.extend((("upstream_of",) + f, m) for f, m in validate(inner, index))
    if not problems and not match(selector, index):
        problems.append(((), "selector matches no asset (its terms are ANDed)"))
    return problems


def policy_members(policy: Policy, index: GraphIndex) -> dict[str, int]:
    """asset key -> specificity of the most specific selector of ``policy`` that matched it."""
    out: dict[str, int] = {}
    for sel in policy.select:
        spec = specificity(sel)
        for key in match(sel, index):
            if out.get(key, -1) < spec:
                out[key] = spec
    if policy.exclude:
        for sel in policy.exclude:
            for key in match(sel, index):
                out.pop(key, None)
    return out
