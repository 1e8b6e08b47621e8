"""Asset selections for baseline jobs, in the syntax Dagster and dbt users write.

``[+]body[+]``: a leading ``+`` adds everything upstream (connector tables included, so the job
syncs their connectors first), a trailing ``+`` everything downstream. ``body`` is one of

* ``exposure:NAME``: the dashboard ``NAME`` (its key, or the last part of its key);
* ``tag:KEY`` / ``tag:KEY=VALUE``, ``group:NAME``, ``connector:ID`` (that connector's tables);
* ``key:GLOB`` or a bare ``GLOB`` over asset keys.

A bare glob without ``+`` keeps its original meaning: the dbt models it matches (what a
``dbt build --select`` of those names runs).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from orchestrator.core.graph import DASHBOARD, AssetGraph

_PREFIXES = ("exposure", "tag", "group", "connector", "key")
_SHAPE = re.compile(r"^(?P<up>\+?)(?P<body>[^+\s][^\s]*?)(?P<down>\+?)$")


@dataclass(frozen=True)
class Selector:
    upstream: bool
    downstream: bool
    kind: str  # exposure | tag | group | connector | key | glob
    value: str


def parse_selector(text: str) -> Selector:
    m = _SHAPE.match(text.strip())
    if not m:
        raise ValueError(f"invalid selection {text!r}: use [+]<glob | exposure:x | tag:k=v | group:g | "
                         "connector:id | key:glob>[+]")
    body = m.group("body")
    kind, value = "glob", body
    if ":" in body:
        head, rest = body.split(":", 1)
        if head in _PREFIXES:
            kind, value = head, rest
        elif head not in ("fivetran", "airbyte") and "/" not in head:
            raise ValueError(f"invalid selection {text!r}: unknown selector {head!r} (one of "
                             f"{', '.join(_PREFIXES)})")
    if not value:
        raise ValueError(f"invalid selection {text!r}: nothing after {kind!r}")
    return Selector(bool(m.group("up")), bool(m.group("down")), kind, value)


def select(graph: AssetGraph, text: str, models: set[str]) -> set[str]:
    """Asset keys one selection string picks from ``graph`` (``models``: the dbt models)."""
    sel = parse_selector(text)
    base: set[str] = set()
    for node in graph:
        k = node.key
        if sel.kind == "glob":
            hit = fnmatch.fnmatchcase(k, sel.value) and (k in models or sel.upstream or sel.downstream)
        elif sel.kind == "key":
            hit = fnmatch.fnmatchcase(k, sel.value)
        elif sel.kind == "exposure":
            hit = node.role == DASHBOARD and (k == sel.value or k.rsplit("/", 1)[-1] == sel.value)
        elif sel.kind == "group":
            hit = node.group == sel.value
        elif sel.kind == "connector":
            hit = node.connector == sel.value
        else:  # tag
            name, _, want = sel.value.partition("=")
            hit = name in node.tags and (not want or str(node.tags[name]) == want)
        if hit:
            base.add(k)
    out = set(base)
    if base and sel.upstream:
        out |= graph.upstream_closure(*base)
    if base and sel.downstream:
        out |= graph.downstream_closure(*base)
    return out


def select_all(graph: AssetGraph, selections: list[str], models: set[str]) -> set[str]:
    out: set[str] = set()
    for text in selections:
        out |= select(graph, text, models)
    return out
