"""What the fourth collection (runtime logs from issue threads) and the round-six rules change, source by source.

    .venv/bin/python benchmarks/diagnosis_collections.py [--save DIR]

Grouped 5-fold CV by source (``crossval.group_folds``: no source in both a training and a test fold),
the model fitted inside the training folds only. To fit four variants in the time of one
``bench_diagnosis.py`` run, the combination parameters are fixed a priori at the shipped artifact's
values (rule weight 2, temperature 1, abstention threshold 0.2, chosen by inner CV in earlier rounds,
before the fourth collection existed) instead of re-chosen by an inner split per fold;
``bench_diagnosis.py`` keeps the full procedure.

* ``baseline``: corpus = the first three collections, training extra = the project set, the rules
  as they were before round six;
* ``+ threads in training``: same corpus and folds; the fourth collection's consensus items are added
  to every training fold (none of their sources is ever a test source here): do more runtime logs
  help the earlier items?
* ``threads cross-validated``: the fourth collection is part of the corpus (its sources folded like
  the others), rules before round six: each of its items is predicted by a model that never saw its
  thread;
* ``+ round-six rules``: the same models, scored with the three rules added in round six (their
  matched items are ``seen_by_rules``; the "unseen" lines leave them out).

Each variant prints the metrics per collection, per kind (issue-thread logs / raise sites), for the
items whose masked message occurs in another source (near-duplicates) and the rest, and per system.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.diagnosis.classifier import _score, _transient, combine  # noqa: E402
from orchestrator.diagnosis.crossval import (  # noqa: E402
    CORPUS, EXTRA_CORPUS, PROJECT_SET, ROUND4_CORPUS, THREADS_CORPUS, Prediction, _fit, _proba, decide,
    format_confusion, format_metrics, group_folds, load_rows, metrics, prepare,
)

ROUND6_RULES = frozenset({"query_memory_limit", "image_not_found", "airflow_dependencies"})
PARAMS = {"rule_weight": 2.0, "temperature": 1.0, "threshold": 0.2}
COLLECTIONS = (("fc-", "first collection"), ("fx-", "second collection"), ("fr-", "third collection"),
               ("ft-", "fourth collection (issue-thread logs, round six)"))


def shape(message: str) -> str:
    """A message with quoted text, numbers and hex ids masked (for the near-duplicate split)."""
    s = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "Q", message.lower())
    s = re.sub(r"[0-9a-f]{8,}|\d+", "N", s)
    return re.sub(r"\s+", " ", s).strip()


def fit_folds(corpus, extra, k: int, steps: int):
    folds = group_folds([i.group for i in corpus], k)
    models = []
    for f in range(k):
        test_groups = {i.group for i, ff in zip(corpus, folds) if ff == f}
        train = [i for i, ff in zip(corpus, folds) if ff != f and i.category]
        train += [e for e in extra if e.group not in test_groups and e.category]
        models.append(_fit(train, steps=steps))
    return folds, models


def predict(corpus, folds, models, new_rules: bool):
    preds = []
    for it, f in zip(corpus, folds):
        hits = it.hits if new_rules else [h for h in it.hits if h.rule.name not in ROUND6_RULES]
        pr = combine(_score(hits, it.system), _proba(models[f], it), {}, rule_weight=PARAMS["rule_weight"],
                     temperature=PARAMS["temperature"])
        cat, conf = decide(pr, PARAMS["threshold"])
        best = sorted((h for h in hits if h.rule.category == cat), key=lambda h: -h.rule.weight)
        preds.append(Prediction(cat, conf, _transient(cat, best, {}), f))
    return preds


def report(corpus, preds, title: str, *, per_system: bool = True) -> dict:
    m = metrics(corpus, preds)
    print(format_metrics(m, f"== {title}: all consensus items =="))
    print()
    print(format_confusion(m))
    groups_by_shape: dict[str, set] = defaultdict(set)
    for it in corpus:
        groups_by_shape[shape(it.message)].add(it.group)
    dup = {it.id for it in corpus if len(groups_by_shape[shape(it.message)]) > 1}
    subsets = [(name, (lambda p: lambda i: i.id.startswith(p))(prefix)) for prefix, name in COLLECTIONS]
    subsets += [("first three collections", lambda i: not i.id.startswith("ft-")),
                ("issue-thread logs (all collections)", lambda i: i.kind == "issue_thread"),
                ("package raise sites (all collections)", lambda i: i.kind == "package_source"),
                ("excluding items seen by the rules", lambda i: not i.seen_by_rules),
                ("fourth collection, excluding items seen by the rules",
                 lambda i: i.id.startswith("ft-") and not i.seen_by_rules),
                ("masked message also in another source", lambda i: i.id in dup),
                ("masked message in no other source", lambda i: i.id not in dup)]
    out = {"all": m}
    for name, sub in subsets:
        mm = metrics(corpus, preds, subset=sub)
        if mm["n"]:
            out[name] = mm
            print(f"  {name:58s} category {mm['accuracy']:.3f} ({mm['correct']}/{mm['n']})  "
                  f"transient {mm['transient_accuracy']:.3f}  abstention {mm['abstention']:.1%}")
    if per_system:
        by_sys: dict[str, list[bool]] = defaultdict(list)
        for it, p in zip(corpus, preds):
            if it.category:
                by_sys[it.system or "?"].append(p.category == it.category)
        rows = sorted(by_sys.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        print("  per system: " + ", ".join(f"{s} {sum(v) / len(v):.2f} ({len(v)})" for s, v in rows))
        out["per_system"] = {s: [sum(v), len(v)] for s, v in rows}
    print()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--save", type=Path, help="folder for the out-of-fold predictions (JSON lines)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    old = prepare(load_rows(CORPUS) + load_rows(EXTRA_CORPUS) + load_rows(ROUND4_CORPUS))
    threads = prepare(load_rows(THREADS_CORPUS))
    project = prepare([dict(r, group=r["source"]) for r in load_rows(PROJECT_SET)])
    print(f"{len(old)} earlier messages, {len(threads)} fourth-collection messages, {len(project)} project-set "
          f"messages; fixed parameters {PARAMS}; prepared in {time.perf_counter() - t0:.0f}s")
    results, saved = {}, {}

    folds, models = fit_folds(old, project, args.folds, args.steps)
    saved["baseline"] = (old, predict(old, folds, models, new_rules=False))
    results["baseline"] = report(*saved["baseline"], "baseline (three collections, rules before round six)")
    folds, models = fit_folds(old, project + threads, args.folds, args.steps)
    saved["threads_in_training"] = (old, predict(old, folds, models, new_rules=False))
    results["threads_in_training"] = report(*saved["threads_in_training"],
                                            "+ fourth collection in every training fold (same folds)")
    corpus = old + threads
    folds, models = fit_folds(corpus, project, args.folds, args.steps)
    saved["threads_cv"] = (corpus, predict(corpus, folds, models, new_rules=False))
    results["threads_cv"] = report(*saved["threads_cv"], "four collections cross-validated, rules before round six")
    saved["round6_rules"] = (corpus, predict(corpus, folds, models, new_rules=True))
    results["round6_rules"] = report(*saved["round6_rules"], "four collections cross-validated, + round-six rules")
    print(f"done in {time.perf_counter() - t0:.0f}s")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for name, (items, preds) in saved.items():
            (args.save / f"{name}.jsonl").write_text("".join(
                json.dumps({"id": it.id, "gold": it.category, "pred": p.category, "transient": p.transient,
                            "confidence": round(p.confidence, 4), "fold": p.fold}) + "\n"
                for it, p in zip(items, preds)))
        (args.save / "summary.json").write_text(json.dumps(
            {k: {n: (v if n == "per_system" else {x: v[x] for x in ("n", "correct", "accuracy", "abstention",
                                                                 "transient_accuracy")})
                 for n, v in r.items()} for k, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
