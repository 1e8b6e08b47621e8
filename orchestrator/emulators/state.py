"""Persistence and time helpers shared by both emulators.

Each emulator keeps its whole state in one pydantic model, saved as JSON after every change
(write to a temporary file, then rename), so a restarted emulator on the same state directory
serves the same connectors, timestamps and job ids.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso_z(moment: datetime | None, with_micros: bool = True) -> str | None:
    """ISO-8601 in UTC with a 'Z' suffix: naive timestamps crash dagster's comparisons."""
    if moment is None:
        return None
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if with_micros else "%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    """Lenient ISO parser: 'Z', offsets, or naive (taken as UTC, as dagster sends local-naive)."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def iso_duration(delta: timedelta) -> str:
    total = max(0, int(delta.total_seconds()))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return out + (f"{seconds}S" if seconds or out == "PT" else "")


def epoch_seconds(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


class JsonStateFile(Generic[ModelT]):
    """One emulator's state on disk."""

    def __init__(self, path: Path, model: type[ModelT]):
        self.path = Path(path)
        self.model = model

    def load(self) -> ModelT | None:
        if not self.path.exists():
            return None
        try:
            return self.model.model_validate_json(self.path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RuntimeError(
                f"emulator state {self.path} is unreadable ({exc}); delete it to start afresh"
            ) from exc

    def save(self, state: ModelT) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = state.model_dump_json(indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def json_safe(value: object) -> object:
    """Round-trips through JSON so responses never share mutable state with the engine."""
    return json.loads(json.dumps(value, default=str))
