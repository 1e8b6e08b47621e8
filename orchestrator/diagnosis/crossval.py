"""Grouped cross-validation of the diagnosis (rules + model), fitting only inside training folds.

Used by ``benchmarks/bench_diagnosis.py``, the tests and :func:`train_artifact` (which writes the
shipped ``model.npz``). A *group* is the public source a message came from (an issue thread, a
doc page, a package): no group is ever on both sides of a split.

Per outer fold: the model is trained on the consensus-labelled training rows (plus the project's
labelled set, ``tests/data/failure_messages.jsonl``, minus any of its rows from a test group);
the combination parameters (rule weight, temperature, abstention threshold) are chosen on
out-of-fold predictions of an inner grouped split of the same training rows. The test fold is
only predicted.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.diagnosis.classifier import _score, _transient, combine
from orchestrator.diagnosis.model import EnsembleModel, TextModel, TfidfModel, features, tfidf_analysis
from orchestrator.diagnosis.normalize import scrub
from orchestrator.diagnosis.rules import CATEGORIES, match_rules

RULE_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
TEMPERATURES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


@dataclass
class Item:
    message: str
    system: str | None
    group: str
    category: str | None  # training/gold label (None: no consensus)
    transient: bool | None = None
    id: str = ""
    kind: str = ""
    seen_by_rules: bool = False
    feats: Counter = field(default_factory=Counter, repr=False)
    rules: dict[str, float] = field(default_factory=dict, repr=False)
    hits: list = field(default_factory=list, repr=False)
    tfa: tuple | None = field(default=None, repr=False)  # tfidf_analysis of the scrubbed text


def prepare(rows: Sequence[dict[str, Any]], *, group_key: str = "group") -> list[Item]:
    items = []
    for r in rows:
        text = scrub(r["message"])
        hits = match_rules(text, r.get("system"))
        items.append(Item(
            message=r["message"], system=r.get("system"), group=str(r.get(group_key) or r.get("source")),
            category=r.get("category"), transient=r.get("transient"), id=str(r.get("id", "")),
            kind=r.get("kind", ""), seen_by_rules=bool(r.get("seen_by_rules")),
            feats=features(text), rules=_score(hits, r.get("system")), hits=hits,
            tfa=tfidf_analysis(text, TFIDF_FIT["subwords"]),
        ))
    return items


def group_folds(groups: Sequence[str], k: int) -> list[int]:
    """Deterministic grouped k-fold: largest groups first, each to the currently lightest fold."""
    sizes = Counter(groups)
    load = [0] * k
    assign: dict[str, int] = {}
    for g in sorted(sizes, key=lambda g: (-sizes[g], g)):
        f = min(range(k), key=lambda i: (load[i], i))
        assign[g] = f
        load[f] += sizes[g]
    return [assign[g] for g in groups]


# the model families: "tfidf" (TfidfModel; training needs scikit-learn), "textlr" (TextModel: the
# numpy Adam LR shipped before issue 16's tenth round) and "ensemble" (their geometric mean, the
# TF-IDF model's weight chosen by the inner split among MIX_WEIGHTS)
FAMILY = "tfidf"
FAMILIES = ("tfidf", "textlr", "ensemble")
MIX_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# the TF-IDF family's fit settings. IDENTIFIER_WORDS (issue 16, twelfth round,
# ``benchmarks/diagnosis_nested.py``): the word block also counts the words of multi-word
# identifiers, and a term enters the vocabulary only if at least two sources use it; grouped CV
# 0.732 -> 0.737 on the same folds, 13% fewer features, but its artifact fails three learning-loop
# tests (see the README, "Twelfth round"), so the shipped artifact keeps the plain setting
# (``bench_diagnosis.py --identifier-words`` cross-validates / trains the other)
PLAIN_FIT: dict[str, Any] = {"subwords": False, "min_groups": 1}
IDENTIFIER_WORDS: dict[str, Any] = {"subwords": True, "min_groups": 2}
TFIDF_FIT: dict[str, Any] = dict(PLAIN_FIT)
TEXTLR_STEPS = 60  # the Adam steps of the textlr family (as shipped before the tenth round)


def _fit(items: Sequence[Item], family: str = FAMILY, **kw: Any) -> TextModel | TfidfModel:
    if family == "tfidf":
        kw.pop("steps", None)  # the textlr family's setting (callers pass it for either family)
        return TfidfModel.fit([i.message for i in items], [i.category for i in items],
                              analyses=[i.tfa for i in items], groups=[i.group for i in items],
                              **{**TFIDF_FIT, **kw})
    if family == "ensemble":
        raise ValueError("the ensemble family is fitted by fit_with_params (its mixing weight needs an inner split)")
    if family != "textlr":
        raise ValueError(f"unknown model family {family!r} (one of {', '.join(FAMILIES)})")
    return TextModel.fit([i.message for i in items], [i.category for i in items],
                         feats=[i.feats for i in items], groups=[i.group for i in items], **kw)


def _proba(model: TextModel | TfidfModel | EnsembleModel, item: Item) -> dict[str, float]:
    import numpy as np

    if isinstance(model, EnsembleModel):
        z = model.mix([_proba_logits(m, item) for m in model.members])
    else:
        z = _proba_logits(model, item)
    z = z - z.max()
    p = np.exp(z)
    p /= p.sum()
    return {c: float(p[i]) for i, c in enumerate(model.classes)}


def _proba_logits(model: TextModel | TfidfModel, item: Item):
    import numpy as np

    from orchestrator.diagnosis.model import _vectorize

    if isinstance(model, TfidfModel):
        return model.logits_of(item.tfa)
    idx, val = _vectorize(item.feats, model.vocab)
    return (val @ model.W[idx] + model.b) if len(idx) else model.b.astype(np.float64)


def decide(probs: dict[str, float], threshold: float) -> tuple[str, float]:
    top = max(probs, key=lambda c: probs[c])
    if top == "unknown":
        return "unknown", probs["unknown"]
    if probs[top] < threshold:
        return "unknown", 1.0 - probs[top]
    return top, probs[top]


def choose_params(items: Sequence[Item], oof: Sequence[dict[str, float]]) -> dict[str, float]:
    """Rule weight (OOF accuracy), temperature (OOF log-loss), threshold (OOF accuracy with
    abstention: right only when the gold label is unknown)."""
    gold = [i.category for i in items]

    def acc_for(a: float) -> tuple[float, float]:
        ok, nll = 0, 0.0
        for it, p, g in zip(items, oof, gold):
            pr = combine(it.rules, p, {}, rule_weight=a, temperature=1.0)
            ok += max(pr, key=lambda c: pr[c]) == g
            nll -= math.log(max(pr.get(g, 0.0), 1e-9))
        return ok / len(items), -nll

    a = max(RULE_WEIGHTS, key=lambda w: acc_for(w))
    best_t, best_nll = 1.0, float("inf")
    for t in TEMPERATURES:
        nll = -sum(math.log(max(combine(it.rules, p, {}, rule_weight=a, temperature=t).get(g, 0.0), 1e-9))
                   for it, p, g in zip(items, oof, gold))
        if nll < best_nll:
            best_t, best_nll = t, nll
    probs = [combine(it.rules, p, {}, rule_weight=a, temperature=best_t) for it, p in zip(items, oof)]

    def acc_tau(tau: float) -> float:
        return sum(decide(pr, tau)[0] == g for pr, g in zip(probs, gold)) / len(items)

    tau = max(THRESHOLDS, key=lambda x: (round(acc_tau(x), 4), -x))
    return {"rule_weight": a, "temperature": best_t, "threshold": tau}


def pipeline_accuracy(items: Sequence[Item], probs: Sequence[dict[str, float]], params: dict[str, float]) -> float:
    """Accuracy of the whole decision (rules + model probabilities, temperature, abstention)."""
    ok = 0
    for it, p in zip(items, probs):
        pr = combine(it.rules, p, {}, rule_weight=params["rule_weight"], temperature=params["temperature"])
        ok += decide(pr, params["threshold"])[0] == it.category
    return ok / len(items) if items else 0.0


def _fit_ensemble(train: Sequence[Item], *, inner_k: int = 3, steps: int = TEXTLR_STEPS,
                  **tfidf_kw: Any) -> EnsembleModel:
    """Both members on an inner grouped split; per mixing weight (``MIX_WEIGHTS``) the combination
    parameters are chosen on the out-of-fold mix (``choose_params``) and the weight whose whole
    decision is most accurate there wins (ties: the larger TF-IDF weight); then both members are
    fitted on all of ``train``."""
    folds = group_folds([i.group for i in train], inner_k)
    zt: list = [None] * len(train)
    zx: list = [None] * len(train)
    for f in range(inner_k):
        tr = [i for i, ff in zip(train, folds) if ff != f]
        mt, mx = _fit(tr, "tfidf", **tfidf_kw), _fit(tr, "textlr", steps=steps)
        for j, (it, ff) in enumerate(zip(train, folds)):
            if ff == f:
                zt[j], zx[j] = _proba_logits(mt, it), _proba_logits(mx, it)
    best = None
    for a in MIX_WEIGHTS:
        mixer = EnsembleModel([mt, mx], [a, 1.0 - a])
        probs = []
        for j in range(len(train)):
            z = mixer.mix([zt[j], zx[j]])
            e = [math.exp(v - z.max()) for v in z.tolist()]
            t = sum(e)
            probs.append({c: v / t for c, v in zip(mixer.classes, e)})
        params = choose_params(train, probs)
        key = (round(pipeline_accuracy(train, probs, params), 4), a)
        if best is None or key > best[0]:
            best = (key, a, params)
    _, a, params = best
    model = EnsembleModel([_fit(train, "tfidf", **tfidf_kw), _fit(train, "textlr", steps=steps)], [a, 1.0 - a],
                          {**params, "mix": a})
    return model


# fit settings the inner split can choose among (``fit_with_params(grid=...)``); the first is the
# shipped one, which wins ties
CLASS_WEIGHT_GRID = ({}, {"class_weight": "balanced"})


def fit_with_params(train: Sequence[Item], *, inner_k: int = 3, grid: Sequence[dict[str, Any]] = (),
                    **fit_kw: Any) -> TextModel:
    """Model on all of ``train`` + combination parameters chosen on an inner grouped split. With a
    ``grid`` of extra fit settings, each is fitted on the same inner split and the one whose whole
    decision (rules + model, parameters chosen as above) is most accurate out of fold is used (its
    position recorded as ``params["grid_choice"]``): a choice made inside the training rows only."""
    if fit_kw.get("family") == "ensemble":
        return _fit_ensemble(train, inner_k=inner_k, **{k: v for k, v in fit_kw.items() if k != "family"})
    folds = group_folds([i.group for i in train], inner_k)
    best = None
    for pos, extra in enumerate(grid or ({},)):
        oof: list[dict[str, float] | None] = [None] * len(train)
        for f in range(inner_k):
            tr = [i for i, ff in zip(train, folds) if ff != f]
            model = _fit(tr, **fit_kw, **extra)
            for j, (it, ff) in enumerate(zip(train, folds)):
                if ff == f:
                    oof[j] = _proba(model, it)
        params = choose_params(train, oof)  # type: ignore[arg-type]
        key = round(pipeline_accuracy(train, oof, params), 4)  # type: ignore[arg-type]
        if best is None or key > best[0]:
            best = (key, pos, extra, params)
    _, pos, extra, params = best
    model = _fit(train, **fit_kw, **extra)
    model.params = {**params, "grid_choice": float(pos)} if grid else params
    return model


@dataclass
class Prediction:
    category: str
    confidence: float
    transient: bool
    fold: int


def cross_validate(corpus: Sequence[Item], extra: Sequence[Item] = (), *, k: int = 5, inner_k: int = 3,
                   **fit_kw: Any) -> tuple[list[Prediction], list[dict[str, float]]]:
    """Out-of-fold predictions for every corpus item (labelled or not) and each fold's params."""
    folds = group_folds([i.group for i in corpus], k)
    preds: list[Prediction | None] = [None] * len(corpus)
    chosen = []
    for f in range(k):
        test_groups = {i.group for i, ff in zip(corpus, folds) if ff == f}
        train = [i for i, ff in zip(corpus, folds) if ff != f and i.category]
        train += [e for e in extra if e.group not in test_groups and e.category]
        model = fit_with_params(train, inner_k=inner_k, **fit_kw)
        chosen.append(dict(model.params))
        for j, (it, ff) in enumerate(zip(corpus, folds)):
            if ff != f:
                continue
            pr = combine(it.rules, _proba(model, it), {}, rule_weight=model.params["rule_weight"],
                         temperature=model.params["temperature"])
            cat, conf = decide(pr, model.params["threshold"])
            hits = sorted((h for h in it.hits if h.rule.category == cat), key=lambda h: -h.rule.weight)
            tr = _transient(cat, hits, {})
            preds[j] = Prediction(cat, conf, tr, f)
    return preds, chosen  # type: ignore[return-value]


