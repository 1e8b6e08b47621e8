"""dbt ``meta`` (owners, tags, groups, kinds, metadata) made valid for Dagster, for any real project.

dbt accepts anything in ``meta``; Dagster rejects an asset whose owner is neither an e-mail nor
``team:<name>``, a group name outside ``[A-Za-z0-9_]`` (``/``-separated), a tag key or strict tag
value it cannot store, more than ten kinds. One such value in a manifest of thousands of models
used to fail the whole code location. Here every value is either mapped to a valid one
(``data_team`` -> ``team:data_team``, group ``Data Team`` -> ``Data_Team``) or dropped, and each
distinct problem is reported once (``MetaReport``), never raised.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

try:  # Dagster's own owner rule, so the mapping agrees with the version installed
    from dagster._core.definitions.utils import is_valid_owner as _dagster_valid_owner
except ImportError:  # pragma: no cover - moved in another Dagster version: the same rule, restated
    _dagster_valid_owner = None
# Dagster's rules (dagster._core.utils.is_valid_email, dagster._utils.tags), restated; the tests
# check every mapped value against Dagster's validators.
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,7}\b")
_GROUP_SEGMENT_BAD = re.compile(r"[^A-Za-z0-9_]+")
_TAG_KEY = re.compile(r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")
_TAG_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_KINDS = 10
MAX_TEAM_LEN = 200


@dataclass
class MetaReport:
    """Problems found in dbt meta, each distinct one counted and logged once."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, kind: str, detail: str, where: str) -> None:
        key = (kind, detail)
        if key not in self.counts:
            log.warning("dbt meta: %s %s (first seen on %s); mapped or dropped, load continues",
                        kind, detail, where)
            self.examples[key] = where
        self.counts[key] += 1

    def lines(self) -> list[str]:
        return [
            f"{kind} {detail}: {n} node(s), e.g. {self.examples[(kind, detail)]}"
            for (kind, detail), n in sorted(self.counts.items())
        ]

    def __bool__(self) -> bool:
        return bool(self.counts)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    return [value]


def node_meta(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """A node's meta, as dbt resolved it (config.meta) or as written (meta)."""
    meta = (props.get("config") or {}).get("meta") or props.get("meta") or {}
    return meta if isinstance(meta, Mapping) else {}


def dagster_meta(props: Mapping[str, Any]) -> Mapping[str, Any]:
    value = node_meta(props).get("dagster") or (props.get("meta") or {}).get("dagster") or {}
    return value if isinstance(value, Mapping) else {}


def valid_owner(owner: str) -> bool:
    if _dagster_valid_owner is not None:
        return _dagster_valid_owner(owner)
    return bool(_EMAIL.fullmatch(owner)) or (owner.startswith("team:") and len(owner) > 5)


def map_owner(value: Any, report: MetaReport | None, where: str) -> str | None:
    """A Dagster owner for one dbt owner value, or None (reported) when there is none to make."""
    if isinstance(value, Mapping):  # dbt group/exposure owner: {email, name}
        email = value.get("email")
        if isinstance(email, str) and email.strip():
            return map_owner(email, report, where)
        return map_owner(value.get("name"), report, where) if value.get("name") else None
    if not isinstance(value, str):
        if value is not None and report is not None:
            report.add("owner", f"{value!r} is not a string", where)
        return None
    text = " ".join(value.split())
    if not text:
        return None
    if valid_owner(text):
        return text
    if "@" in text and not text.startswith("team:"):
        # Looks like an address but is not one Dagster accepts: do not invent a team from it.
        if report is not None:
            report.add("owner", f"{value!r} is not a valid e-mail address (dropped)", where)
        return None
    name = text[5:].strip() if text.startswith("team:") else text
    if not name:
        if report is not None:
            report.add("owner", f"{value!r} has an empty team name (dropped)", where)
        return None
    mapped = f"team:{name[:MAX_TEAM_LEN]}"
    if report is not None:
        report.add("owner", f"{value!r} -> {mapped!r}", where)
    return mapped


def map_owners(values: Iterable[Any], report: MetaReport | None, where: str) -> list[str]:
    out: list[str] = []
    for value in values:
        for item in _as_list(value):
            owner = map_owner(item, report, where)
            if owner and owner not in out:
                out.append(owner)
    return out


def map_group(value: Any, report: MetaReport | None, where: str) -> str | None:
    """A valid Dagster group name (segments of [A-Za-z0-9_] joined by '/'), or None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        if report is not None:
            report.add("group", f"{value!r} is not a string (dropped)", where)
        return None
    segments = [_GROUP_SEGMENT_BAD.sub("_", s).strip("_") for s in value.split("/")]
    segments = [s for s in segments if s]
    mapped = "/".join(segments) or None
    if mapped != value and report is not None:
        report.add("group", f"{value!r} -> {mapped!r}", where)
    return mapped


def valid_tag_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_TAG_KEY.match(key))


def tag_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return _TAG_VALUE_BAD.sub("_", text)[:63]


def map_tags(value: Any, report: MetaReport | None, where: str) -> dict[str, str]:
    """dbt tags (a list of keys) or meta.dagster.tags (a string, list or mapping) as Dagster tags."""
    if value is None:
        return {}
    items = value.items() if isinstance(value, Mapping) else ((v, "") for v in _as_list(value))
    tags: dict[str, str] = {}
    for key, val in items:
        if not valid_tag_key(key):
            if report is not None:
                report.add("tag", f"key {key!r} is not a valid Dagster tag key (dropped)", where)
            continue
        text = tag_value("" if val is None else val)
        if report is not None and text != val and not (val is None and text == ""):
            report.add("tag", f"{key}={val!r} -> {text!r}", where)
        tags[key] = text
    return tags


def map_kinds(values: Iterable[Any], report: MetaReport | None, where: str) -> set[str]:
    kinds: list[str] = []
    for value in values:
        if isinstance(value, str) and value.strip() and value.strip() not in kinds:
            kinds.append(value.strip())
        elif not isinstance(value, str) and report is not None:
            report.add("kind", f"{value!r} is not a string (dropped)", where)
    if len(kinds) > MAX_KINDS:
        if report is not None:
            report.add("kind", f"more than {MAX_KINDS} kinds (kept the first {MAX_KINDS})", where)
        kinds = kinds[:MAX_KINDS]
    return set(kinds)


_SCALARS = (str, int, float, bool)


def map_metadata(value: Any, report: MetaReport | None, where: str) -> dict[str, Any]:
    """meta.dagster.metadata as Dagster metadata: scalars kept, JSON-able structures as JSON."""
    if not isinstance(value, Mapping):
        if value is not None and report is not None:
            report.add("metadata", f"{type(value).__name__} instead of a mapping (dropped)", where)
        return {}
    from dagster import MetadataValue

    out: dict[str, Any] = {}
    for key, val in value.items():
        if not isinstance(key, str):
            if report is not None:
                report.add("metadata", f"key {key!r} is not a string (dropped)", where)
            continue
        if val is None or isinstance(val, _SCALARS):
            out[key] = "" if val is None else val
        else:
            try:
                out[key] = MetadataValue.json(json.loads(json.dumps(val)))
            except (TypeError, ValueError):
                if report is not None:
                    report.add("metadata", f"{key!r} is not JSON (dropped)", where)
    return out
