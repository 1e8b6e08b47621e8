"""A long-lived store: incidents (and so Slack/Teams announcements and `orchestrator incidents list`)
come from the newest diagnosed failures, not from the first window ever written."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from orchestrator.diagnosis.incidents import build_incidents
from orchestrator.store import open_store

T0 = datetime(2026, 3, 2, 5, 0, tzinfo=timezone.utc)


def test_new_incidents_still_appear_after_the_window_fills(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/store.db", cached=False)
    try:
        for i in range(12):
            store.append_audit("failure.diagnosed", actor="failure_diagnosis_sensor", subject=f"F{i}", payload={
                "category": "rate_limit", "transient": True, "confidence": 0.9, "evidence": ["HTTP 429"],
                "root": None, "system": "salesforce", "connector": "salesforce",
                "at": (T0 + timedelta(minutes=i)).isoformat(),
            })
        ids = [inc.id for inc in build_incidents(store, limit=5)]
        assert ids == ["F11", "F10", "F9", "F8", "F7"]
        # the default window still reads oldest-first order within it
        assert [e["subject"] for e in store.audit_events(kind="failure.diagnosed", limit=3)] == ["F0", "F1", "F2"]
        assert [e["subject"] for e in store.audit_events(kind="failure.diagnosed", limit=3, newest=True)] == [
            "F9", "F10", "F11"]
    finally:
        store.dispose()
