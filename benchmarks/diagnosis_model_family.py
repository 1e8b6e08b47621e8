"""Is the statistical model the bottleneck? Model-only grouped CV of other linear model families,
and a learning curve (issue 16, fifth round; figures in orchestrator/diagnosis/README.md).

Needs scikit-learn, which is *not* a project dependency (the shipped model is numpy only):

    python -m venv /tmp/sk && /tmp/sk/bin/pip install scikit-learn numpy
    /tmp/sk/bin/python benchmarks/diagnosis_model_family.py            # families x normalisation (~15 min)
    /tmp/sk/bin/python benchmarks/diagnosis_model_family.py --curve    # learning curve (linear SVM)

Same items, folds (largest source groups first, each to the lightest fold) and training data as
``orchestrator/diagnosis/crossval.py`` (consensus items of the three collections + the project
set minus test groups), but the model alone: no rules, no abstention (argmax). Hyper-parameters
are fixed a priori (C=10 for LR, C=0.3 for the SVM), not tuned on the outer folds.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

try:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_union
    from sklearn.svm import LinearSVC
except ImportError:  # pragma: no cover
    sys.exit("this experiment needs scikit-learn (not a project dependency): see the module docstring")

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
ROWS = [json.loads(x) for f in ("failure_corpus.jsonl", "failure_corpus_extra.jsonl", "failure_corpus_round4.jsonl")
        for x in (DATA / f).read_text(encoding="utf-8").splitlines() if x.strip()]
EXTRA = [dict(json.loads(x), group=json.loads(x)["source"])
         for x in (DATA / "failure_messages.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]

# normalisation 1: f-string fields, %-placeholders, URLs, quoted names, paths and numbers -> tokens
PLACEHOLDERS = [(re.compile(r"\{[^{}\n]{0,80}\}"), " zzfield "), (re.compile(r"%[sdrif]|%\([a-z_]+\)[sdr]"), " zzfield "),
                (re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://\S+"), " zzurl "),
                (re.compile(r"\"[^\"\n]{0,200}\"|'[^'\n]{0,200}'|`[^`\n]{0,200}`"), " zzquoted "),
                (re.compile(r"(?:(?<=\s)|^)(?:~?/|\./)[^\s:,'\"()]+"), " zzpath "),
                (re.compile(r"\b\d+(?:[.,]\d+)*\b"), " zznum ")]


def group_folds(groups, k):
    sizes = Counter(groups)
    load, assign = [0] * k, {}
    for g in sorted(sizes, key=lambda g: (-sizes[g], g)):
        f = min(range(k), key=lambda i: (load[i], i))
        assign[g] = f
        load[f] += sizes[g]
    return [assign[g] for g in groups]


def norm(text, mode):
    if mode >= 1:
        for pat, rep in PLACEHOLDERS:
            text = pat.sub(rep, text)
    if mode >= 2:  # normalisation 2: also split camelCase and snake_case identifiers
        text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ")
    return text.lower()


def fit_predict(train, test, family, mode):
    vec = make_union(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"[a-z][a-z0-9]+"),
                     TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True))
    clf = (LogisticRegression(C=10, class_weight="balanced", max_iter=2000) if family == "lr"
           else LinearSVC(C=0.3, class_weight="balanced"))
    clf.fit(vec.fit_transform([norm(r["message"], mode) for r in train]), [r["category"] for r in train])
    return [str(p) for p in clf.predict(vec.transform([norm(r["message"], mode) for r in test]))]


def cv(family, mode, keep_fraction=1.0, seed=0, k=5):
    folds = group_folds([r["group"] for r in ROWS], k)
    rnd, pred = random.Random(seed), {}
    for f in range(k):
        test_groups = {r["group"] for r, ff in zip(ROWS, folds) if ff == f}
        groups = sorted({r["group"] for r, ff in zip(ROWS, folds) if ff != f})
        rnd.shuffle(groups)
        kept = set(groups[:max(1, int(len(groups) * keep_fraction))])
        train = [r for r, ff in zip(ROWS, folds) if ff != f and r["category"] and r["group"] in kept]
        train += [e for e in EXTRA if e["group"] not in test_groups and e["category"]]
        test = [(i, r) for i, (r, ff) in enumerate(zip(ROWS, folds)) if ff == f and r["category"]]
        for (i, _), p in zip(test, fit_predict(train, [r for _, r in test], family, mode)):
            pred[i] = p
    ok = [pred[i] == ROWS[i]["category"] for i in pred]
    logs = [pred[i] == ROWS[i]["category"] for i in pred if ROWS[i]["kind"] == "issue_thread"]
    swaps = Counter((ROWS[i]["category"], pred[i]) for i in pred if ROWS[i]["category"] != pred[i])
    return float(np.mean(ok)), float(np.mean(logs)), swaps.most_common(3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curve", action="store_true")
    args = ap.parse_args()
    if args.curve:
        for frac in (0.25, 0.5, 0.75, 1.0):
            accs = [cv("svm", 1, frac, seed)[0] for seed in ((0, 1) if frac < 1 else (0,))]
            print(f"training sources {frac:.0%}: model-only category accuracy {np.mean(accs):.3f}", flush=True)
        return
    for mode in (0, 1, 2):
        for family in ("svm", "lr"):
            t0 = time.time()
            acc, logs, swaps = cv(family, mode)
            print(f"{family} normalisation={mode}: category {acc:.3f}, issue-thread logs {logs:.3f} "
                  f"({time.time() - t0:.0f}s); largest swaps {swaps}", flush=True)


if __name__ == "__main__":
    main()