def rules_only(corpus: Sequence[Item], threshold: float = 0.5) -> list[Prediction]:
    """The rule catalog alone (the original scoring), for comparison; nothing is fitted."""
    from orchestrator.diagnosis.classifier import diagnose

    out = []
    for it in corpus:
        d = diagnose(it.message, it.system, None, threshold=threshold, model=None)
        out.append(Prediction(d.category, d.confidence, d.transient, -1))
    return out


# ------------------------------------------------------------------------------- metrics
def metrics(corpus: Sequence[Item], preds: Sequence[Prediction], subset=None) -> dict[str, Any]:
    idx = [j for j, it in enumerate(corpus) if it.category and (subset is None or subset(it))]
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for j in idx:
        g, p = corpus[j].category, preds[j].category
        confusion[g][p] += 1
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    rows = {}
    for c in CATEGORIES:
        support, predicted = tp[c] + fn[c], tp[c] + fp[c]
        rows[c] = {"support": support, "correct": tp[c],
                   "precision": tp[c] / predicted if predicted else None,
                   "recall": tp[c] / support if support else None}
    known = [j for j in idx if corpus[j].category != "unknown"]
    abstained = sum(preds[j].category == "unknown" for j in known)
    tidx = [j for j, it in enumerate(corpus) if it.transient is not None and (subset is None or subset(it))]
    t_ok = sum(preds[j].transient == corpus[j].transient for j in tidx)
    # calibration: expected calibration error of the confidence of non-abstained answers
    bins: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for j in idx:
        if preds[j].category != "unknown":
            bins[min(9, int(preds[j].confidence * 10))].append((preds[j].confidence,
                                                                  preds[j].category == corpus[j].category))
    answered = sum(len(v) for v in bins.values())
    ece = sum(abs(sum(c for c, _ in v) / len(v) - sum(o for _, o in v) / len(v)) * len(v)
              for v in bins.values()) / answered if answered else 0.0
    correct = sum(tp.values())
    return {
        "n": len(idx), "correct": correct, "accuracy": correct / len(idx) if idx else 0.0,
        "abstention": abstained / len(known) if known else 0.0, "n_known": len(known),
        "transient_n": len(tidx), "transient_accuracy": t_ok / len(tidx) if tidx else 0.0,
        "ece": ece, "rows": rows, "confusion": {g: dict(c) for g, c in confusion.items()},
    }


