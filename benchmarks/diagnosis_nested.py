"""Issue 16, twelfth round: what raises grouped-CV category accuracy of the TF-IDF model honestly?

    .venv/bin/python benchmarks/diagnosis_nested.py fit [--candidates base,mg2,gb05] [--cache DIR]
    .venv/bin/python benchmarks/diagnosis_nested.py report [--cache DIR] [--select base,mg2] [--offsets]
    .venv/bin/python benchmarks/diagnosis_nested.py report --mix base,textlr   # geometric mean of two candidates
    .venv/bin/python benchmarks/diagnosis_nested.py report --stack base [--stack-hits]   # learned combiner

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
(mean 1), so a package with 80 raise sites does not outweigh 80 packages; ``cX`` = C X;
``soft`` = also the items the two labelling passes disagree on (of training sources only), once per
pass label at weight 0.5 (never scored); ``textlr`` (alone) = the numpy Adam model
(``crossval`` family ``textlr``).

Issue 16, thirteenth round: ``report --mix A,B`` scores the geometric mean of two cached candidates,
the mixing weight (``crossval.MIX_WEIGHTS``) chosen per outer fold on the inner out-of-fold logits
as ``crossval._fit_ensemble`` does; ``report --stack NAME`` replaces the fixed combination (one rule
weight, temperature, threshold) by a stacked combiner: a multinomial logistic regression on the
model's out-of-fold log-probabilities and the rule scores per class (``--stack-hits``: also one
indicator per rule seen >= 3 times in the training rows), fitted on the training rows' inner
out-of-fold logits; its C and abstention threshold chosen on a grouped 3-fold split of those rows.
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
    THRESHOLDS, Item, Prediction, choose_params, decide, format_confusion, format_metrics, group_folds, load_items,
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
        elif part in ("soft", "textlr"):
            kw[part] = True
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


def disagreements(corpus: Sequence[Item]) -> list[tuple[Item, str]]:
    """(item, label) for each labelling pass of the corpus items without a consensus category."""
    from orchestrator.diagnosis import crossval

    rows = {}
    for path in (crossval.CORPUS, crossval.EXTRA_CORPUS, crossval.ROUND4_CORPUS, crossval.THREADS_CORPUS):
        rows.update((str(r.get("id")), r) for r in crossval.load_rows(path))
    out = []
    for it in corpus:
        if it.category is None:
            for pass_label in ("label_a", "label_b"):
                label = (rows[it.id].get(pass_label) or {}).get("category")
                if label:
                    out.append((it, label))
    return out


def _fit(items, kw: dict, soft_rows: Sequence[tuple[Item, str]] = ()) -> TfidfModel:
    kw = dict(kw)
    kw.pop("analysis", None)
    if kw.pop("textlr", False):
        from orchestrator.diagnosis.crossval import TEXTLR_STEPS, _fit as fit_family
        return fit_family(items, "textlr", steps=TEXTLR_STEPS)
    gb = kw.pop("group_balance", 0.0)
    groups = [i.group for i in items]
    sw = group_weights(groups, gb) if gb else None
    labels = [i.category for i in items]
    if kw.pop("soft", False):  # the disagreement items of these training sources, half weight per pass
        sources = set(groups)
        extra = [(it, label) for it, label in soft_rows if it.group in sources]
        items = list(items) + [it for it, _ in extra]
        labels += [label for _, label in extra]
        groups += [it.group for it, _ in extra]
        sw = (sw or [1.0] * (len(items) - len(extra))) + [0.5] * len(extra)
    return TfidfModel.fit([i.message for i in items], labels,
                          analyses=[i.tfa for i in items], groups=groups, sample_weight=sw, **kw)


def _logits(model, items) -> np.ndarray:
    from orchestrator.diagnosis.crossval import _proba_logits

    return np.stack([np.asarray(_proba_logits(model, i), dtype=np.float64) for i in items])


def fit(args) -> None:
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    corpus, extra = load_items()
    soft_rows = disagreements(corpus)
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
                m = _fit([i for i, gg in zip(train, inner) if gg != g], kw, soft_rows)
                sel = [j for j, gg in enumerate(inner) if gg == g]
                oof[sel] = _logits(m, [train[j] for j in sel])
            m = _fit(train, kw, soft_rows)
            per_fold.append({"train_ids": [(i.id, i.group) for i in train], "oof": oof, "test_idx": test_idx,
                             "test": _logits(m, [corpus[j] for j in test_idx]), "n_features": len(m.vocab_list)})
            print(f"  {name} fold {f}: {time.perf_counter() - t0:.0f}s, {len(m.vocab_list)} features", flush=True)
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


def _log_softmax(z: np.ndarray) -> np.ndarray:
    from scipy.special import log_softmax

    return log_softmax(z, axis=1)


def mixed(data: dict[str, list], a: str, b: str) -> dict[str, list]:
    """Pseudo-candidates ``a~b@w``: the weighted geometric mean of two cached candidates' logits
    (``EnsembleModel.mix``) for every weight of ``crossval.MIX_WEIGHTS``; with ``evaluate`` choosing
    among them per outer fold, the weight is chosen on the inner out-of-fold logits only."""
    from orchestrator.diagnosis.crossval import MIX_WEIGHTS

    out = {}
    for f in range(5):
        if data[a][f]["train_ids"] != data[b][f]["train_ids"] or data[a][f]["test_idx"] != data[b][f]["test_idx"]:
            raise SystemExit(f"{a} and {b} were fitted on different rows (fold {f})")
    for w in sorted(MIX_WEIGHTS, reverse=True):  # ties: the larger weight of the first candidate
        out[f"{a}~{b}@{w}"] = [dict(data[a][f], oof=w * _log_softmax(data[a][f]["oof"]) + (1 - w) * _log_softmax(data[b][f]["oof"]),
                                    test=w * _log_softmax(data[a][f]["test"]) + (1 - w) * _log_softmax(data[b][f]["test"]))
                               for f in range(5)]
    return out


STACK_C = (0.03, 0.1, 0.3, 1.0, 3.0)


def _stack_features(z: np.ndarray, items: Sequence[Item], rule_ids: dict[str, int]) -> np.ndarray:
    """Model log-probabilities (floored as ``combine`` does), rule scores per class and, with
    ``rule_ids``, one indicator per rule."""
    parts = [np.maximum(_log_softmax(z), math.log(MODEL_FLOOR)),
             np.asarray([[it.rules.get(c, 0.0) for c in CATEGORIES] for it in items])]
    if rule_ids:
        hits = np.zeros((len(items), len(rule_ids)))
        for r, it in enumerate(items):
            for h in it.hits:
                if h.rule.name in rule_ids:
                    hits[r, rule_ids[h.rule.name]] = 1.0
        parts.append(hits)
    return np.hstack(parts)


def stacked(corpus, extra, fold_data: list, with_hits: bool):
    """Predictions of the stacked combiner (see the module doc); per fold (C, threshold)."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    def proba(m, X):
        P = np.zeros((len(X), len(CATEGORIES)))
        P[:, m.classes_] = m.predict_proba(X)
        return P

    def decisions(P, tau):
        top = P.argmax(axis=1)
        return np.where(P[np.arange(len(P)), top] < tau, CATEGORIES.index("unknown"), top)

    preds: list = [None] * len(corpus)
    chosen = []
    for f, fd in enumerate(fold_data):
        train = _train_items(corpus, extra, fd)
        seen = Counter(h.rule.name for it in train for h in it.hits)
        rule_ids = {r: k for k, r in enumerate(sorted(r for r, n in seen.items() if n >= 3))} if with_hits else {}
        y = np.asarray([CATEGORIES.index(it.category) for it in train])
        X = _stack_features(fd["oof"], train, rule_ids)
        inner = np.asarray(group_folds([it.group for it in train], 3))
        best = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for C in STACK_C:
                P = np.zeros((len(train), len(CATEGORIES)))
                for g in range(3):
                    m = LogisticRegression(C=C, max_iter=2000).fit(X[inner != g], y[inner != g])
                    P[inner == g] = proba(m, X[inner == g])
                for tau in THRESHOLDS:
                    key = (round(float((decisions(P, tau) == y).mean()), 4), -tau, -C)
                    if best is None or key > best[0]:
                        best = (key, C, tau)
            _, C, tau = best
            m = LogisticRegression(C=C, max_iter=2000).fit(X, y)
        test = [corpus[j] for j in fd["test_idx"]]
        P = proba(m, _stack_features(fd["test"], test, rule_ids))
        chosen.append({"C": C, "threshold": tau})
        for j, it, row, k in zip(fd["test_idx"], test, P, decisions(P, tau)):
            cat = CATEGORIES[k]
            conf = float(row[k]) if row.argmax() == k else 1.0 - float(row.max())
            hits = sorted((h for h in it.hits if h.rule.category == cat), key=lambda h: -h.rule.weight)
            preds[j] = Prediction(cat, conf, _transient(cat, hits, {}), f)
    return preds, chosen


