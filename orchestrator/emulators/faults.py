"""Scripted and injected faults: which request or sync a fault hits, and how many are left.

HTTP faults (rate_limit, server_error) consume one unit per matching request. Sync faults fire
on the Nth sync of their target (`on_sync`) or on the next N syncs that start (`next_syncs`).
The book is part of the persisted emulator state, so a restart neither re-fires nor forgets them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, TypeAdapter

from orchestrator.emulators.scenario import HTTP_FAULT_KINDS, SILENT_FAULT_KINDS, FaultSpec

_FAULT_ADAPTER: TypeAdapter = TypeAdapter(FaultSpec)

# When several outcome faults hit one sync, the most severe wins.
OUTCOME_PRIORITY = ("expired_credentials", "sync_failure", "hang", "rescheduled")


class ActiveFault(BaseModel):
    id: int
    spec: dict[str, Any]
    source: str = Field("scenario", description="scenario or runtime")
    remaining: int | None = Field(None, description="requests or syncs left; None for on_sync")
    fired: int = 0

    @property
    def fault(self) -> Any:
        return _FAULT_ADAPTER.validate_python(self.spec)

    @property
    def kind(self) -> str:
        return self.spec["kind"]


class FaultBook(BaseModel):
    faults: list[ActiveFault] = Field(default_factory=list)
    next_id: int = 1
    # Scenario faults are loaded once per state directory; re-adding them after a restart would
    # re-fire faults that already fired.
    scenario_loaded: bool = False

    def load_scenario_faults(self, scenario: Any, api: str) -> None:
        """Adds the scenario's faults aimed at this API, once per state directory."""
        if self.scenario_loaded:
            return
        for fault in scenario.faults:
            if scenario.api_of(fault.target or "") == api or fault.api == api:
                self.add(fault, source="scenario")
        self.scenario_loaded = True

    def add(self, fault: Any, source: str) -> ActiveFault:
        spec = fault.model_dump(mode="json", by_alias=True, exclude_none=True)
        remaining = getattr(fault, "requests", None) or getattr(fault, "next_syncs", None)
        entry = ActiveFault(id=self.next_id, spec=spec, source=source, remaining=remaining)
        self.next_id += 1
        self.faults.append(entry)
        return entry

    def remove(self, fault_id: int) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) != before

    def clear(self, target: str | None = None) -> int:
        keep = [f for f in self.faults if target is not None and f.spec.get("target") != target]
        removed = len(self.faults) - len(keep)
        self.faults = keep
        return removed

    def take_http_fault(self, target_ids: set[str]) -> Any | None:
        """The HTTP fault hitting a request that touches `target_ids` (empty: API-wide only)."""
        for entry in self.faults:
            if entry.kind not in HTTP_FAULT_KINDS:
                continue
            target = entry.spec.get("target")
            if target is not None and target not in target_ids:
                continue
            entry.remaining = (entry.remaining or 1) - 1
            entry.fired += 1
            if entry.remaining <= 0:
                self.remove(entry.id)
            return entry.fault
        return None

    def take_sync_faults(self, target: str, sync_number: int) -> list[Any]:
        """Faults firing for this sync: schema changes first, then silent failures/precursors,
        then at most one outcome."""
        hits: list[Any] = []
        for entry in list(self.faults):
            if entry.kind in HTTP_FAULT_KINDS or entry.spec.get("target") != target:
                continue
            on_sync = entry.spec.get("on_sync")
            if on_sync is not None:
                if on_sync != sync_number:
                    if on_sync < sync_number:
                        self.remove(entry.id)  # its sync has passed (e.g. the fault came late)
                    continue
                self.remove(entry.id)
            else:
                entry.remaining = (entry.remaining or 1) - 1
                if entry.remaining <= 0:
                    self.remove(entry.id)
            entry.fired += 1
            hits.append(entry.fault)
        schema_changes = [f for f in hits if f.kind == "schema_change"]
        outcomes = sorted(
            (f for f in hits if f.kind in OUTCOME_PRIORITY), key=lambda f: OUTCOME_PRIORITY.index(f.kind)
        )
        silent = [f for f in hits if f.kind in SILENT_FAULT_KINDS]
        return schema_changes + silent + outcomes[:1]
