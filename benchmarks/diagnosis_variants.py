"""Issue 16, seventh round: which errors dominate on raise-site items, and do structured features, a
system hint or a hierarchical model move them?

    .venv/bin/python benchmarks/diagnosis_variants.py [--variants base,struct,...] [--steps 60]

Same items, grouped 5-fold folds (``crossval.group_folds``: no source in a training and a test fold)
and training data as ``bench_diagnosis.py`` (consensus items of the four collections + the project
set minus test sources); the model is fitted inside the training folds only. To fit several
variants in one run the combination parameters are fixed a priori at the shipped artifact's values
(rule weight 2, temperature 1, abstention threshold 0.2) instead of re-chosen per fold.

Variants (features are computed from the scrubbed message, as at inference):

* ``base``: the shipped feature map (``model.features``);
* ``struct``: + ``model.structured_tokens`` (SQLSTATE codes, vendor error codes, errno names,
  gRPC status names, exception class names split into words, driver/module roots, env-var-like
  names, config-file paths, Python type names in a type check, placeholders);
* ``system``: + a ``sys:<system>`` token (the origin hint ``diagnose(message, system)`` receives);
* ``idf``: the ``struct`` features weighted by inverse document frequency (from the training fold
  only) and L2-normalised (as scikit-learn's TfidfVectorizer); ``idf-converged``: the same, fully
  class-balanced, 150 Adam steps (closer to the converged LR measured in round five);
* ``hier``: a hierarchical model: a layer model (access / infrastructure / data / program /
  unknown) times a class model within each layer, on the ``struct`` features.

For each it prints the metrics per collection and kind, and the confusion table of the raise-site
items (the first variant's table is the "before" error analysis).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.diagnosis.classifier import _transient, combine  # noqa: E402
from orchestrator.diagnosis.crossval import (  # noqa: E402
    Prediction, _fit, _proba, decide, format_confusion, format_metrics, group_folds, load_items, metrics,
)
from orchestrator.diagnosis.model import features  # noqa: E402
from orchestrator.diagnosis.normalize import scrub  # noqa: E402
from orchestrator.diagnosis.rules import CATEGORIES  # noqa: E402

PARAMS = {"rule_weight": 2.0, "temperature": 1.0, "threshold": 0.2}
COLLECTIONS = (("fc-", "first collection"), ("fx-", "second collection"), ("fr-", "third collection"),
               ("ft-", "fourth collection (threads)"))
LAYER = {"rate_limit": "access", "auth_expired": "access", "permission_denied": "access",
         "source_unavailable": "infra", "destination_capacity": "infra", "resource_exhausted": "infra",
         "upstream_delay": "infra", "schema_drift": "data", "data_quality": "data",
         "code_error": "program", "config_error": "program", "unknown": "unknown"}


def with_feats(items, variant: str):
    from copy import copy

    out = []
    for it in items:
        text = scrub(it.message)
        extra = ["sys:" + it.system.lower()] if variant in ("system", "struct+system") and it.system else []
        f = features(text, extra, structured=variant in ("struct", "hier", "struct+system"))
        c = copy(it)
        c.feats = f
        out.append(c)
    return out


class Hier:
    """p(c) = p(layer(c)) * p(c | layer(c)): one model over layers, one per layer over its classes."""

    def __init__(self, train, **kw):
        from copy import copy

        lay = []
        for it in train:
            c = copy(it)
            c.category = {"access": "rate_limit", "infra": "source_unavailable", "data": "data_quality",
                          "program": "code_error", "unknown": "unknown"}[LAYER[it.category]]  # proxy labels
            lay.append(c)
        self.top = _fit(lay, **kw)
        self.sub = {}
        for layer in ("access", "infra", "data", "program"):
            sub = [it for it in train if LAYER[it.category] == layer]
            self.sub[layer] = _fit(sub, **kw)

    def proba(self, it):
        pt = _proba(self.top, it)
        p_layer = {"access": pt["rate_limit"], "infra": pt["source_unavailable"], "data": pt["data_quality"],
                   "program": pt["code_error"], "unknown": pt["unknown"]}
        out = {"unknown": p_layer["unknown"]}
        for layer, m in self.sub.items():
            ps = _proba(m, it)
            members = [c for c in CATEGORIES if LAYER[c] == layer]
            z = sum(ps[c] for c in members) or 1.0
            for c in members:
                out[c] = p_layer[layer] * ps[c] / z
        return out


def idf_weighted(train, items):
    """Copies of ``items`` whose feature values are multiplied by the inverse document frequency of
    the feature in ``train`` (sklearn's smooth idf; a feature unseen in ``train`` gets the largest)
    and L2-normalised again."""
    from copy import copy
    from math import log, sqrt

    df: Counter = Counter()
    for it in train:
        df.update(it.feats.keys())
    n = len(train)
    out = []
    for it in items:
        f = Counter({k: v * (log((1 + n) / (1 + df[k])) + 1.0) for k, v in it.feats.items()})
        z = sqrt(sum(v * v for v in f.values())) or 1.0
        c = copy(it)
        c.feats = Counter({k: v / z for k, v in f.items()})
        out.append(c)
    return out


def run(corpus, extra, variant: str, k: int, steps: int):
    idf = variant.startswith("idf")
    fit_kw = {"steps": 150, "balance": 1.0} if variant == "idf-converged" else {"steps": steps}
    fit_kw["family"] = "textlr"  # these variants change TextModel's feature map (crossval's default is tfidf)
    if idf:
        variant = "struct"
    corpus = with_feats(corpus, variant)
    extra = with_feats(extra, variant)
    folds = group_folds([i.group for i in corpus], k)
    preds = [None] * len(corpus)
    probas = [None] * len(corpus)
    for f in range(k):
        test_groups = {i.group for i, ff in zip(corpus, folds) if ff == f}
        train = [i for i, ff in zip(corpus, folds) if ff != f and i.category]
        train += [e for e in extra if e.group not in test_groups and e.category]
        test = {j: it for j, (it, ff) in enumerate(zip(corpus, folds)) if ff == f}
        if idf:  # document frequencies from the training fold only
            test = dict(zip(test, idf_weighted(train, list(test.values()))))
            train = idf_weighted(train, train)
        if variant == "hier":
            h = Hier(train, steps=steps, family="textlr")
            proba = h.proba
        else:
            m = _fit(train, **fit_kw)
            proba = (lambda m: lambda it: _proba(m, it))(m)
        for j, it in test.items():
            probas[j] = proba(it)
            preds[j] = combined(it, probas[j], f)
    return corpus, preds, probas


def combined(it, p_model, fold, *, override: float | None = None, **params):
    """The log-linear combination (``classifier.combine``) with the fixed parameters; with
    ``override``, a rule class whose score reaches it is taken as is (rules decide when confident)."""
    kw = dict(PARAMS, **params)
    pr = combine(it.rules, p_model, {}, rule_weight=kw["rule_weight"], temperature=kw["temperature"])
    cat, conf = decide(pr, kw["threshold"])
    if override is not None and it.rules:
        top = max(it.rules, key=lambda c: it.rules[c])
        if it.rules[top] >= override:
            cat, conf = top, max(conf, pr[top])
    hits = sorted((h for h in it.hits if h.rule.category == cat), key=lambda h: -h.rule.weight)
    return Prediction(cat, conf, _transient(cat, hits, {}), fold)


def report(corpus, preds, title, *, per_collection: bool = False):
    m = metrics(corpus, preds)
    print(format_metrics(m, f"== {title}: all consensus items =="))
    subsets = [(name, (lambda p: lambda i: i.id.startswith(p))(prefix)) for prefix, name in COLLECTIONS]
    subsets += [("issue-thread logs", lambda i: i.kind == "issue_thread"),
                ("package raise sites", lambda i: i.kind == "package_source")]
    for name, sub in subsets:
        mm = metrics(corpus, preds, subset=sub)
        print(f"  {name:40s} category {mm['accuracy']:.3f} ({mm['correct']}/{mm['n']})  "
              f"transient {mm['transient_accuracy']:.3f}  abstention {mm['abstention']:.1%}")
    rs = metrics(corpus, preds, subset=lambda i: i.kind == "package_source")
    print("  confusion, package raise sites:")
    print("  " + format_confusion(rs).replace("\n", "\n  "))
    if per_collection:
        for prefix, name in COLLECTIONS:
            mm = metrics(corpus, preds, subset=lambda i, p=prefix: i.id.startswith(p))
            print(f"  confusion, {name}:")
            print("  " + format_confusion(mm).replace("\n", "\n  "))
    # selective accuracy: accuracy on the answered items at a given abstention budget (for reading
    # only: the category figure counts an abstention on a labelled item as a miss)
    known = [(p.confidence if p.category != "unknown" else 0.0, p.category == it.category)
             for it, p in zip(corpus, preds) if it.category and it.category != "unknown"]
    conf = np.array([c for c, _ in known])
    ok = np.array([o for _, o in known])
    for budget in (0.08,):
        cut = np.quantile(conf, budget)
        keep = conf > cut
        print(f"  answered at {budget:.0%} abstention budget (items not labelled unknown): "
              f"accuracy on answered {ok[keep].mean():.3f}")
    print(flush=True)
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="base,struct,system,hier")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--per-collection", action="store_true", help="a confusion table per collection")
    ap.add_argument("--combinations", action="store_true", help="other ways to combine rules and model")
    args = ap.parse_args()
    t0 = time.perf_counter()
    corpus, extra = load_items()
    print(f"{len(corpus)} corpus messages, {len(extra)} project-set messages; fixed parameters {PARAMS}",
          flush=True)
    for v in args.variants.split(","):
        t1 = time.perf_counter()
        items, preds, probas = run(corpus, extra, v, args.folds, args.steps)
        report(items, preds, f"{v} ({time.perf_counter() - t1:.0f}s)", per_collection=args.per_collection)
        if args.combinations:
            for name, kw in (("rule weight 1", {"rule_weight": 1.0}), ("rule weight 3", {"rule_weight": 3.0}),
                             ("rules decide at score >= 3", {"override": 3.0}),
                             ("rules decide at score >= 2", {"override": 2.0})):
                alt = [combined(it, p, pp.fold, **kw) for it, p, pp in zip(items, probas, preds)]
                mm = metrics(items, alt)
                rs = metrics(items, alt, subset=lambda i: i.kind == "package_source")
                print(f"  {v}, {name}: category {mm['accuracy']:.3f}, raise sites {rs['accuracy']:.3f}, "
                      f"abstention {mm['abstention']:.1%}, transient {mm['transient_accuracy']:.3f}")
            print(flush=True)
    print(f"done in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
