"""Issue 16, twelfth round: what raises grouped-CV category accuracy of the TF-IDF model honestly?

    .venv/bin/python benchmarks/diagnosis_nested.py fit [--candidates base,mg2,gb05] [--cache DIR]
    .venv/bin/python benchmarks/diagnosis_nested.py report [--cache DIR] [--select base,mg2] [--misses]

Same items, outer grouped 5-fold folds (``crossval.group_folds``) and training rows as
``bench_diagnosis.py`` (consensus items of the four collections + the project set minus test
sources). ``fit`` computes, per outer fold and per candidate fit setting (``CANDIDATES``):

* out-of-fold model logits of an inner grouped 3-fold split of the training rows (the vocabulary,
  IDF and weights fitted on each inner training part only), and
* the test fold's logits of the candidate refitted on the whole training part,

and stores them (``--cache``), so that ``report`` can score any decision procedure without
refitting. ``report`` chooses everything on the inner out-of-fold logits only, exactly as
``crossval.fit_with_params`` does: the combination parameters (``crossval.choose_params``), the
optional per-class offsets (``--offsets``: :func:`choose_offsets`) and, with ``--select``,
the candidate itself (the one whose whole decision is most accurate out of fold). The test fold
is only predicted. Nothing here reads a test fold to choose anything.

Candidates (``TfidfModel.fit`` arguments): ``base`` = the shipped setting (C 10, plain weights);
``mgN`` = only terms seen in at least N distinct source groups of the training part (a term only
one package uses cannot carry to an unseen package); ``gbA`` = sample weights ``size(group)^-A``
(mean 1), so a package with 80 raise sites does not outweigh 80 packages; ``cX`` = C X.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.diagnosis.classifier import _transient, combine  # noqa: E402
from orchestrator.diagnosis.classifier import MODEL_FLOOR  # noqa: E402
from orchestrator.diagnosis.crossval import (  # noqa: E402
    Item, Prediction, choose_params, decide, format_confusion, format_metrics, group_folds, load_items,
    metrics, pipeline_accuracy,
)
from orchestrator.diagnosis.model import TfidfModel, tfidf_analysis  # noqa: E402
from orchestrator.diagnosis.rules import CATEGORIES  # noqa: E402


def group_weights(groups: Sequence[str], balance: float) -> list[float]:
    """Sample weights ``size(group) ** -balance``, scaled to mean 1: with ``balance`` 1 every source
    weighs the same however many messages it has, with 0 every message does."""
    sizes = Counter(groups)
    w = [sizes[g] ** -balance for g in groups]
    mean = sum(w) / len(w)
    return [x / mean for x in w]


OFFSET_GRID = tuple(x / 4 for x in range(-8, 9))  # -2 .. 2 in steps of 0.25


def _decisions(logp_model, rules, params: dict[str, float]):
    """Vectorised :func:`combine` + :func:`decide` (category index per row; -1 = unknown by
    threshold) for arrays of model log-probabilities and rule scores (rows x classes)."""
    import numpy as np

    z = (np.maximum(logp_model, math.log(MODEL_FLOOR)) + params["rule_weight"] * rules) / params["temperature"]
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    top = p.argmax(axis=1)
    unk = CATEGORIES.index("unknown")
    out = np.where(p[np.arange(len(top)), top] < params["threshold"], unk, top)
    return out


def apply_offsets(z, offsets):
    """Model logits (rows x classes) with per-class offsets added (what :func:`choose_offsets`
    chose; folded into the model's intercepts when the artifact is written)."""
    import numpy as np

    return np.asarray(z) + np.asarray(offsets)[None, :]


def choose_offsets(items: Sequence[Item], oof: Sequence[dict[str, float]], params: dict[str, float],
                   sweeps: int = 2):
    """Per-class additive offsets of the model's logits that maximise the whole decision's accuracy
    on out-of-fold probabilities (coordinate ascent over ``OFFSET_GRID``, ``sweeps`` passes; ties
    keep the smaller offset): a prior correction for classes the model over- or under-predicts on
    sources it has not seen. Chosen on training rows only."""
    import numpy as np

    logz = np.log(np.maximum(np.asarray([[p[c] for c in CATEGORIES] for p in oof]), 1e-300))
    rules = np.asarray([[it.rules.get(c, 0.0) for c in CATEGORIES] for it in items])
    gold = np.asarray([CATEGORIES.index(it.category) for it in items])
    off = np.zeros(len(CATEGORIES))

    def acc(o):
        z = logz + o
        z -= z.max(axis=1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float((_decisions(lp, rules, params) == gold).mean())

    best = acc(off)
    for _ in range(sweeps):
        for k in range(len(CATEGORIES)):
            for v in sorted(OFFSET_GRID, key=abs):
                trial = off.copy()
                trial[k] = v
                a = acc(trial)
                if a > best + 1e-12:
                    best, off = a, trial
    return off


def _cand(name: str) -> dict:
    kw: dict = {}
    for part in name.split("+"):
        if part == "base":
            continue
        if part[:2] in ("ws", "cs", "ts"):
            kw.setdefault("block_scale", {})[{"ws": "w", "cs": "c", "ts": "t"}[part[:2]]] = \
                float("0." + part[3:]) if part[2] == "0" else float(part[2:])
        elif part.startswith("mg"):
            kw["min_groups"] = int(part[2:])
        elif part.startswith("gb"):
            kw["group_balance"] = float("0." + part[3:]) if part[2] == "0" else float(part[2:])
        elif part.startswith("c"):
            kw["C"] = float(part[1:])
        elif part == "bal":
            kw["class_weight"] = "balanced"
        elif part in ANALYSES:
            kw["analysis"] = part
        else:
            raise ValueError(part)
    return kw


_SPLIT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def subword_analysis(text: str):
    """The shipped analysis + the parts of every snake_case / camelCase / dotted identifier as word
    terms (``oauth_jwt_key_file`` adds oauth, jwt, key, file): an option or class name an unseen
    package uses shares its words with names the training packages used."""
    words, chars, typed = tfidf_analysis(text)
    words = Counter(words)
    for ident in _IDENT.findall(text[:1200]):
        parts = [p.lower() for p in _SPLIT.findall(ident)]
        if len(parts) >= 2:
            words.update(p for p in parts if len(p) >= 2)
    return words, chars, typed


_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[_.][A-Za-z0-9]+)+|[a-z]+(?:[A-Z][a-z0-9]+)+|(?:[A-Z][a-z0-9]+){2,}")
ANALYSES = {"sw": subword_analysis, "sx": lambda text: tfidf_analysis(text, subwords=True)}


def _fit(items, kw: dict) -> TfidfModel:
    kw = dict(kw)
    kw.pop("analysis", None)
    gb = kw.pop("group_balance", 0.0)
    groups = [i.group for i in items]
    sw = group_weights(groups, gb) if gb else None
    return TfidfModel.fit([i.message for i in items], [i.category for i in items],
                          analyses=[i.tfa for i in items], groups=groups, sample_weight=sw, **kw)


def _logits(model: TfidfModel, items) -> np.ndarray:
    return np.stack([model.logits_of(i.tfa) for i in items])


def fit(args) -> None:
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    corpus, extra = load_items()
    folds = group_folds([i.group for i in corpus], 5)
    for name in args.candidates.split(","):
        out = cache / f"{name}.pkl"
        if out.exists():
            print(f"{name}: cached")
            continue
        kw = _cand(name)
        an = ANALYSES.get(kw.get("analysis"), None)
        saved = [i.tfa for i in list(corpus) + list(extra)]
        if an is not None:
            from orchestrator.diagnosis.normalize import scrub
            for i in list(corpus) + list(extra):
                i.tfa = an(scrub(i.message))
        t0 = time.perf_counter()
        per_fold = []
        for f in range(5):
            test_groups = {i.group for i, ff in zip(corpus, folds) if ff == f}
            train = [i for i, ff in zip(corpus, folds) if ff != f and i.category]
            train += [e for e in extra if e.group not in test_groups and e.category]
            test_idx = [j for j, ff in enumerate(folds) if ff == f]
            inner = group_folds([i.group for i in train], 3)
            oof = np.zeros((len(train), len(CATEGORIES)))
            for g in range(3):
                m = _fit([i for i, gg in zip(train, inner) if gg != g], kw)
                sel = [j for j, gg in enumerate(inner) if gg == g]
                oof[sel] = _logits(m, [train[j] for j in sel])
            m = _fit(train, kw)
            per_fold.append({"train_ids": [(i.id, i.group) for i in train], "oof": oof, "test_idx": test_idx,
                             "test": _logits(m, [corpus[j] for j in test_idx]), "n_features": len(m.idf)})
            print(f"  {name} fold {f}: {time.perf_counter() - t0:.0f}s, {len(m.idf)} features", flush=True)
        for i, t in zip(list(corpus) + list(extra), saved):
            i.tfa = t
        with out.open("wb") as fh:
            pickle.dump(per_fold, fh)
        print(f"{name}: {time.perf_counter() - t0:.0f}s", flush=True)


def _probs(z: np.ndarray) -> list[dict[str, float]]:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return [dict(zip(CATEGORIES, row.tolist())) for row in p]


def _train_items(corpus, extra, fold_data):
    by_id = {(i.id, i.group): i for i in list(corpus) + list(extra)}
    return [by_id[k] for k in fold_data["train_ids"]]


def _choose(train, oof_z, offsets: bool):
    probs = _probs(oof_z)
    params = choose_params(train, probs)
    off = choose_offsets(train, probs, params) if offsets else None
    if off is not None:
        probs = _probs(apply_offsets(oof_z, off))
        params = choose_params(train, probs)
    return params, off, pipeline_accuracy(train, probs, params)


def evaluate(corpus, extra, data: dict[str, list], names: list[str], offsets: bool):
    """Predictions for every corpus item; per fold the candidate among ``names`` with the best inner
    out-of-fold pipeline accuracy (ties: the first named)."""
    preds: list = [None] * len(corpus)
    chosen = []
    for f in range(5):
        train = _train_items(corpus, extra, data[names[0]][f])
        best = None
        for pos, name in enumerate(names):
            fd = data[name][f]
            params, off, acc = _choose(train, fd["oof"], offsets)
            key = (round(acc, 4), -pos)
            if best is None or key > best[0]:
                best = (key, name, params, off)
        _, name, params, off = best
        fd = data[name][f]
        z = fd["test"] if off is None else apply_offsets(fd["test"], off)
        chosen.append((name, params, None if off is None else {c: round(float(v), 2) for c, v in zip(CATEGORIES, off) if v}))
        for j, p in zip(fd["test_idx"], _probs(z)):
            it = corpus[j]
            pr = combine(it.rules, p, {}, rule_weight=params["rule_weight"], temperature=params["temperature"])
            cat, conf = decide(pr, params["threshold"])
            hits = sorted((h for h in it.hits if h.rule.category == cat), key=lambda h: -h.rule.weight)
            preds[j] = Prediction(cat, conf, _transient(cat, hits, {}), f)
    return preds, chosen


def report(args) -> None:
    cache = Path(args.cache)
    corpus, extra = load_items()
    names = sorted(p.stem for p in cache.glob("*.pkl"))
    data = {n: pickle.loads((cache / f"{n}.pkl").read_bytes()) for n in names}
    rows = [[n] for n in names] + ([args.select.split(",")] if args.select else [])
    for sel in rows:
        for off in ((False, True) if args.offsets else (False,)):
            preds, chosen = evaluate(corpus, extra, data, sel, off)
            m = metrics(corpus, preds)
            per_fold = []
            for f in range(5):
                idx = [j for j in range(len(corpus)) if preds[j].fold == f and corpus[j].category]
                per_fold.append(sum(preds[j].category == corpus[j].category for j in idx) / len(idx))
            kinds = {k: metrics(corpus, preds, subset=lambda i, k=k: i.kind == k)["accuracy"]
                     for k in ("issue_thread", "package_source")}
            feats = [data[sel[0]][f]["n_features"] for f in range(5)]
            print(f"{'|'.join(sel):28s} offsets={'y' if off else 'n'}  category {m['accuracy']:.3f} "
                  f"({m['correct']}/{m['n']})  transient {m['transient_accuracy']:.3f}  abstention "
                  f"{m['abstention']:.1%}  ECE {m['ece']:.3f}  threads {kinds['issue_thread']:.3f}  raise "
                  f"{kinds['package_source']:.3f}  folds {' '.join(f'{x:.3f}' for x in per_fold)}  "
                  f"features ~{int(np.mean(feats))}", flush=True)
            if args.verbose:
                for c in chosen:
                    print("    ", c)
                print(format_metrics(m))
                print(format_confusion(m))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("fit", "report"))
    ap.add_argument("--candidates", default="base")
    ap.add_argument("--cache", default="/tmp/diagnosis_nested")
    ap.add_argument("--select", default="", help="report: also the per-fold selection among these candidates")
    ap.add_argument("--offsets", action="store_true", help="report: also with per-class offsets chosen out of fold")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    fit(args) if args.what == "fit" else report(args)


if __name__ == "__main__":
    main()
