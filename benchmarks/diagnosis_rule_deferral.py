"""Rules vs model: which rules help, and should a rule defer to the model when its precision is low?

    .venv/bin/python benchmarks/diagnosis_rule_deferral.py     # ~10 min on the loaded 2-core box

The same grouped 5-fold CV as ``benchmarks/bench_diagnosis.py`` (``crossval.group_folds``, the model
fitted on each training fold only, rule weight / temperature / threshold chosen on an inner grouped
3-fold split of the training fold). The model does not read the rules, so it is fitted once per fold
(and once per inner fold) and every variant below reuses those probabilities; only the rule scores
change. Variants:

* ``catalog before round 10``: the rules of ``ROUND10_RULES`` switched off;
* ``catalog``: every rule at its written weight (what ships);
* ``deferral``: each rule's weight times its precision measured on the fold's *training* items
  (``classifier.rule_reliability``; a rule at or below precision 0.5 defers to the model entirely).

Printed per variant: category accuracy, per-fold accuracy and its spread, transient accuracy,
abstention, ECE, and the accuracy on items no round-10 rule matches (the round's rules were written
from the label guide's definitions after reading cross-validation misses by class pair, so the items
they match are the optimistic part); per class and the confusion table for the shipped catalog.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.diagnosis import crossval as cv  # noqa: E402
from orchestrator.diagnosis.classifier import _score, _transient, combine, rule_reliability  # noqa: E402
from orchestrator.diagnosis.rules import ROUND10_RULES, RULES  # noqa: E402


def fold_probabilities(corpus, extra, k=5, inner_k=3, steps=60):
    folds = cv.group_folds([i.group for i in corpus], k)
    outer = [None] * len(corpus)
    inner = []
    for f in range(k):
        test_groups = {i.group for i, ff in zip(corpus, folds) if ff == f}
        train = [i for i, ff in zip(corpus, folds) if ff != f and i.category]
        train += [e for e in extra if e.group not in test_groups and e.category]
        ifolds = cv.group_folds([i.group for i in train], inner_k)
        oof = [None] * len(train)
        for g in range(inner_k):
            m = cv._fit([i for i, ff in zip(train, ifolds) if ff != g], steps=steps)
            for j, (it, ff) in enumerate(zip(train, ifolds)):
                if ff == g:
                    oof[j] = cv._proba(m, it)
        m = cv._fit(train, steps=steps)
        for j, (it, ff) in enumerate(zip(corpus, folds)):
            if ff == f:
                outer[j] = cv._proba(m, it)
        inner.append((train, oof))
    return folds, outer, inner


def evaluate(corpus, folds, outer, inner, reliability_fn):
    preds = [None] * len(corpus)
    per_fold, chosen = [], []
    for f, (train, oof) in enumerate(inner):
        rel = reliability_fn(train)
        saved = [it.rules for it in train]
        for it in train:
            it.rules = _score(it.hits, it.system, rel)
        params = cv.choose_params(train, oof)
        for it, s in zip(train, saved):
            it.rules = s
        chosen.append(params)
        ok = n = 0
        for j, (it, ff) in enumerate(zip(corpus, folds)):
            if ff != f:
                continue
            pr = combine(_score(it.hits, it.system, rel), outer[j], {}, rule_weight=params["rule_weight"],
                         temperature=params["temperature"])
            cat, conf = cv.decide(pr, params["threshold"])
            live = sorted((h for h in it.hits if h.rule.category == cat and rel.get(h.rule.name, 1.0) > 0),
                          key=lambda h: -h.rule.weight)
            preds[j] = cv.Prediction(cat, conf, _transient(cat, live, {}), f)
            if it.category:
                n += 1
                ok += cat == it.category
        per_fold.append(ok / n)
    return preds, per_fold, chosen


def main() -> None:
    t0 = time.perf_counter()
    corpus, extra = cv.load_items()
    folds, outer, inner = fold_probabilities(corpus, extra)
    print(f"model fitted per fold and inner fold in {time.perf_counter() - t0:.0f}s")
    everything = {r.name: 1.0 for r in RULES}
    before = {r.name: (0.0 if r.name in ROUND10_RULES else 1.0) for r in RULES}
    variants = [
        ("catalog before round 10", lambda tr: before),
        ("catalog (shipped)", lambda tr: everything),
        ("catalog + deferral by fold-measured precision", rule_reliability),
        ("catalog before round 10 + deferral", lambda tr: {k: (0.0 if k in ROUND10_RULES else v)
                                                          for k, v in rule_reliability(tr).items()}),
    ]
    unmatched = lambda i: not any(h.rule.name in ROUND10_RULES for h in i.hits)  # noqa: E731
    shipped = None
    for name, fn in variants:
        preds, per_fold, chosen = evaluate(corpus, folds, outer, inner, fn)
        m = cv.metrics(corpus, preds)
        mu = cv.metrics(corpus, preds, subset=unmatched)
        print(f"\n[{name}] category {m['accuracy']:.4f} ({m['correct']}/{m['n']}); per fold "
              + " ".join(f"{x:.3f}" for x in per_fold) + f" (sd {statistics.pstdev(per_fold):.3f}); transient "
              f"{m['transient_accuracy']:.3f}; abstention {m['abstention']:.1%}; ECE {m['ece']:.3f}; items no "
              f"round-10 rule matches {mu['accuracy']:.4f} (n={mu['n']})")
        print("   inner-CV parameters per fold (rule weight, T, threshold): "
              + ", ".join(f"({p['rule_weight']}, {p['temperature']}, {p['threshold']})" for p in chosen))
        if name.startswith("catalog (shipped)"):
            shipped = m
        if name.startswith("catalog before round 10") and not name.endswith("deferral"):
            print(cv.format_metrics(m))
    if shipped:
        print()
        print(cv.format_metrics(shipped, "== shipped catalog: per class =="))
        print()
        print(cv.format_confusion(shipped))
    print(f"\n{time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