def format_metrics(m: dict[str, Any], title: str = "") -> str:
    def f(x):
        return "  -  " if x is None else f"{x:5.2f}"

    out = [title] if title else []
    out.append(f"{'category':22s} {'n':>4s} {'ok':>4s} {'prec':>6s} {'recall':>6s}")
    for c, r in m["rows"].items():
        if r["support"] == 0 and r["precision"] is None:
            continue
        out.append(f"{c:22s} {r['support']:4d} {r['correct']:4d} {f(r['precision']):>6s} {f(r['recall']):>6s}")
    out.append(f"category accuracy {m['accuracy']:.3f} ({m['correct']}/{m['n']}), "
               f"abstention {m['abstention']:.1%} of {m['n_known']} not labelled unknown, "
               f"transient accuracy {m['transient_accuracy']:.3f} (n={m['transient_n']}), ECE {m['ece']:.3f}")
    return "\n".join(out)


def format_confusion(m: dict[str, Any]) -> str:
    short = {c: c[:6] for c in CATEGORIES}
    cols = [c for c in CATEGORIES if any(c in row for row in m["confusion"].values())]
    out = ["gold \\ predicted      " + " ".join(f"{short[c]:>6s}" for c in cols)]
    for g in CATEGORIES:
        if g not in m["confusion"]:
            continue
        row = m["confusion"][g]
        out.append(f"{g:22s} " + " ".join(f"{row.get(c, 0):6d}" if row.get(c) else f"{'.':>6s}" for c in cols))
    return "\n".join(out)


