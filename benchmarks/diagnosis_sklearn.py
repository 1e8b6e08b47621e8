"""Issue 16, eighth round: stronger compact linear models from scikit-learn, tuned only inside the
training folds (nested selection), combined with the rules; measured with bench_diagnosis's folds.

    .venv/bin/python benchmarks/diagnosis_sklearn.py [--families lr,svm,sgd] [--misses FILE]

scikit-learn is a dev dependency since issue 16's tenth round (it trains the shipped TF-IDF model,
``model.TfidfModel``, whose inference is numpy). Since then the reference row ("shipped") is the
shipped TF-IDF family with C fixed at 10 (``crossval.cross_validate``); this script measures whether
choosing the family / C / class weighting per fold adds anything. Same items, outer grouped 5-fold folds
(``crossval.group_folds``) and training data as ``bench_diagnosis.py`` (consensus items of the four
collections + the project set minus test sources). Per outer fold:

1. an inner grouped 3-fold split of the training rows gives out-of-fold model probabilities for
   every candidate (family x regularisation x class weighting x feature set); TF-IDF vocabularies
   and IDF are fitted on each inner training part only;
2. for each candidate the combination parameters (rule weight, temperature, abstention threshold)
   are chosen on those OOF probabilities exactly as the shipped pipeline does
   (``crossval.choose_params``), and the candidate with the best OOF accuracy of the whole pipeline
   is selected;
3. the selected candidate is refitted on the whole training part and predicts the test fold.

The reference row ("shipped") runs the shipped pipeline's ``crossval.cross_validate`` on the same
folds (``--no-shipped`` skips it: ``bench_diagnosis.py`` prints the same figures). Candidates are
``candidates()`` over ``FEATS`` / ``LR_C`` / ``SVM_C``; every one is deterministic.

Feature sets (``--feats``): ``wc+typed`` = scikit-learn TF-IDF (sublinear tf, smoothed IDF, each block
L2-normalised) over word 1-2-grams, character 2-5-grams inside word boundaries (``char_wb``, at most
60,000) and the shipped typed/structured tokens; ``project`` = the shipped feature map
(``model.features``) with IDF weights, i.e. the same features as the shipped model and only the
solver / regularisation / class weighting chosen by the inner CV (isolates where a gain comes from).
Findings (issue 16, eighth round): see ``orchestrator/diagnosis/README.md``, "Eighth round".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # BLAS threads only contend on a shared 2-core box
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.diagnosis.classifier import _transient, combine  # noqa: E402
from orchestrator.diagnosis.crossval import (  # noqa: E402
    Prediction, choose_params, cross_validate, decide, format_confusion, format_metrics, group_folds,
    load_items, metrics,
)
from orchestrator.diagnosis.model import typed_tokens  # noqa: E402
from orchestrator.diagnosis.normalize import scrub  # noqa: E402
from orchestrator.diagnosis.rules import CATEGORIES  # noqa: E402

COLLECTIONS = (("fc-", "first collection"), ("fx-", "second collection"), ("fr-", "third collection"),
               ("ft-", "fourth collection (threads)"))


def _typed(text: str) -> list[str]:
    return typed_tokens(text)


class ProjectTfidf:
    """The shipped feature map (``model.features``: word char 3-5-grams, word, bigrams, typed and
    structured tokens; per-word additive normalisation) with each feature weighted by its smoothed
    IDF from the training part only (an OOV feature gets the IDF of df=0). Per-word additive, so the
    numpy inference's per-word cache can compute it exactly (a word's row = sum of idf x weight
    rows, its norm share = sum of idf^2)."""

    def fit_transform(self, texts):
        from orchestrator.diagnosis.model import features

        fs = [features(t) for t in texts]
        df = Counter()
        for f in fs:
            df.update(f.keys())
        n = len(texts)
        self.vocab = {k: i for i, k in enumerate(sorted(k for k, c in df.items() if c >= 2))}
        self.idf = {k: math.log((1 + n) / (1 + df[k])) + 1.0 for k in self.vocab}
        self.idf0 = math.log(1 + n) + 1.0
        return self.transform(texts)

    def _row(self, text):
        from orchestrator.diagnosis.model import _scale, typed_tokens, word_grams, words_of

        words = words_of(text)
        vals: dict[int, float] = {}
        norm2 = 0.0
        get, idf, idf0 = self.vocab.get, self.idf, self.idf0

        def add(feat, s):
            nonlocal norm2
            j = get(feat)
            w = idf[feat] if j is not None else idf0
            norm2 += (s * w) ** 2
            if j is not None:
                vals[j] = vals.get(j, 0.0) + s * w

        for w, c in Counter(words).items():
            for g in word_grams(w):
                add(g, _scale(c))
        for (a, b), c in Counter(zip(words, words[1:])).items():
            add(f"b:{a} {b}", _scale(c))
        for t, c in Counter(typed_tokens(text)).items():
            add(t, _scale(c))
        inv = 1.0 / math.sqrt(norm2) if norm2 > 0 else 0.0
        return {j: v * inv for j, v in vals.items()}

    def transform(self, texts):
        from scipy.sparse import csr_matrix

        rows, cols, data = [], [], []
        for i, t in enumerate(texts):
            for j, v in self._row(t).items():
                rows.append(i)
                cols.append(j)
                data.append(v)
        return csr_matrix((data, (rows, cols)), shape=(len(texts), len(self.vocab)), dtype=np.float64)


def make_vectorizer(feats: str):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    if feats == "project":
        return ProjectTfidf()

    parts = [
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                 lowercase=True, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9_]+\b",
                                 dtype=np.float32)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                 lowercase=True, max_features=60000, dtype=np.float32)),
    ]
    if "typed" in feats:
        parts.append(("typed", TfidfVectorizer(analyzer=_typed, min_df=1, sublinear_tf=True,
                                               lowercase=False, dtype=np.float32)))
    return FeatureUnion(parts)


def make_model(family: str, C: float, balanced: bool):
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.svm import LinearSVC

    cw = "balanced" if balanced else None
    if family == "lr":
        return LogisticRegression(C=C, class_weight=cw, max_iter=300, tol=1e-3, solver="lbfgs")
    if family == "svm":
        return LinearSVC(C=C, class_weight=cw, max_iter=5000, random_state=0)
    if family == "sgd":
        return SGDClassifier(loss="modified_huber", alpha=C, class_weight=cw, max_iter=50, tol=None,
                             random_state=0, average=True)
    raise ValueError(family)


# the grid (kept small: 2 shared cores; each LR fit is ~5-8 s on ~2,000 messages x ~37k features)
FEATS = ("wc+typed",)  # --feats project: the shipped feature map with IDF (numpy-portable)
LR_C = (10.0, 30.0)
SVM_C = (0.1, 0.3)


def candidates(families: list[str]) -> list[tuple[str, str, float, bool]]:
    out = []
    for feats in FEATS:
        for bal in (False, True):
            if "lr" in families:
                out += [("lr", feats, C, bal) for C in LR_C]
            if "svm" in families:
                out += [("svm", feats, C, bal) for C in SVM_C]
            if "sgd" in families:
                out += [("sgd", feats, a, bal) for a in (1e-5, 1e-4)]
    return out


def _probs_from(model, X, family: str) -> np.ndarray:
    """Class probabilities in CATEGORIES order (classes absent from training get ~0)."""
    if family == "lr":
        P = model.predict_proba(X)
    else:
        S = model.decision_function(X)
        # a fixed scale: SVM / huber margins are ~[-1, 1]; the temperature chosen per candidate by
        # choose_params (log-loss on inner OOF) rescales it
        S = S * 4.0
        S = S - S.max(axis=1, keepdims=True)
        P = np.exp(S)
        P /= P.sum(axis=1, keepdims=True)
    out = np.full((X.shape[0], len(CATEGORIES)), 1e-6)
    for j, c in enumerate(model.classes_):
        out[:, CATEGORIES.index(c)] = P[:, j]
    return out / out.sum(axis=1, keepdims=True)


def _fit_predict(cand, tr_texts, tr_y, te_texts, cache):
    family, feats, C, bal = cand
    key = (feats, id(tr_texts))
    if key not in cache:
        vec = make_vectorizer(feats)
        Xtr = vec.fit_transform(tr_texts)
        cache[key] = (vec, Xtr, {})
    vec, Xtr, tcache = cache[key]
    tkey = id(te_texts)
    if tkey not in tcache:
        tcache[tkey] = vec.transform(te_texts)
    model = make_model(family, C, bal).fit(Xtr, tr_y)
    return _probs_from(model, tcache[tkey], family)


def pipeline_acc(items, P, params) -> float:
    ok = 0
    for it, p in zip(items, P):
        pr = combine(it.rules, dict(zip(CATEGORIES, p.tolist())), {}, rule_weight=params["rule_weight"],
                     temperature=params["temperature"])
        ok += decide(pr, params["threshold"])[0] == it.category
    return ok / len(items)


def nested_cv(corpus, extra, families, k=5, inner_k=3, log=print):
    texts = {id(it): scrub(it.message) for it in [*corpus, *extra]}
    folds = group_folds([i.group for i in corpus], k)
    preds: list[Prediction | None] = [None] * len(corpus)
    cands = candidates(families)
    chosen = []
    for f in range(k):
        t0 = time.perf_counter()
        test_groups = {i.group for i, ff in zip(corpus, folds) if ff == f}
        train = [i for i, ff in zip(corpus, folds) if ff != f and i.category]
        train += [e for e in extra if e.group not in test_groups and e.category]
        ifolds = group_folds([i.group for i in train], inner_k)
        oof = {c: np.zeros((len(train), len(CATEGORIES))) for c in cands}
        for g in range(inner_k):
            tr = [it for it, ff in zip(train, ifolds) if ff != g]
            te_idx = [j for j, ff in enumerate(ifolds) if ff == g]
            tr_texts = [texts[id(it)] for it in tr]
            te_texts = [texts[id(train[j])] for j in te_idx]
            cache: dict = {}
            for c in cands:
                oof[c][te_idx] = _fit_predict(c, tr_texts, [it.category for it in tr], te_texts, cache)
        scored = []
        for c in cands:
            probs = [dict(zip(CATEGORIES, p.tolist())) for p in oof[c]]
            params = choose_params(train, probs)
            scored.append((pipeline_acc(train, oof[c], params), c, params))
        scored.sort(key=lambda x: (-x[0], str(x[1])))
        best_acc, best, params = scored[0]
        chosen.append({"candidate": best, "inner_acc": round(best_acc, 4), **params})
        log(f"fold {f}: chose {best} inner pipeline acc {best_acc:.3f} params {params}; "
            f"next best {[(round(a, 3), c) for a, c, _ in scored[1:4]]} ({time.perf_counter() - t0:.0f}s)")
        te = [(j, it) for j, (it, ff) in enumerate(zip(corpus, folds)) if ff == f]
        P = _fit_predict(best, [texts[id(it)] for it in train], [it.category for it in train],
                         [texts[id(it)] for _, it in te], {})
        for (j, it), p in zip(te, P):
            pr = combine(it.rules, dict(zip(CATEGORIES, p.tolist())), {}, rule_weight=params["rule_weight"],
                         temperature=params["temperature"])
            cat, conf = decide(pr, params["threshold"])
            hits = sorted((h for h in it.hits if h.rule.category == cat), key=lambda h: -h.rule.weight)
            preds[j] = Prediction(cat, conf, _transient(cat, hits, {}), f)
    return preds, chosen


def report(title, corpus, preds) -> dict:
    m = metrics(corpus, preds)
    print(format_metrics(m, f"== {title} =="))
    for pre, name in COLLECTIONS:
        mm = metrics(corpus, preds, lambda it, p=pre: it.id.startswith(p))
        print(f"  {name:30s} {mm['accuracy']:.3f} (n={mm['n']}) transient {mm['transient_accuracy']:.3f} "
              f"abstention {mm['abstention']:.1%}")
    for kind in ("issue_thread", "package_source"):
        mm = metrics(corpus, preds, lambda it, k=kind: it.kind == k)
        print(f"  {kind:30s} {mm['accuracy']:.3f} (n={mm['n']}) transient {mm['transient_accuracy']:.3f} "
              f"abstention {mm['abstention']:.1%}")
    print(format_confusion(m))
    print()
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="lr,svm")
    ap.add_argument("--no-shipped", action="store_true", help="skip the shipped pipeline's reference row")
    ap.add_argument("--feats", default="wc+typed", help="wc+typed (scikit-learn TF-IDF word 1-2 + char_wb 2-5 "
                    "+ typed tokens) or project (the shipped feature map with IDF)")
    ap.add_argument("--misses", help="write the out-of-fold misses (jsonl) of the nested run here")
    args = ap.parse_args()
    try:
        import sklearn  # noqa: F401
    except ImportError:
        sys.exit("diagnosis_sklearn.py needs scikit-learn (a dev dependency): pip install -e '.[dev]'")
    global FEATS
    FEATS = tuple(args.feats.split(","))
    corpus, extra = load_items()
    print(f"{len(corpus)} corpus messages, {sum(1 for i in corpus if i.category)} consensus items")
    if not args.no_shipped:
        t0 = time.perf_counter()
        preds, chosen = cross_validate(corpus, extra, k=5, inner_k=3)
        print(f"shipped pipeline CV in {time.perf_counter() - t0:.0f}s, params {chosen}")
        report("shipped pipeline (TF-IDF LR, numpy inference, + rules), grouped CV", corpus, preds)
    t0 = time.perf_counter()
    preds, chosen = nested_cv(corpus, extra, args.families.split(","))
    print(f"nested CV in {time.perf_counter() - t0:.0f}s")
    report("scikit-learn candidates, selected per fold by inner grouped CV, + rules", corpus, preds)
    if args.misses:
        with open(args.misses, "w") as fh:
            for it, p in zip(corpus, preds):
                if it.category and p.category != it.category:
                    fh.write(json.dumps({"id": it.id, "gold": it.category, "pred": p.category,
                                         "conf": round(p.confidence, 3), "system": it.system,
                                         "kind": it.kind, "group": it.group, "message": it.message[:600]}) + "\n")


if __name__ == "__main__":
    main()
