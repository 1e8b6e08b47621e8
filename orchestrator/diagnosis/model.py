"""Compact statistical model for failure categories (numpy only, deterministic).

Multinomial logistic regression over hashed-free sparse features of the normalized signature
(:func:`orchestrator.diagnosis.normalize.normalize`): word unigrams and bigrams plus character
3-5-grams inside words, log-scaled and L2-normalized per message. Training is full-batch Adam from
zeros with a fixed number of steps and class-balanced sample weights, so the same data always gives
the same weights. No scikit-learn: the project's lock has numpy, and ~1,000 short messages need
nothing more.

The shipped artifact (``model.npz`` next to this file) is written by :meth:`TextModel.save`; it
holds the vocabulary, weights, and the combination parameters fitted by cross-validation
(rule weight, temperature). :func:`load_default` caches it; loading takes a few milliseconds.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.diagnosis.rules import CATEGORIES

ARTIFACT = Path(__file__).with_name("model.npz")
MAX_CHARS = 1200
_WORD = re.compile(r"[a-z][a-z0-9_]*")


def features(message: str) -> Counter[str]:
    """Sparse feature counts of one raw message: word unigrams (``w:``), word bigrams (``b:``) and
    character 3-5-grams inside words (no prefix), lower-cased. Tokens start with a letter, so
    numbers, ids and timestamps drop out; secrets are opaque strings the vocabulary never holds."""
    words = [w for w in _WORD.findall((message or "")[:MAX_CHARS].lower()) if len(w) > 1]
    feats: Counter[str] = Counter()
    grams: list[str] = []
    for w in words:
        p = f" {w} "
        L = len(p)
        grams.extend(p[i:i + 3] for i in range(L - 2))
        grams.extend(p[i:i + 4] for i in range(L - 3))
        grams.extend(p[i:i + 5] for i in range(L - 4))
    feats.update(grams)
    feats.update("w:" + w for w in words)
    feats.update(f"b:{a} {b}" for a, b in zip(words, words[1:]))
    return feats


def _vectorize(feats: Counter[str], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    get = vocab.get
    js = np.array([get(f, -1) for f in feats], dtype=np.int64)
    if len(js) == 0:
        return js, np.zeros(0, dtype=np.float32)
    cs = np.array(list(feats.values()), dtype=np.float32)
    keep = js >= 0
    if not keep.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    v = 1.0 + np.log(cs[keep])
    v /= np.float32(np.sqrt(float(v @ v)))
    return js[keep], v


class TextModel:
    """Multinomial logistic regression over :func:`features` (classes = ``CATEGORIES``)."""

    def __init__(self, vocab: Sequence[str], W: np.ndarray, b: np.ndarray,
                 params: dict[str, float] | None = None, classes: Sequence[str] = CATEGORIES):
        self.classes = tuple(classes)
        self.vocab_list = list(vocab)
        self.vocab = {f: i for i, f in enumerate(self.vocab_list)}
        self.W = np.asarray(W, dtype=np.float32)
        self.b = np.asarray(b, dtype=np.float32)
        self.params = dict(params or {})
        self._Wc = self.W - self.W.mean(axis=1, keepdims=True)  # for explanations
        self._words: dict[str, np.ndarray] = {}  # word -> vocabulary ids of its w:/char features

    # ---------------------------------------------------------------- training
    @classmethod
    def fit(cls, messages: Sequence[str], labels: Sequence[str], *, min_df: int = 2,
            max_features: int = 30000, l2: float = 1e-4, steps: int = 120, lr: float = 0.1,
            balance: float = 0.5, feats: Sequence[Counter[str]] | None = None,
            groups: Sequence[str] | None = None, min_groups: int = 1,
            group_balance: float = 0.0) -> TextModel:
        """Fit on ``messages`` with gold ``labels`` (category names).

        ``balance``: sample weight = (class frequency) ** -balance, normalized to mean 1
        (0 = plain, 1 = fully balanced). ``feats``: precomputed :func:`features` of the messages
        (cross-validation computes them once). Deterministic: no random state anywhere.

        ``groups`` (the source of each message) enable two guards against learning one source's
        idiom: ``min_groups`` keeps only features seen in at least that many distinct sources (an
        identifier of one package cannot become a class cue), and ``group_balance`` down-weights
        messages of large sources (weight *= group size ** -group_balance).
        """
        classes = CATEGORIES
        cidx = {c: i for i, c in enumerate(classes)}
        feats = list(feats) if feats is not None else [features(m) for m in messages]
        df: Counter[str] = Counter()
        for f in feats:
            df.update(f.keys())
        eligible = [f for f, n in df.items() if n >= min_df]
        if groups is not None and min_groups > 1:
            seen: dict[str, set[str]] = {}
            for f, g in zip(feats, groups):
                for k in f:
                    seen.setdefault(k, set()).add(g)
            eligible = [f for f in eligible if len(seen[f]) >= min_groups]
        kept = sorted(eligible, key=lambda f: (-df[f], f))[:max_features]
        kept.sort()
        vocab = {f: i for i, f in enumerate(kept)}
        rows = [_vectorize(f, vocab) for f in feats]
        n, V, C = len(rows), len(kept), len(classes)
        lens = np.asarray([len(r[0]) for r in rows], dtype=np.int64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(lens)
        indices = np.concatenate([r[0] for r in rows]) if n else np.zeros(0, np.int64)
        data = np.concatenate([r[1] for r in rows]) if n else np.zeros(0, np.float32)
        row_of = np.repeat(np.arange(n), lens)
        # gradient w.r.t. W sums over the non-zeros of each feature: group them once
        order = np.argsort(indices, kind="stable")
        f_sorted = indices[order]
        f_starts = np.flatnonzero(np.r_[True, f_sorted[1:] != f_sorted[:-1]]) if len(f_sorted) else f_sorted
        f_ids = f_sorted[f_starts]
        y = np.asarray([cidx[c] for c in labels], dtype=np.int64)
        freq = np.bincount(y, minlength=C).astype(np.float64)
        sw = np.where(freq[y] > 0, freq[y], 1.0) ** (-balance)
        if groups is not None and group_balance:
            gsize = Counter(groups)
            sw = sw * np.asarray([gsize[g] for g in groups], dtype=np.float64) ** (-group_balance)
        sw = (sw / sw.mean()).astype(np.float32)
        Y = np.zeros((n, C), dtype=np.float32)
        Y[np.arange(n), y] = 1.0

        W = np.zeros((V, C), dtype=np.float32)
        b = np.zeros(C, dtype=np.float32)
        mW, vW = np.zeros_like(W), np.zeros_like(W)
        mb, vb = np.zeros_like(b), np.zeros_like(b)
        b1, b2, eps = 0.9, 0.999, 1e-8
        nonempty = lens > 0
        starts = indptr[:-1][nonempty]
        for t in range(1, steps + 1):
            logits = np.tile(b, (n, 1))
            if len(indices):
                logits[nonempty] += np.add.reduceat(data[:, None] * W[indices], starts, axis=0)
            logits -= logits.max(axis=1, keepdims=True)
            P = np.exp(logits)
            P /= P.sum(axis=1, keepdims=True)
            G = (P - Y) * sw[:, None] / n
            gW = l2 * W
            if len(indices):
                contrib = (data[:, None] * G[row_of])[order]
                gW[f_ids] += np.add.reduceat(contrib, f_starts, axis=0)
            gb = G.sum(axis=0)
            mW = b1 * mW + (1 - b1) * gW
            vW = b2 * vW + (1 - b2) * gW * gW
            mb = b1 * mb + (1 - b1) * gb
            vb = b2 * vb + (1 - b2) * gb * gb
            corr1, corr2 = 1 - b1 ** t, 1 - b2 ** t
            W -= lr * (mW / corr1) / (np.sqrt(vW / corr2) + eps)
            b -= lr * (mb / corr1) / (np.sqrt(vb / corr2) + eps)
        return cls(kept, W, b)

    # ---------------------------------------------------------------- inference
    def _word_ids(self, w: str) -> np.ndarray:
        ids = self._words.get(w)
        if ids is None:
            p = f" {w} "
            L = len(p)
            grams = [p[i:i + n] for n in (3, 4, 5) for i in range(L - n + 1)]
            grams.append("w:" + w)
            get = self.vocab.get
            ids = np.array([j for j in (get(g) for g in grams) if j is not None], dtype=np.int64)
            if len(self._words) < 200_000:
                self._words[w] = ids
        return ids

    def vector(self, message: str) -> tuple[np.ndarray, np.ndarray]:
        """(feature indices, weights) of a message in this model's vocabulary; the same vector as
        ``_vectorize(features(message), vocab)``, computed from a per-word cache."""
        words = [w for w in _WORD.findall((message or "")[:MAX_CHARS].lower()) if len(w) > 1]
        if not words:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        get = self.vocab.get
        parts = [self._word_ids(w) for w in words]
        bi = [j for j in (get(f"b:{a} {b}") for a, b in zip(words, words[1:])) if j is not None]
        if bi:
            parts.append(np.array(bi, dtype=np.int64))
        allids = np.concatenate(parts)
        if len(allids) == 0:
            return allids, np.zeros(0, dtype=np.float32)
        idx, counts = np.unique(allids, return_counts=True)
        v = (1.0 + np.log(counts)).astype(np.float32)
        v /= np.float32(np.sqrt(float(v @ v)))
        return idx, v

    def proba_vector(self, vec: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
        idx, val = vec
        z = (val @ self.W[idx] + self.b) if len(idx) else self.b.copy()
        z = np.exp(z - z.max())
        z /= z.sum()
        return dict(zip(self.classes, z.tolist()))

    def logits(self, message: str) -> np.ndarray:
        idx, val = self.vector(message)
        return (val @ self.W[idx] + self.b) if len(idx) else self.b.copy()

    def proba(self, message: str) -> dict[str, float]:
        return self.proba_vector(self.vector(message))

    def top_terms(self, vec: tuple[np.ndarray, np.ndarray], category: str, k: int = 12) -> list[str]:
        """The features of ``vec`` that pushed hardest towards ``category`` (strongest first)."""
        idx, val = vec
        if len(idx) == 0:
            return []
        c = self.classes.index(category)
        contrib = val * self._Wc[idx, c]
        order = np.argsort(-contrib)[:k].tolist()
        ids = idx.tolist()
        vl = self.vocab_list
        return [vl[ids[i]] for i in order if contrib[i] > 0]

    def top_features(self, message: str, category: str, k: int = 3) -> list[str]:
        return self.top_terms(self.vector(message), category, k)

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path = ARTIFACT) -> Path:
        path = Path(path)
        keys = sorted(self.params)
        np.savez_compressed(
            path, vocab=np.asarray(self.vocab_list, dtype=object).astype(str),
            W=self.W.astype(np.float16), b=self.b.astype(np.float32),
            classes=np.asarray(self.classes, dtype=str),
            param_keys=np.asarray(keys, dtype=str),
            param_values=np.asarray([self.params[k] for k in keys], dtype=np.float64),
        )
        return path

    @classmethod
    def load(cls, path: str | Path = ARTIFACT) -> TextModel:
        with np.load(Path(path), allow_pickle=False) as z:
            params = dict(zip([str(k) for k in z["param_keys"]], [float(v) for v in z["param_values"]]))
            return cls([str(v) for v in z["vocab"]], z["W"].astype(np.float32), z["b"],
                       params, [str(c) for c in z["classes"]])


_DEFAULT: dict[str, Any] = {}


def load_default() -> TextModel | None:
    """The shipped model, loaded once; None when disabled (``ORCHESTRATOR_DIAGNOSIS_MODEL=off``)
    or the artifact is missing/unreadable (the rules still work)."""
    setting = os.environ.get("ORCHESTRATOR_DIAGNOSIS_MODEL", "")
    if setting.lower() in ("off", "0", "false", "none"):
        return None
    path = Path(setting) if setting else ARTIFACT
    key = str(path)
    if key not in _DEFAULT:
        try:
            _DEFAULT[key] = TextModel.load(path)
        except (OSError, ValueError, KeyError) as exc:
            import logging

            logging.getLogger(__name__).warning("diagnosis model %s unavailable (%s); rules only", path, exc)
            _DEFAULT[key] = None
    return _DEFAULT[key]


def iter_corpus_training(rows: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(messages, labels) of the consensus-labelled rows of a corpus."""
    msgs, labels = [], []
    for r in rows:
        if r.get("category"):
            msgs.append(r["message"])
            labels.append(r["category"])
    return msgs, labels


__all__ = ["ARTIFACT", "TextModel", "features", "load_default", "iter_corpus_training"]
