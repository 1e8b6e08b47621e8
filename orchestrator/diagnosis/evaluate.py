"""Evaluation helpers for the labelled failure-message set (shared by tests and benchmarks)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.diagnosis.rules import CATEGORIES

HELDOUT_EVERY = 4  # every 4th message (1-based position 4, 8, ...) is held out


def load_dataset(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def split_of(position: int) -> str:
    """0-based position in the file -> "dev" or "heldout"."""
    return "heldout" if (position + 1) % HELDOUT_EVERY == 0 else "dev"


def per_category(gold: Mapping[str, str], pred: Mapping[str, str], ids: Iterable[str]) -> dict[str, Any]:
    ids = [i for i in ids if i in gold]
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for i in ids:
        g, p = gold[i], pred.get(i, "unknown")
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    rows = {}
    for c in CATEGORIES:
        support = tp[c] + fn[c]
        predicted = tp[c] + fp[c]
        rows[c] = {
            "support": support,
            "correct": tp[c],
            "precision": tp[c] / predicted if predicted else None,
            "recall": tp[c] / support if support else None,  # = per-category accuracy
        }
    correct = sum(tp.values())
    return {"n": len(ids), "correct": correct, "accuracy": correct / len(ids) if ids else 0.0, "rows": rows}


def format_table(result: Mapping[str, Any], title: str = "") -> str:
    def f(x):
        return "  -  " if x is None else f"{x:5.2f}"

    lines = []
    if title:
        lines.append(title)
    lines.append(f"{'category':22s} {'n':>4s} {'ok':>4s} {'prec':>6s} {'recall/acc':>10s}")
    for c, r in result["rows"].items():
        if r["support"] == 0 and r["precision"] is None:
            continue
        lines.append(f"{c:22s} {r['support']:4d} {r['correct']:4d} {f(r['precision']):>6s} {f(r['recall']):>10s}")
    lines.append(f"{'overall':22s} {result['n']:4d} {result['correct']:4d} {'':>6s} {result['accuracy']:10.3f}")
    return "\n".join(lines)
