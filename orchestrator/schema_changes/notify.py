"""Breaking schema changes told to their owners in Slack / Teams, in the sensor tick that detects
them (no Dagster imports).

The owners' notifier (``orchestrator.notify``) announces *incidents* (failures); a breaking schema
change is worth telling before anything fails. :class:`SchemaChangeNotifier` reuses its routes
(``ORCHESTRATOR_SLACK_CHANNELS`` / ``ORCHESTRATOR_TEAMS_WEBHOOKS``: an owner -> channels), its
once-per-change claim in the project store, rate limits and scrubbing, over threads of its own:
one thread per table and set of changes (``schema:<table key>:<digest>``), opened with what
breaks ("renames shop.orders.amount to amount_total: breaks 1 model, blocks 3, 2 dashboards
..."), followed by the patch proposal (waiting for approval, with the command that shows it) and
its fate (published on a branch, rejected, failed verification).

Read from the audit trail the schema sensor writes (``schema_change.detected``,
``schema_patch.*``), so a restart or a second ticker never sends a change twice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from orchestrator.notify.dispatch import Notifier
from orchestrator.notify.threads import Change, IncidentThread, _parse
from orchestrator.scrubbing import scrub_pii

PATCH_PHASES = {"schema_patch.proposed": "proposed", "schema_patch.published": "published",
                "schema_patch.rejected": "rejected", "schema_patch.publish_failed": "publish_failed"}


def thread_id(key: str, summaries: list[str]) -> str:
    return f"schema:{key}:" + hashlib.sha256("\n".join(sorted(summaries)).encode()).hexdigest()[:12]


def schema_threads(store, *, now: datetime, lookback: timedelta = timedelta(hours=72)) -> list[IncidentThread]:
    """One thread per breaking change set detected within ``lookback``, with its patch's fate."""
    proposed: dict[str, list[tuple[dict, datetime | None]]] = {}  # table ("shop.orders") -> proposals
    later: dict[str, list[tuple[str, dict]]] = {}  # patch id -> its decision / publication events
    for kind in PATCH_PHASES:
        for ev in store.audit_events(kind=kind, limit=100000):
            payload = {**(ev.get("payload") or {}), "id": ev.get("subject")}
            if kind == "schema_patch.proposed":
                for table in payload.get("tables") or []:
                    proposed.setdefault(table, []).append((payload, _parse(ev.get("ts"))))
            else:
                later.setdefault(ev.get("subject") or "", []).append((PATCH_PHASES[kind], payload))
    out: dict[str, IncidentThread] = {}
    for ev in store.audit_events(kind="schema_change.detected", limit=100000):
        payload = ev.get("payload") or {}
        at = _parse(ev.get("ts"))
        if not payload.get("breaking") or (at is not None and at < now - lookback):
            continue
        key, table = payload.get("key") or ev.get("subject") or "", payload.get("table") or ""
        tid = thread_id(key, list(payload.get("summaries") or []))
        if tid in out:
            continue
        breaking = [s for s, action in payload.get("handling") or [] if action in ("patch", "llm_patch", "person")]
        todo = sorted({action for _, action in payload.get("handling") or []} & {"patch", "llm_patch", "person"})
        what = {"patch": "a patch is being built and verified (dbt build in a scratch database)",
                "llm_patch": "the LLM agent is asked for a patch, verified the same way",
                "person": "no patch answers part of it: it needs a person"}
        text = "\n".join([f"Breaking schema change in {table} (landed in {payload.get('origin') or 'the last sync'}):",
                          *[f"- {s}" for s in breaking or payload.get("summaries") or []],
                          *[f"Next: {what[t]}." for t in todo]])
        changes = [Change("opened", scrub_pii(text), at)]
        for p, when in sorted(proposed.get(table, []), key=lambda e: e[1] or now):
            if when is not None and at is not None and when < at:
                continue  # a patch for an earlier change of this table
            pid = p["id"]
            if p.get("status") == "proposed":
                changes.append(Change(f"patch:{pid}:proposed", scrub_pii(
                    f"A verified patch waits for approval: {p.get('summary')}. Review: `orchestrator "
                    f"schema-changes show {pid}`; approve: `orchestrator schema-changes approve {pid} --actor <you>` "
                    "(a new branch and a pull request; never the main branch)."), when))
            else:
                changes.append(Change(f"patch:{pid}:failed_verification", scrub_pii(
                    f"The patch did not pass `dbt build` on the new data: nothing is proposed ({pid})."), when))
            for phase, q in later.get(pid, []):
                note = {"published": f"Patch {pid} approved: on branch {q.get('branch')}"
                                     + (f", pull request {q.get('pr_url')}" if q.get("pr_url") else ""),
                        "rejected": f"Patch {pid} rejected.",
                        "publish_failed": f"Patch {pid} approved but could not be published: {q.get('error')}"}
                changes.append(Change(f"patch:{pid}:{phase}", scrub_pii(note[phase]), None,
                                      final=phase == "published"))
        out[tid] = IncidentThread(tid, scrub_pii(f"{table}: breaking schema change"),
                                  tuple(payload.get("owners") or ()), (), changes)
    return list(out.values())


class SchemaChangeNotifier(Notifier):
    """The owners' notifier over schema-change threads (same routes, dedup, limits, scrubbing)."""

    no_route = "no route for schema-change notifications"
    audit_actor = "schema-notifier"
    audit_prefix = "schema"

    def _threads(self, now: datetime, lookback: timedelta) -> list[IncidentThread]:
        return schema_threads(self.store, now=now, lookback=lookback)
