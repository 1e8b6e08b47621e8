"""Message bodies: Slack (mrkdwn text + Block Kit, link buttons) and Teams (an Adaptive Card).

The texts arrive scrubbed (``threads``); the approval links are added here, after scrubbing (a
scrubber would take ``token=...`` for a credential), and are the same signed links as the
digest's, issued to the destination (``slack:#channel``).
"""

from __future__ import annotations

from orchestrator.notify.threads import Change, IncidentThread

ICONS = {"opened": ":red_circle:", "resolved": ":white_check_mark:", "escalation": ":rotating_light:",
         "proposed": ":raised_hand:", "running": ":arrow_forward:", "succeeded": ":heavy_check_mark:",
         "failed": ":x:", "rejected": ":no_entry_sign:", "expired": ":hourglass:", "cancelled": ":no_entry_sign:",
         "recorded": ":memo:", "withdrawn": ":wastebasket:"}


def _icon(change: Change) -> str:
    kind = change.key.split(":")[0]
    if kind == "action":
        kind = change.key.rsplit(":", 1)[-1]
    return ICONS.get(kind, ":information_source:")


def _esc(text: str) -> str:
    """Slack mrkdwn: only &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(thread: IncidentThread, change: Change, links: dict[str, str] | None, *,
                  threaded: bool) -> tuple[str, list[dict]]:
    head = f"Incident {thread.incident_id[:40]}: {thread.title}"
    if change.key == "opened":
        text = f"{_icon(change)} *{_esc(head)}*\n{_esc(change.text)}"
    else:
        text = f"{_icon(change)} {_esc(change.text)}"
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}]
    fallback = text
    if change.pending is not None:
        if links:
            blocks.append({"type": "actions", "block_id": f"decide-{change.pending.action_id}"[:255], "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "style": "primary",
                 "url": links["approve"], "action_id": "approve"},
                {"type": "button", "text": {"type": "plain_text", "text": "Reject"}, "style": "danger",
                 "url": links["reject"], "action_id": "reject"},
            ]})
            fallback += f"\nApprove: <{links['approve']}|approve> | Reject: <{links['reject']}|reject>"
        else:
            note = (f"Approve from a terminal: `orchestrator proposals approve {change.pending.action_id}` "
                    "(approval links are off: no ORCHESTRATOR_APPROVAL_SECRET)")
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
            fallback += "\n" + note
    return fallback, blocks


def teams_card(thread: IncidentThread, change: Change, links: dict[str, str] | None) -> dict:
    """Teams webhooks have no threads: each card names its incident in the title."""
    phase = change.key.rsplit(":", 1)[-1] if change.key.startswith("action:") else change.key.split(":")[0]
    card: dict = {
        "type": "AdaptiveCard", "version": "1.4", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "body": [
            {"type": "TextBlock", "weight": "Bolder", "wrap": True,
             "text": f"Incident {thread.incident_id[:40]}: {thread.title}"},
            {"type": "TextBlock", "isSubtle": True, "spacing": "None", "text": phase.replace("_", " ").capitalize()},
            {"type": "TextBlock", "wrap": True, "text": change.text[:4000]},
        ],
    }
    if change.pending is not None:
        if links:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Approve", "url": links["approve"]},
                               {"type": "Action.OpenUrl", "title": "Reject", "url": links["reject"]}]
        else:
            card["body"].append({"type": "TextBlock", "wrap": True, "isSubtle": True,
                                 "text": f"Approve from a terminal: orchestrator proposals approve "
                                         f"{change.pending.action_id}"})
    return card
