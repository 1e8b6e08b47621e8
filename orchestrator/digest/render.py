"""Render an owner's digest: HTML (table-based, inline styles, for mail clients), plain text, and
Markdown (the Dagster UI preview). Templates live in ``orchestrator/digest/templates``.

The cost chart is an HTML bar chart (table cells with background colours and percentage widths):
it renders in Outlook, Gmail and Apple Mail alike, where inline SVG does not.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from orchestrator.digest.content import Digest, OwnerDigest

TEMPLATES = Path(__file__).resolve().parent / "templates"
UTC = timezone.utc

ACTION_LABELS = {
    "materialize": "Run now", "retry": "Retry", "backfill": "Backfill", "resync_table": "Resync tables",
    "full_resync": "Full resync", "pause_connector": "Pause connector", "resume_connector": "Resume connector",
    "reschedule_connector": "Change sync schedule", "defer": "Defer to off-peak", "cancel_run": "Cancel run",
}


def fmt_duration(seconds: float | None, signed: bool = False) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    sign = "-" if seconds < 0 else ("+" if signed else "")
    s = abs(int(seconds))
    h, m = divmod(s // 60, 60)
    if h >= 48:
        return f"{sign}{h // 24}d {h % 24}h"
    return f"{sign}{h}h {m:02d}m" if h else f"{sign}{m}m"


@lru_cache(maxsize=8)
def _env(tz: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    zone = ZoneInfo(tz)

    def when(dt: datetime | None, fmt: str = "%a %H:%M") -> str:
        if dt is None:
            return "-"
        dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        return dt.astimezone(zone).strftime(fmt)

    env.filters.update(
        when=when,
        dur=fmt_duration,
        sdur=lambda s: fmt_duration(s, signed=True),
        money=lambda v: "-" if v is None else f"${v:,.2f}",
        pct=lambda v: "-" if v is None else f"{100 * v:.0f}%",
        label=lambda t: ACTION_LABELS.get(t, t.replace("_", " ")),
        md=lambda s: str(s).replace("|", "\\|").replace("\n", " "),
    )
    env.globals["tzname"] = tz
    return env


def _ctx(digest: Digest, section: OwnerDigest, **extra) -> dict:
    return {"digest": digest, "s": section, "c": section.counts, **extra}


def render_html(digest: Digest, section: OwnerDigest, *, approvals_note: str | None = None) -> str:
    return _env(digest.timezone).get_template("digest.html").render(**_ctx(digest, section, approvals_note=approvals_note))


def render_text(digest: Digest, section: OwnerDigest, *, approvals_note: str | None = None) -> str:
    return _env(digest.timezone).get_template("digest.txt").render(**_ctx(digest, section, approvals_note=approvals_note))


def render_markdown(digest: Digest) -> str:
    """The whole digest (every owner) as Markdown, for the Dagster UI (``MetadataValue.md``)."""
    return _env(digest.timezone).get_template("digest.md").render(digest=digest)


def subject_line(digest: Digest, section: OwnerDigest) -> str:
    day = digest.generated_at.astimezone(ZoneInfo(digest.timezone)).strftime("%a %d %b")
    return f"Data digest {day} - {section.label}: {section.headline}"
