"""``orchestrator diagnose [FILE|-]``: JSON lines in, JSON lines out (same path as the sensor).

Input lines: ``{"id": ..., "message": "...", "system": "..."?}``. Output lines: exactly
``{"id", "category", "transient", "confidence", "evidence"}`` (``--explain`` appends ``basis``,
``probabilities``, ``summary`` and ``remediation``; ``--llm`` asks the configured LLM about
low-confidence failures). A malformed input line is reported
on stderr with its line number and skipped; the exit status is 1 if any line was bad.

By default the failure memory in the project store (``ORCHESTRATOR_STORE_URL`` or SQLite under
dagster_home) is consulted; ``--no-memory`` uses the rule catalog alone.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def _parse(line: str) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    if "id" not in rec:
        raise ValueError('missing required key "id"')
    if not isinstance(rec.get("message"), str):
        raise ValueError('missing or non-string "message"')
    system = rec.get("system")
    if system is not None and not isinstance(system, str):
        raise ValueError('"system" must be a string when present')
    return rec


@click.command("diagnose")
@click.argument("file", type=click.File("r", encoding="utf-8"), default="-", required=False)
@click.option("--threshold", type=float, default=None,
              help="Confidence below which the answer is 'unknown' (default 0.5 or "
                   "ORCHESTRATOR_DIAGNOSIS_THRESHOLD).")
@click.option("--memory/--no-memory", "use_memory", default=True, show_default=True,
              help="Consult the failure memory in the project store.")
@click.option("--store-url", default=None, help="Project store URL (default: ORCHESTRATOR_STORE_URL "
              "or SQLite under dagster_home).")
@click.option("--explain", is_flag=True, help="Add basis (rules/model/memory/llm), top probabilities, a "
              "root-cause summary and remediation steps to each output line.")
@click.option("--llm/--no-llm", "use_llm", default=False, show_default=True,
              help="Ask the configured LLM (OPENAI_BASE_URL/OPENAI_API_KEY) about low-confidence failures.")
def diagnose_command(file, threshold: float | None, use_memory: bool, store_url: str | None,
                     explain: bool, use_llm: bool) -> None:
    """Classify failure messages (JSON lines from FILE or stdin) by root cause."""
    from orchestrator.diagnosis.classifier import diagnose
    from orchestrator.diagnosis.summaries import summarize

    memory = None
    if use_memory:
        try:
            from orchestrator.diagnosis.memory import FailureMemory
            from orchestrator.store import open_store

            memory = FailureMemory(open_store(store_url))
        except Exception as exc:  # the rules work without a store
            click.echo(f"warning: failure memory unavailable ({type(exc).__name__}: {exc}); "
                       "using rules only", err=True)
            memory = None

    bad = 0
    out = sys.stdout
    for lineno, raw in enumerate(file, start=1):
        if not raw.strip():
            continue
        try:
            rec = _parse(raw)
        except ValueError as exc:
            bad += 1
            click.echo(f"error: line {lineno}: {exc}", err=True)
            continue
        llm = None
        if use_llm:
            from orchestrator.diagnosis.llm import diagnose_with_llm

            d, llm = diagnose_with_llm(rec["message"], rec.get("system"), memory, threshold=threshold)
        else:
            d = diagnose(rec["message"], rec.get("system"), memory, threshold=threshold)
        rec_out = d.as_output(rec["id"])
        if explain:
            rec_out["basis"] = d.basis
            rec_out["probabilities"] = d.probabilities
            if llm is not None and llm.accepted and llm.answer is not None and d.basis == "llm":
                rec_out["summary"], rec_out["remediation"] = llm.answer.summary, llm.answer.remediation
            else:
                s = summarize(d.category, d.evidence, rec.get("system"), d.transient)
                rec_out["summary"], rec_out["remediation"] = s["summary"], s["remediation"]
            if llm is not None:
                rec_out["llm"] = {"accepted": llm.accepted, "reason": llm.reason}
        out.write(json.dumps(rec_out, ensure_ascii=False) + "\n")
        out.flush()
    if bad:
        click.echo(f"error: {bad} malformed input line(s) skipped", err=True)
        sys.exit(1)