# ------------------------------------------------------------------------------- data + artifact
ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "failure_corpus.jsonl"
# second collection (other sources, one labelling pass by the written rubric): see its README section
EXTRA_CORPUS = ROOT / "tests" / "data" / "failure_corpus_extra.jsonl"
# third collection (issue 16, round 4): raise sites of 23 more packages, two labelling passes
ROUND4_CORPUS = ROOT / "tests" / "data" / "failure_corpus_round4.jsonl"
# fourth collection (issue 16, round 6): runtime logs from public issue threads, two labelling passes
THREADS_CORPUS = ROOT / "tests" / "data" / "failure_corpus_threads.jsonl"
# collected last, never used for training or for choosing anything: only `bench_diagnosis.py --heldout`
HELDOUT = ROOT / "tests" / "data" / "failure_heldout.jsonl"
PROJECT_SET = ROOT / "tests" / "data" / "failure_messages.jsonl"


def load_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def load_items(*, extra_corpus: bool = True, round4: bool = True,
               threads: bool = True) -> tuple[list[Item], list[Item]]:
    """(corpus items, project labelled set as extra training items grouped by source).

    ``extra_corpus``: also the second collection (``failure_corpus_extra.jsonl``, ids ``fx-``) as
    corpus items (cross-validated like the first; its groups are other sources). The held-out set
    is never loaded here. ``round4``: also the third collection (``failure_corpus_round4.jsonl``,
    ids ``fr-``; consensus items of its two passes). ``threads``: also the fourth collection
    (``failure_corpus_threads.jsonl``, ids ``ft-``: runtime logs from issue threads, two passes)."""
    rows = load_rows(CORPUS)
    if extra_corpus and EXTRA_CORPUS.exists():
        rows += load_rows(EXTRA_CORPUS)
    if round4 and ROUND4_CORPUS.exists():
        rows += load_rows(ROUND4_CORPUS)
    if threads and THREADS_CORPUS.exists():
        rows += load_rows(THREADS_CORPUS)
    corpus = prepare(rows)
    extra = prepare([dict(r, group=r["source"]) for r in load_rows(PROJECT_SET)])
    return corpus, extra


def train_artifact(path: Path | None = None, **fit_kw: Any) -> TextModel:
    """Fit the shipped model on every consensus item (all collections) + the project set and save
    it. The held-out set (``HELDOUT``) is not read."""
    corpus, extra = load_items()
    train = [i for i in corpus if i.category] + [e for e in extra if e.category]
    model = fit_with_params(train, **fit_kw)
    model.save(path) if path else model.save()
    return model


__all__ = ["CLASS_WEIGHT_GRID", "FAMILIES", "Item", "Prediction", "choose_params", "cross_validate", "decide", "fit_with_params",
           "format_confusion", "format_metrics", "group_folds", "load_items", "metrics", "prepare",
           "rules_only", "train_artifact"]