def print_row(corpus, preds, label: str, n_features: str = "", chosen=None, verbose: bool = False) -> None:
    m = metrics(corpus, preds)
    per_fold = []
    for f in range(5):
        idx = [j for j in range(len(corpus)) if preds[j].fold == f and corpus[j].category]
        per_fold.append(sum(preds[j].category == corpus[j].category for j in idx) / len(idx))
    kinds = {k: metrics(corpus, preds, subset=lambda i, k=k: i.kind == k)["accuracy"]
             for k in ("issue_thread", "package_source")}
    print(f"{label:28s} category {m['accuracy']:.3f} "
          f"({m['correct']}/{m['n']})  transient {m['transient_accuracy']:.3f}  abstention "
          f"{m['abstention']:.1%}  ECE {m['ece']:.3f}  threads {kinds['issue_thread']:.3f}  raise "
          f"{kinds['package_source']:.3f}  folds {' '.join(f'{x:.3f}' for x in per_fold)}{n_features}", flush=True)
    if verbose:
        for c in chosen or ():
            print("    ", c)
        print(format_metrics(m))
        print(format_confusion(m))


def report(args) -> None:
    cache = Path(args.cache)
    corpus, extra = load_items()
    names = sorted(p.stem for p in cache.glob("*.pkl"))
    data = {n: pickle.loads((cache / f"{n}.pkl").read_bytes()) for n in names}
    if args.mix or args.stack:
        if args.mix:
            a, b = args.mix.split(",")
            mixes = mixed(data, a, b)
            preds, chosen = evaluate(corpus, extra, mixes, list(mixes), False)
            print_row(corpus, preds, f"{a} x {b}", chosen=chosen, verbose=args.verbose)
            print("    weights chosen per fold:", [c[0].rsplit("@", 1)[1] for c in chosen])
        if args.stack:
            preds, chosen = stacked(corpus, extra, data[args.stack], args.stack_hits)
            print_row(corpus, preds, f"stacked {args.stack}{' +hits' if args.stack_hits else ''}", chosen=chosen,
                      verbose=args.verbose)
            print("    chosen per fold:", chosen)
        return
    rows = [[n] for n in names] + ([args.select.split(",")] if args.select else [])
    for sel in rows:
        for off in ((False, True) if args.offsets else (False,)):
            preds, chosen = evaluate(corpus, extra, data, sel, off)
            feats = [data[sel[0]][f]["n_features"] for f in range(5)]
            print_row(corpus, preds, f"{'|'.join(sel)} offsets={'y' if off else 'n'}",
                      f"  features ~{int(np.mean(feats))}", chosen, args.verbose)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("fit", "report"))
    ap.add_argument("--candidates", default="base")
    ap.add_argument("--cache", default="/tmp/diagnosis_nested")
    ap.add_argument("--select", default="", help="report: also the per-fold selection among these candidates")
    ap.add_argument("--offsets", action="store_true", help="report: also with per-class offsets chosen out of fold")
    ap.add_argument("--mix", default="", help="report: the geometric mean of two cached candidates A,B")
    ap.add_argument("--stack", default="", help="report: a stacked combiner over this cached candidate")
    ap.add_argument("--stack-hits", action="store_true", help="report --stack: also one indicator per rule")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    fit(args) if args.what == "fit" else report(args)


if __name__ == "__main__":
    main()
