"""Last known connector state, so the code location loads when a connector API is down.

Every successful workspace fetch is written to disk; when the API cannot be reached the last
snapshot is used instead and the outcome is recorded, so assets can say where their
definitions came from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from dagster_shared.serdes import deserialize_value, serialize_value

log = logging.getLogger(__name__)
T = TypeVar("T")


class ConnectorStateUnavailable(RuntimeError):
    """The API is unreachable and there is no snapshot to fall back on."""


@dataclass(frozen=True)
class LoadOutcome:
    source: str  # "live" | "cached"
    fetched_at: str
    error: str | None = None

    def describe(self) -> str:
        if self.source == "live":
            return f"live from the API at {self.fetched_at}"
        return f"last known state from {self.fetched_at} (API unreachable: {self.error})"


# Keyed by "<system>/<account>", read by the asset builders to annotate specs.
LOAD_OUTCOMES: dict[str, LoadOutcome] = {}
# system -> why its assets were not loaded at the last build (read by `policies check`)
NOT_LOADED: dict[str, str] = {}


OFFLINE_ENV = "ORCHESTRATOR_CONNECTORS_OFFLINE"


def offline() -> bool:
    """No connector API is called (``orchestrator policies check --offline``, a CI job without
    credentials): the workspaces come from the last known state only."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class OfflineMode(RuntimeError):
    pass


def state_file(system: str, account: str, state_dir: Path) -> Path:
    """``<state_dir>/<system>-<account>.json``; offline, when that account has no file and the
    directory holds exactly one state of this system, that one (a CI job rarely knows the ids)."""
    path = Path(state_dir) / f"{system}-{_safe(account)}.json"
    if offline() and not path.exists():
        found = sorted(Path(state_dir).glob(f"{system}-*.json")) if Path(state_dir).is_dir() else []
        if len(found) == 1:
            return found[0]
    return path


def fetch_or_restore(system: str, account: str, fetch: Callable[[], T], state_dir: Path) -> T:
    key = f"{system}/{account}"
    path = state_file(system, account, state_dir)
    from orchestrator.resources.errors import api_deadline

    try:
        if offline():
            raise OfflineMode(f"offline: no {system} API called ({OFFLINE_ENV})")
        # a hung API cannot hold the code location's load: every request shares this budget
        with api_deadline(float(os.environ.get("ORCHESTRATOR_LOAD_API_DEADLINE", "60"))):
            data = fetch()
    except Exception as exc:  # any transport or API error: fall back to the snapshot
        if not path.exists() and offline():
            raise ConnectorStateUnavailable(
                f"{system}: no last known state at {path} (offline: no {system} API called)") from None
        if not path.exists():
            raise ConnectorStateUnavailable(
                f"{system} API unreachable for {account!r} and no last known state at {path}: {exc}"
            ) from exc
        fetched_at = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
        reason = _first_line(exc)
        try:
            restored = deserialize_value(path.read_text())
        except Exception as bad:  # noqa: BLE001 - corrupted/truncated: set aside, treat as absent
            aside = set_aside(path)
            log.error("%s last known state at %s is unreadable (%s); moved aside to %s",
                      system, path, _first_line(bad), aside)
            raise ConnectorStateUnavailable(
                f"{system} API unreachable for {account!r} ({reason}) and the last known state at {path} "
                f"was corrupted (moved aside to {aside.name}: {_first_line(bad)})"
            ) from exc
        log.warning(
            "%s API unreachable (%s); loading the last known connector state from %s (saved %s)",
            system, reason, path, fetched_at,
        )
        LOAD_OUTCOMES[key] = LoadOutcome("cached", fetched_at, reason)
        return restored  # type: ignore[return-value]


    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:  # fsync'd, then renamed: never a half-written file
        fh.write(serialize_value(data))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    LOAD_OUTCOMES[key] = LoadOutcome("live", datetime.now(UTC).isoformat(timespec="seconds"))
    return data


def set_aside(path: Path) -> Path:
    """Rename a corrupted file to ``<name>.corrupt-<UTC timestamp>`` (kept for inspection)."""
    aside = path.with_name(f"{path.name}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
    try:
        path.replace(aside)
    except OSError as exc:  # read-only directory: it stays, and is still treated as absent
        log.error("could not move %s aside: %s", path, exc)
    return aside


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
