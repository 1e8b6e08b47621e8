"""What the fourth collection (runtime logs from issue threads, issue 16 round six) changes, source by source.

    .venv/bin/python benchmarks/diagnosis_collections.py --mode training-only   # new data in training folds only
    .venv/bin/python benchmarks/diagnosis_collections.py --mode full            # new data cross-validated too
    .venv/bin/python benchmarks/diagnosis_collections.py --mode baseline        # the three earlier collections

Same procedure as ``bench_diagnosis.py`` (``crossval.cross_validate``: grouped 5-fold CV by source,
model and combination parameters fitted inside the training folds only, inner grouped 3-fold split).

* ``baseline``: corpus = the first three collections; training extra = the project set.
* ``training-only``: the same corpus and the same folds (the extra items never change the folding);
  the fourth collection's consensus items are added to every training fold (their sources are never
  a test source here). Compares the earlier collections' items with and without the new data.
* ``full``: the fourth collection is part of the corpus: its sources are folded like the others, so
  each of its items is predicted by a model that never saw its thread.

Prints the usual metrics per collection, per kind (issue-thread logs / raise sites) and per system,
plus the items whose message repeats another source's message after masking digits and quoted text
("near-duplicates", reported apart because such a pair is easier than an unseen message). ``--save``
writes the out-of-fold predictions as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.diagnosis.crossval import (  # noqa: E402
    THREADS_CORPUS, cross_validate, format_confusion, format_metrics, load_items, load_rows, metrics, prepare,
)

COLLECTIONS = (("fc-", "first collection"), ("fx-", "second collection"), ("fr-", "third collection"),
               ("ft-", "fourth collection (issue-thread logs, round six)"))


def shape(message: str) -> str:
    """A message with quoted text, numbers and hex ids masked (for the near-duplicate count)."""
    s = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "Q", message.lower())
    s = re.sub(r"[0-9a-f]{8,}|\d+", "N", s)
    return re.sub(r"\s+", " ", s).strip()


def report(corpus, preds, title: str) -> dict:
    out = {}
    m = metrics(corpus, preds)
    print(format_metrics(m, f"== {title}: all items =="))
    print()
    print(format_confusion(m))
    out["all"] = m
    subsets = [(name, (lambda p: lambda i: i.id.startswith(p))(prefix)) for prefix, name in COLLECTIONS]
    subsets += [("earlier three collections", lambda i: not i.id.startswith("ft-")),
                ("issue-thread logs (all collections)", lambda i: i.kind == "issue_thread"),
                ("package raise sites (all collections)", lambda i: i.kind == "package_source")]
    groups_by_shape: dict[str, set] = defaultdict(set)
    for it in corpus:
        groups_by_shape[shape(it.message)].add(it.group)
    near_dup = {it.id for it in corpus if len(groups_by_shape[shape(it.message)]) > 1}
    subsets += [("items whose masked message occurs in another source", lambda i: i.id in near_dup),
                ("items whose masked message occurs in no other source", lambda i: i.id not in near_dup)]
    for name, sub in subsets:
        mm = metrics(corpus, preds, subset=sub)
        if not mm["n"]:
            continue
        out[name] = mm
        print()
        print(format_metrics(mm, f"== {title}: {name} =="))
    print()
    print(f"== {title}: per system (consensus items; category accuracy, n) ==")
    by_sys: dict[str, list[bool]] = defaultdict(list)
    for it, p in zip(corpus, preds):
        if it.category:
            by_sys[it.system or "?"].append(p.category == it.category)
    rows = sorted(by_sys.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    print("  ".join(f"{s} {sum(v) / len(v):.2f} ({len(v)})" for s, v in rows))
    out["per_system"] = {s: [sum(v), len(v)] for s, v in rows}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("baseline", "training-only", "full"), required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--save", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    corpus, extra = load_items(threads=args.mode == "full")
    if args.mode == "training-only":
        extra = extra + prepare(load_rows(THREADS_CORPUS))
    print(f"mode {args.mode}: corpus {len(corpus)} messages ({sum(1 for i in corpus if i.category)} consensus), "
          f"{len({i.group for i in corpus})} source groups; training extra {len(extra)} "
          f"({Counter(e.id[:3] for e in extra)})")
    preds, chosen = cross_validate(corpus, extra, k=args.folds, inner_k=3, steps=args.steps)
    print(f"grouped {args.folds}-fold CV in {time.perf_counter() - t0:.0f}s; parameters per fold: {chosen}")
    print()
    report(corpus, preds, args.mode)
    if args.save:
        args.save.write_text("".join(json.dumps({"id": it.id, "gold": it.category, "pred": p.category,
                                                 "transient": p.transient, "confidence": p.confidence,
                                                 "fold": p.fold}) + "\n" for it, p in zip(corpus, preds)))


if __name__ == "__main__":
    main()
