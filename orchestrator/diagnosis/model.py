"""Compact statistical model for failure categories (numpy only, deterministic).

Multinomial logistic regression over hashed-free sparse features of the normalized signature
(:func:`orchestrator.diagnosis.normalize.normalize`): word unigrams and bigrams plus character
3-5-grams inside words, and message-level typed tokens (exception names, HTTP codes and the
:func:`structured_tokens`: SQLSTATE / vendor / errno / gRPC codes, class-name words, module roots,
where-a-fix-lies marks), log-scaled and normalized per message. Training is full-batch Adam from
zeros with a fixed number of steps and class-balanced sample weights, so the same data always gives
the same weights. No scikit-learn: the project's lock has numpy, and ~1,000 short messages need
nothing more.

The shipped artifact (``model.npz`` next to this file) is written by :meth:`TextModel.save`; it
holds the vocabulary, weights, and the combination parameters fitted by cross-validation
(rule weight, temperature). :func:`load_default` caches it; loading takes a few milliseconds.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.core.graph import shared_ints
from orchestrator.diagnosis.rules import CATEGORIES

ARTIFACT = Path(__file__).with_name("model.npz")
MAX_CHARS = 1200
# a word starts with a letter and has at least 2 characters (one regex pass, no length filter)
_WORD = re.compile(r"[a-z][a-z0-9_]+")


_EXC = re.compile(r"\b([A-Z][A-Za-z0-9]*(?:Error|Exception|Exceeded|Timeout|Denied|Expired|Failure|Fault))\b")
_HTTP = re.compile(r"(?i)(?:http|status|code|error|response)\w*\W{0,3}([1-5]\d\d)\b|"
                   r"\b([1-5]\d\d)\W{0,2}(?:client|server|forbidden|unauthori[sz]ed|not found|too many|bad|"
                   r"internal|service|gateway|conflict|precondition|unprocessable|request)")


_EXC_KEYS = ("Error", "Exception", "Exceeded", "Timeout", "Denied", "Expired", "Failure", "Fault")
_EXC_GATE = re.compile("|".join(_EXC_KEYS))
_DIGITS3 = re.compile(r"[1-5]\d\d")


def words_of(message: str) -> list[str]:
    """The word tokens the model sees: lower-cased, starting with a letter, at least 2 characters."""
    return _WORD.findall((message or "")[:MAX_CHARS].lower())


def word_grams(w: str) -> list[str]:
    """The features one word contributes: character 3-5-grams of `` w `` and ``w:<word>``."""
    p = f" {w} "
    L = len(p)
    grams = [p[i:i + n] for n in (3, 4, 5) for i in range(L - n + 1)]
    grams.append("w:" + w)
    return grams


def typed_tokens(message: str, structured: bool = True) -> list[str]:
    """Message-level features that carry across vendors: exception class names (``x:``, plus their
    suffix ``xs:error`` / ``xs:exception`` ...) and HTTP status codes and classes (``h:403``,
    ``h:4xx``), read from the original case; with ``structured`` (the shipped model, since issue 16's
    seventh round) also :func:`structured_tokens`."""
    out = _name_and_status_tokens(message)
    if structured:
        out += structured_tokens(message)
    return out


def _name_and_status_tokens(message: str) -> list[str]:
    text = (message or "")[:MAX_CHARS]
    out: list[str] = []
    exc = _EXC_GATE.search(text) is not None
    digits = _DIGITS3.search(text) is not None  # both branches of _HTTP need [1-5]\d\d
    if not exc and not digits:
        return out  # neither an exception-like name nor a 3-digit number: nothing to read
    for e in (_EXC.findall(text) if exc else ()):
        low = e.lower()
        out.append("x:" + low)
        for suf in ("error", "exception", "exceeded", "timeout", "denied", "expired", "failure", "fault"):
            if low.endswith(suf):
                out.append("xs:" + suf)
                break
    for m in (_HTTP.finditer(text) if digits else ()):
        code = m.group(1) or m.group(2)
        out.append("h:" + code)
        out.append("h:" + code[0] + "xx")
    return out


# ---------------------------------------------------------------- structured tokens
# Identifiers that vendors document and that carry across products: SQLSTATE codes, vendor error
# codes, errno and gRPC status names, exception class names (split into their words), the root of
# a dotted module path (the driver), and marks of *where* a fix lies (an environment-variable-like
# name, a configuration file, a Python type check, a template placeholder). Every pattern is linear
# (no nested repetition) and runs on at most MAX_CHARS characters.
_SQLSTATE = re.compile(r"\bsql\s?state\W{0,3}([0-9a-z]{5})\b")  # on lower case
_SF_STATE = re.compile(r" \(([0-9a-z]{5})\)")  # Snowflake "002003 (42s02)": six digits before it
_VENDOR = re.compile(r"\b(ORA|PLS|TNS|SQL|MSG|ERR|ERROR|E)[- ](\d{4,6})\b|\[Errno (\d{1,4})\]|"
                     r"\((\d{4}), ['\"]")
_ERRNO_NAME = re.compile(r"\b(E(?:CONNREFUSED|CONNRESET|CONNABORTED|TIMEDOUT|HOSTUNREACH|NETUNREACH|PIPE|"
                         r"NOENT|ACCES|PERM|NOSPC|NOMEM|EXIST|AGAIN|ADDRINUSE|NOTFOUND|AI_AGAIN|"
                         r"NOTDIR|ISDIR|ROFS|DQUOT|MFILE|NFILE|INVAL|BADF|NOTCONN|PROTO))\b")
_GRPC = re.compile(r"\b(UNAVAILABLE|DEADLINE_EXCEEDED|PERMISSION_DENIED|UNAUTHENTICATED|RESOURCE_EXHAUSTED|"
                   r"INVALID_ARGUMENT|NOT_FOUND|ALREADY_EXISTS|FAILED_PRECONDITION|ABORTED|INTERNAL|"
                   r"UNIMPLEMENTED|OUT_OF_RANGE|DATA_LOSS|CANCELLED)\b")
_CLASS = re.compile(r"\b((?:[a-z_][a-z0-9_]*\.){0,6})([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*){1,6})"
                    r"(?=\b|:)")
_CAMEL = re.compile(r"[A-Z][a-z0-9]*")
_MODULE = re.compile(r"\b([a-z_][a-z0-9_]{1,30})\.[a-z_][a-z0-9_]*\.")
_ENVVAR = re.compile(r"\$\{?[A-Z][A-Z0-9_]{2,}|\b[A-Z][A-Z0-9]{1,}(?:_[A-Z0-9]+){1,6}\b")
_CFGFILE = re.compile(r"\.(?:ya?ml|toml|ini|cfg|conf|env|properties|json)\b")
_CFGWORD = re.compile(r"\bprofiles?\b|\bdotenv\b")
_TYPECHECK = re.compile(r"\b(?:must be|expected|expects|got|should be|instance of|not an?|type)\b[^.\n]{0,40}?"
                        r"\b(?:str|string|int|integer|float|bool|boolean|dict|list|tuple|set|bytes|nonetype|"
                        r"callable|sequence|mapping|iterable|none)\b|<class '")
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][\w.\[\]!:]{0,40}\}|\{\}|%[sdrif]\b|%\(\w{1,40}\)[sdr]")
_VERSION = re.compile(r"\bversion\b")
_SEMVER = re.compile(r"\bv?\d+\.\d+\.\d+\b")
_CMP = re.compile(r"[<>=]=\s?\d")
_DIGIT4 = re.compile(r"\d{4}")
_UPPER2 = re.compile(r"[A-Z][A-Z0-9]*_[A-Z0-9]|[A-Z]{4}")
_TYPECHECK_KEYS = ("must be", "expect", "got", "should be", "instance of", "not a", "type", "<class '")
_QUOTED_IDENT = re.compile(r"['\"`][a-z][a-z0-9]*_[a-z0-9_]+['\"`]")


def structured_tokens(message: str) -> list[str]:
    """Typed tokens of documented identifiers and of where a fix lies (see the patterns above):
    ``sq:42p01`` / ``sqc:42`` (SQLSTATE and its class), ``v:ora-00942`` (vendor code), ``en:enoent``
    (errno name, also from ``[Errno 2]``), ``g:deadline_exceeded`` (gRPC status), ``xp:<word>`` (the
    words of an exception-like CamelCase class name), ``m:<root>`` (a dotted module path's root), and
    the marks ``s:envvar``, ``s:cfgfile``, ``s:typecheck``, ``s:placeholder``, ``s:version``,
    ``s:quoted_ident``. Any text gives a list (possibly empty); each pattern is linear-time."""

    text = (message or "")[:MAX_CHARS]
    low = text.lower()
    out: list[str] = []
    if "state" in low:
        for code in _SQLSTATE.findall(low):
            out += ["sq:" + code, "sqc:" + code[:2]]
    if " (" in low:
        for m in _SF_STATE.finditer(low):
            i = m.start()
            if i >= 6 and low[i - 6:i].isdigit() and low[i - 6:i].isascii() and \
                    (i == 6 or not (low[i - 7].isalnum() or low[i - 7] == "_")):
                code = m.group(1)
                out += ["sq:" + code, "sqc:" + code[:2]]
    if "Errno" in text or _DIGIT4.search(text) is not None:
        for m in _VENDOR.finditer(text):
            if m.group(3):
                name = errno.errorcode.get(int(m.group(3)))
                out.append("en:" + name.lower() if name else "en:" + m.group(3))
            elif m.group(4):
                out.append("v:mysql-" + m.group(4))
            else:
                out.append(f"v:{m.group(1).lower()}-{m.group(2)}")
    if _UPPER2.search(text) is not None:
        out += ["en:" + m.lower() for m in _ERRNO_NAME.findall(text)]
        out += ["g:" + m.lower() for m in _GRPC.findall(text)]
        if any(_GRPC.fullmatch(m.group(0)) is None for m in _ENVVAR.finditer(text)):
            out.append("s:envvar")
    elif "${" in text:
        out.append("s:envvar")
    for m in _CLASS.finditer(text):
        parts = _CAMEL.findall(m.group(2))
        if len(parts) >= 2:
            out += ["xp:" + p.lower() for p in parts if len(p) > 1]
        if m.group(1):
            out.append("m:" + m.group(1).split(".", 1)[0])
    dot = "." in text
    if dot:
        out += ["m:" + r for r in _MODULE.findall(text)]
    if (dot and _CFGFILE.search(low) is not None) or \
            (("profile" in low or "dotenv" in low) and _CFGWORD.search(low) is not None):
        out.append("s:cfgfile")
    if any(k in low for k in _TYPECHECK_KEYS) and _TYPECHECK.search(low) is not None:
        out.append("s:typecheck")
    if ("{" in text or "%" in text) and _PLACEHOLDER.search(text) is not None:
        out.append("s:placeholder")
    if ("version" in low and _VERSION.search(low) is not None) or (dot and _SEMVER.search(low) is not None) \
            or ("=" in low and _CMP.search(low) is not None):
        out.append("s:version")
    if _QUOTED_IDENT.search(text) is not None:
        out.append("s:quoted_ident")
    return list(dict.fromkeys(out))


def _scale(c: int) -> float:
    return 1.0 if c == 1 else 1.0 + math.log(c)


def features(message: str, extra: Sequence[str] = (), *, structured: bool = True) -> Counter[str]:
    """Normalized sparse feature vector of one raw message (feature -> value).

    Each distinct word ``w`` occurring ``c`` times adds ``s = 1 + log c`` to each of its features
    (:func:`word_grams`: character 3-5-grams and the word itself), each distinct word bigram
    (``b:``) and typed token (:func:`typed_tokens`) its own ``1 + log c``; the vector is divided by
    ``sqrt(sum of s^2 over every contribution)``. That norm is additive over words, so inference
    can sum one cached logit vector per word (:meth:`TextModel.logits`) and get exactly this
    vector's logits. Tokens start with a letter, so numbers, ids and timestamps drop out; secrets
    are opaque strings the vocabulary never holds. ``extra``: more message-level tokens (experiments,
    e.g. ``benchmarks/diagnosis_variants.py``); ``structured=False``: the feature map before issue
    16's seventh round (no :func:`structured_tokens`), for comparison only: the shipped model and
    :meth:`TextModel.logits` use the default."""
    words = words_of(message)
    feats: Counter[str] = Counter()
    norm2 = 0.0
    for w, c in Counter(words).items():
        s = _scale(c)
        g = word_grams(w)
        norm2 += s * s * len(g)
        for x in g:
            feats[x] += s
    for (a, b), c in Counter(zip(words, words[1:])).items():
        s = _scale(c)
        feats[f"b:{a} {b}"] += s
        norm2 += s * s
    for t, c in Counter([*typed_tokens(message, structured), *extra]).items():
        s = _scale(c)
        feats[t] += s
        norm2 += s * s
    if norm2 > 0:
        inv = 1.0 / math.sqrt(norm2)
        for k in feats:
            feats[k] *= inv
    return feats


def _vectorize(feats: Counter[str], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(vocabulary ids, values) of a :func:`features` vector (out-of-vocabulary features dropped;
    the values stay as normalized over all features)."""
    get = vocab.get
    pairs = [(j, v) for j, v in ((get(f), v) for f, v in feats.items()) if j is not None]
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    pairs.sort()
    return (np.fromiter((j for j, _ in pairs), dtype=np.int64, count=len(pairs)),
            np.fromiter((v for _, v in pairs), dtype=np.float32, count=len(pairs)))


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
        self._words: dict[str, tuple[int, int]] = {}  # word -> (row in _M, n features)
        self._M = np.zeros((0, len(self.classes)), dtype=np.float32)  # per-word summed weight rows
        self._zero = np.zeros(len(self.classes), dtype=np.float32)

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
    def _word_entry(self, w: str) -> tuple[int, int]:
        """(row of ``w`` in the per-word cache matrix: the sum of the weight rows of its
        in-vocabulary features, number of its features)."""
        e = self._words.get(w)
        if e is None:
            g = word_grams(w)
            get = self.vocab.get
            ids = [j for j in map(get, g) if j is not None]
            if len(self._words) >= 200_000:  # a bounded cache: start over
                self._words.clear()
            row = len(self._words)
            if row >= len(self._M):
                grown = np.zeros((max(1024, 2 * len(self._M)), len(self.classes)), dtype=np.float32)
                grown[:len(self._M)] = self._M
                self._M = grown
            self._M[row] = self.W[ids].sum(axis=0) if ids else 0.0
            e = self._words[w] = (row, len(g))
        return e

    def clear_cache(self) -> None:
        """Forget the per-word cache (benchmarks start from a cold or freshly warmed cache)."""
        self._words.clear()

    def warm(self) -> int:
        """Fill the per-word cache for every word of the vocabulary (``w:`` features) at once, so
        the first messages do not pay for it one word at a time. Returns the number of words."""
        words = [f[2:] for f in self.vocab_list if f.startswith("w:")]
        for w in words:
            self._word_entry(w)
        return len(words)

    def _bigram_ids(self) -> dict[tuple[str, str], int]:
        """``(a, b) -> vocabulary id`` of the ``b:a b`` features (no string building per message)."""
        bi = self.__dict__.get("_bi")
        if bi is None:
            bi = self._bi = {tuple(f[2:].split(" ", 1)): j for f, j in self.vocab.items()
                             if f.startswith("b:") and " " in f}
        return bi

    def logits(self, message: str) -> np.ndarray:
        """Class logits of ``message``: exactly ``features(message) . W + b``, computed as a sum of
        cached per-word rows (the normalization of :func:`features` is additive over words)."""
        words = words_of(message)
        typed = typed_tokens(message)
        if not words and not typed:
            return self.b.copy()
        get = self._words.get
        bget = self._bigram_ids().get
        if len(set(words)) == len(words):
            # the common case: every word once, so every bigram once too (scale 1 for both):
            # no Counter, one gather over the per-word cache, weights only for repeated typed tokens
            ents = [get(w) or self._word_entry(w) for w in words]
            norm2 = float(sum([e[1] for e in ents]) + len(words) - 1) if words else 0.0
            z = self._M[[e[0] for e in ents]].sum(axis=0, dtype=np.float64) if ents \
                else np.zeros(len(self.classes), dtype=np.float64)
            frows = [j for j in map(bget, zip(words, words[1:])) if j is not None]
            if typed:
                vget = self.vocab.get
                if len(set(typed)) == len(typed):
                    norm2 += len(typed)
                    frows += [j for j in map(vget, typed) if j is not None]
                else:
                    log = math.log
                    trows, tscale = [], []
                    for f, c in Counter(typed).items():
                        s = 1.0 if c == 1 else 1.0 + log(c)
                        norm2 += s * s
                        j = vget(f)
                        if j is not None:
                            trows.append(j)
                            tscale.append(s)
                    if trows:
                        z += np.dot(tscale, self.W[trows])
            if frows:
                z += self.W[frows].sum(axis=0, dtype=np.float64)
            return z * (1.0 / math.sqrt(norm2)) + self.b
        counts = Counter(words)
        keys = list(counts)
        ents = [get(w) or self._word_entry(w) for w in keys]  # (row in _M, n features) per distinct word
        wrows = [e[0] for e in ents]
        pairs = list(zip(words, words[1:]))
        log = math.log
        norm2 = 0.0
        wscale: list[float] = []
        for e, c in zip(ents, counts.values()):
            s = 1.0 if c == 1 else 1.0 + log(c)
            norm2 += s * s * e[1]
            wscale.append(s)
        frows = []
        fscale: list[float] = []
        for pair, c in Counter(pairs).items():
            s = 1.0 if c == 1 else 1.0 + log(c)
            norm2 += s * s
            j = bget(pair)
            if j is not None:
                frows.append(j)
                fscale.append(s)
        vget = self.vocab.get
        for f, c in Counter(typed).items():
            s = 1.0 if c == 1 else 1.0 + log(c)
            norm2 += s * s
            j = vget(f)
            if j is not None:
                frows.append(j)
                fscale.append(s)
        z = np.dot(wscale, self._M[wrows]) if wrows else self._zero.astype(np.float64)
        if frows:
            z += np.dot(fscale, self.W[frows])
        if norm2 > 0:
            z *= 1.0 / math.sqrt(norm2)
        return z + self.b

    def vector(self, message: str) -> tuple[np.ndarray, np.ndarray]:
        """(feature indices, values) of a message in this model's vocabulary, for explanations
        (:meth:`top_terms`); ``logits`` does not need it."""
        return _vectorize(features(message), self.vocab)

    def reference_logits(self, message: str) -> np.ndarray:
        """The training vector's logits (what :meth:`logits` computes faster)."""
        idx, val = self.vector(message)
        return (val.astype(np.float64) @ self.W[idx] + self.b) if len(idx) else self.b.astype(np.float64)

    def _softmax(self, z: np.ndarray) -> dict[str, float]:
        zl = z.tolist()
        m = max(zl)
        e = [math.exp(v - m) for v in zl]
        t = sum(e)
        return {c: v / t for c, v in zip(self.classes, e)}

    def proba_vector(self, vec: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
        idx, val = vec
        return self._softmax((val @ self.W[idx] + self.b) if len(idx) else self.b.copy())

    def proba(self, message: str) -> dict[str, float]:
        return self._softmax(self.logits(message))

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
    def arrays(self) -> dict[str, np.ndarray]:
        """What :meth:`save` writes (also an :class:`EnsembleModel` member's part of its file)."""
        keys = sorted(self.params)
        return dict(
            vocab=np.asarray(self.vocab_list, dtype=object).astype(str),
            W=self.W.astype(np.float16), b=self.b.astype(np.float32),
            classes=np.asarray(self.classes, dtype=str),
            param_keys=np.asarray(keys, dtype=str),
            param_values=np.asarray([self.params[k] for k in keys], dtype=np.float64),
        )

    def save(self, path: str | Path = ARTIFACT) -> Path:
        path = Path(path)
        np.savez_compressed(path, **self.arrays())
        return path

    @classmethod
    def load(cls, path: str | Path = ARTIFACT) -> TextModel:
        """A :class:`TextModel` artifact (:func:`load_model` reads either kind)."""
        with np.load(Path(path), allow_pickle=False) as z:
            params = dict(zip([str(k) for k in z["param_keys"]], [float(v) for v in z["param_values"]]))
            return cls([str(v) for v in z["vocab"]], z["W"].astype(np.float32), z["b"],
                       params, [str(c) for c in z["classes"]])


# ---------------------------------------------------------------- TF-IDF model (issue 16, tenth round)
# Three TF-IDF blocks, each with sublinear tf (1 + ln count), smoothed idf (ln((1 + n) / (1 + df)) + 1)
# and its own L2 norm over in-vocabulary terms, as scikit-learn's ``TfidfVectorizer`` computes them:
# word 1-2-grams (``_TOKEN`` on the lower-cased text), character 2-5-grams inside white-space
# separated tokens (scikit-learn's ``char_wb``: each token padded with one space, punctuation and
# digits included) and the typed/structured tokens. A multinomial logistic regression over their
# concatenation; training uses scikit-learn (a dev dependency), inference is numpy only.
_TOKEN = re.compile(r"\b[a-z][a-z0-9_]+\b")
CHAR_N = (2, 5)
TFIDF_BLOCKS = ("w", "c", "t")  # word 1-2-grams, char_wb 2-5-grams, typed tokens


def token_char_grams(tok: str) -> list[str]:
    """scikit-learn's ``char_wb`` n-grams (2-5) of one white-space separated, lower-cased token:
    the token padded with a space on each side; a padded token shorter than ``n`` gives itself once
    (and stops there), exactly as ``CountVectorizer._char_wb_ngrams``."""
    w = " " + tok + " "
    L = len(w)
    out = []
    for n in range(CHAR_N[0], CHAR_N[1] + 1):
        if L <= n:
            out.append(w)  # offset 0 only (w[0:n] == w), and no larger n
            break
        out += [w[i:i + n] for i in range(L - n + 1)]
    return out


# identifiers made of several words: snake_case / dotted (``oauth_jwt_key_file``,
# ``fsspec.parquet``), camelCase (``allowSyncMethods``) and CamelCase (``ExecutedAsyncStatement``);
# each starts at a word boundary, so a long run of letters is scanned once (linear time)
_IDENT = re.compile(r"\b(?:[A-Za-z][A-Za-z0-9]*(?:[_.][A-Za-z0-9]+)+|[a-z]+(?:[A-Z][a-z0-9]+)+|"
                    r"(?:[A-Z][a-z0-9]+){2,})")
_IDENT_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_IDENT_GATE = re.compile(r"[A-Za-z0-9][_.][A-Za-z]|[a-z][A-Z]")


def identifier_parts(message: str) -> list[str]:
    """The words of the multi-word identifiers in ``message`` (its first ``MAX_CHARS`` characters),
    lower-cased, at least 2 letters: ``oauth_jwt_key_file`` gives oauth, jwt, key, file. An option or
    class name of a package never seen shares these words with the names and prose of the packages
    trained on (issue 16, twelfth round)."""
    text = (message or "")[:MAX_CHARS]
    if _IDENT_GATE.search(text) is None:
        return []
    out: list[str] = []
    for ident in _IDENT.findall(text):
        parts = _IDENT_PART.findall(ident)
        if len(parts) >= 2:
            out += [w.lower() for w in parts if len(w) >= 2]
    return out


def tfidf_analysis(message: str, subwords: bool = False) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Term counts of the three blocks of ``message`` (the first ``MAX_CHARS`` characters): word
    unigrams + bigrams (``"a b"``), ``char_wb`` 2-5-grams, typed tokens; with ``subwords`` the word
    block also counts :func:`identifier_parts` as unigrams. The reference definition the fast
    inference (:meth:`TfidfModel.logits`) is tested against."""
    text = (message or "")[:MAX_CHARS]
    low = text.lower()
    toks = _TOKEN.findall(low)
    words: Counter[str] = Counter(toks)
    words.update(f"{a} {b}" for a, b in zip(toks, toks[1:]))
    if subwords:
        words.update(identifier_parts(text))
    chars: Counter[str] = Counter()
    for t in low.split():
        chars.update(token_char_grams(t))
    return words, chars, Counter(typed_tokens(text))


class TfidfModel:
    """Multinomial logistic regression over the TF-IDF blocks of :func:`tfidf_analysis`.

    Same inference interface as :class:`TextModel` (``classes``, ``params``, ``logits``, ``proba``,
    ``vector``, ``top_terms``, ``warm``, ``save``); ``vocab_list`` holds block-prefixed terms
    (``w:``, ``c:``, ``t:``), ``idf`` their idf, ``W`` (features x classes) and ``b`` the weights."""

    kind = "tfidf"

    def __init__(self, vocab: Sequence[str], idf: np.ndarray, W: np.ndarray, b: np.ndarray,
                 params: dict[str, float] | None = None, classes: Sequence[str] = CATEGORIES,
                 subwords: bool = False):
        self.classes = tuple(classes)
        self.subwords = bool(subwords)  # the word block counts identifier_parts (artifacts since round 12)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.W = np.asarray(W, dtype=np.float32)
        self.b = np.asarray(b, dtype=np.float64)
        self.params = dict(params or {})
        # the terms are held once, per block: a sensor process keeps the model loaded, and the
        # whole-vocabulary views (explanations, saving, the training-time reference) are built
        # only when asked (about 7 MiB the diagnosis of a few failures never needs)
        # (the feature ids: the process's shared int objects, not 36,000 ints of the model's own)
        self._blk: dict[str, dict[str, int]] = {p: {} for p in TFIDF_BLOCKS}
        for f, i in zip(vocab, shared_ints(len(vocab))):
            self._blk[f[:1]][f[2:]] = i
        self._size = sum(len(terms) for terms in self._blk.values())
        # idf^2 per term (a term's share of its block's squared norm), 8 bytes each, read one at a
        # time as Python floats
        self._idf2 = array("d", (self.idf * self.idf).tobytes())
        self._tok: dict[str, np.ndarray] = {}  # token -> ids of its in-vocabulary char n-grams
        self._empty = np.zeros(0, dtype=np.int64)

    @functools.cached_property
    def vocab_list(self) -> list[str]:
        """The block-prefixed terms by feature id."""
        out = [""] * self._size
        for prefix, terms in self._blk.items():
            for t, i in terms.items():
                out[i] = f"{prefix}:{t}"
        return out

    @functools.cached_property
    def vocab(self) -> dict[str, int]:
        return {f: i for i, f in enumerate(self.vocab_list)}

    @functools.cached_property
    def _Wc(self) -> np.ndarray:  # for explanations
        return self.W - self.W.mean(axis=1, keepdims=True)

    @functools.cached_property
    def _idf_list(self) -> list[float]:
        return self.idf.tolist()

    # ---------------------------------------------------------------- training
    @classmethod
    def fit(cls, messages: Sequence[str], labels: Sequence[str], *, C: float = 10.0, min_df: int = 2,
            max_char_features: int = 60000, class_weight: str | None = None, max_iter: int = 300,
            analyses: Sequence[tuple[Counter, Counter, Counter]] | None = None,
            groups: Sequence[str] | None = None, min_groups: int = 1,
            sample_weight: Sequence[float] | None = None,
            block_scale: dict[str, float] | None = None, subwords: bool = False) -> TfidfModel:
        """Fit on ``messages`` with gold ``labels``. Vocabulary: word terms and char n-grams in at
        least ``min_df`` messages (char n-grams: the ``max_char_features`` most frequent, ties by
        term), every typed token; idf from these messages only. Solver: scikit-learn's
        ``LogisticRegression`` (lbfgs, ``C``, deterministic); the weights are rounded to float16 as
        the artifact stores them, so cross-validation scores exactly what ships."""
        try:
            from scipy.sparse import csr_matrix
            from sklearn.linear_model import LogisticRegression
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("training the diagnosis TF-IDF model needs scikit-learn (a dev dependency: "
                               "pip install -e '.[dev]'); inference needs numpy only") from exc
        an = list(analyses) if analyses is not None else [tfidf_analysis(m, subwords) for m in messages]
        n = len(an)
        vocab: list[str] = []
        dfs: list[int] = []
        for k, prefix in enumerate(TFIDF_BLOCKS):
            df: Counter[str] = Counter()
            tf: Counter[str] = Counter()
            for a in an:
                df.update(a[k].keys())
                if prefix == "c":
                    tf.update(a[k])
            terms = [t for t, c in df.items() if c >= (1 if prefix == "t" else min_df)]
            if min_groups > 1 and groups is not None:
                spread: dict[str, set[str]] = {}
                for a, g in zip(an, groups):
                    for t in a[k]:
                        spread.setdefault(t, set()).add(g)
                terms = [t for t in terms if len(spread[t]) >= min_groups]
            if prefix == "c" and len(terms) > max_char_features:
                terms = sorted(terms, key=lambda t: (-tf[t], t))[:max_char_features]
            terms.sort()
            vocab += [f"{prefix}:{t}" for t in terms]
            dfs += [df[t] for t in terms]
        idf = np.log((1.0 + n) / (1.0 + np.asarray(dfs, dtype=np.float64))) + 1.0
        model = cls(vocab, idf, np.zeros((len(vocab), len(CATEGORIES)), np.float32),
                    np.zeros(len(CATEGORIES)), subwords=subwords)
        rows, cols, vals = [], [], []
        for i, a in enumerate(an):
            ids, v = model.vector_of(a)
            rows += [i] * len(ids)
            cols += ids.tolist()
            vals += v.tolist()
        scale = None
        if block_scale:
            scale = np.ones(len(vocab))
            for prefix, v in block_scale.items():
                scale[[i for i, f in enumerate(vocab) if f.startswith(prefix + ":")]] = v
            vals = (np.asarray(vals) * scale[np.asarray(cols, dtype=np.int64)]).tolist()
        X = csr_matrix((vals, (rows, cols)), shape=(n, len(vocab)), dtype=np.float64)
        y = np.asarray(labels)
        lr = LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter, tol=1e-3, solver="lbfgs")
        lr.fit(X, y, sample_weight=None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64))
        W = np.zeros((len(vocab), len(CATEGORIES)), dtype=np.float64)
        b = np.full(len(CATEGORIES), -30.0)  # a class absent from training: never predicted
        for j, c in enumerate(lr.classes_):
            k = CATEGORIES.index(c)
            if len(lr.classes_) == 2:  # binary: scikit-learn keeps one row for the second class
                sign = 1.0 if j == 1 else -1.0
                W[:, k] = sign * lr.coef_[0] / 2
                b[k] = sign * lr.intercept_[0] / 2
            else:
                W[:, k] = lr.coef_[j]
                b[k] = lr.intercept_[j]
        if scale is not None:  # a block's scale folded into its weight rows: inference is unchanged
            W *= scale[:, None]
        return cls(vocab, idf, W.astype(np.float16).astype(np.float32), b, subwords=subwords)

    # ---------------------------------------------------------------- inference
    def vector_of(self, analysis: tuple[Counter, Counter, Counter]) -> tuple[np.ndarray, np.ndarray]:
        """(feature ids, values) of an analysis (:func:`tfidf_analysis`): per block sublinear tf x
        idf over in-vocabulary terms, L2-normalised per block. The reference for :meth:`logits`."""
        ids_all: list[int] = []
        vals_all: list[float] = []
        for k, prefix in enumerate(TFIDF_BLOCKS):
            get = self._blk[prefix].get
            ids, vals = [], []
            for t, c in analysis[k].items():
                j = get(t)
                if j is not None:
                    ids.append(j)
                    vals.append((1.0 + math.log(c)) * self._idf_list[j])
            if ids:
                inv = 1.0 / math.sqrt(sum(v * v for v in vals))
                ids_all += ids
                vals_all += [v * inv for v in vals]
        ids_arr = np.asarray(ids_all, dtype=np.int64)
        order = np.argsort(ids_arr, kind="stable")
        return ids_arr[order], np.asarray(vals_all, dtype=np.float64)[order]

    def logits_of(self, analysis: tuple[Counter, Counter, Counter]) -> np.ndarray:
        ids, vals = self.vector_of(analysis)
        return (vals @ self.W[ids] + self.b) if len(ids) else self.b.copy()

    _TOKEN_CACHE_MAX = 200_000

    def _token_ids(self, tok: str) -> np.ndarray:
        e = self._tok.get(tok)
        if e is None:
            get = self._blk["c"].get
            ids = [j for j in map(get, token_char_grams(tok)) if j is not None]
            e = np.asarray(ids, dtype=np.int64) if ids else self._empty
            if len(self._tok) >= self._TOKEN_CACHE_MAX:  # a bounded cache: start over
                self._tok.clear()
            self._tok[tok] = e
        return e

    def clear_cache(self) -> None:
        """Forget the per-token cache (benchmarks start from a cold or freshly warmed cache)."""
        self._tok.clear()

    def warm(self) -> int:
        """Fill the per-token cache for the vocabulary's words (so the first messages do not pay for
        them one at a time). Returns the number of tokens cached."""
        for w in self._blk["w"]:
            if " " not in w:
                self._token_ids(w)
        return len(self._tok)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of ``[W * idf | idf^2]`` (float64; per term its weight row times its idf and,
        last column, its share of the squared block norm): one gather gives a message's rows and
        its norm (float64: exact to the reference). Made per message from ``W`` and ``idf``, the
        same values as the rows of the whole product, which is not held (3.7 MiB for the shipped
        model, the largest part of it)."""
        idf = self.idf[ids]
        out = np.empty((len(ids), self.W.shape[1] + 1))
        np.multiply(self.W[ids], idf[:, None], out=out[:, :-1])
        np.multiply(idf, idf, out=out[:, -1])
        return out

    def _block_coefs(self, counts: Counter, get, ids: list[int], coefs: list[float]) -> None:
        """Append the in-vocabulary ids of a word/typed block and their coefficients
        ``(1 + ln tf) / block norm`` (the idf is folded into ``_rows``)."""
        idf2 = self._idf2
        bi, bs = [], []
        n2 = 0.0
        for t, c in counts.items():
            j = get(t)
            if j is not None:
                sc = 1.0 if c == 1 else 1.0 + math.log(c)
                bi.append(j)
                bs.append(sc)
                n2 += sc * sc * idf2[j]
        if bi:
            inv = 1.0 / math.sqrt(n2)
            ids += bi
            coefs += [x * inv for x in bs]

    def _bigram_ids(self) -> dict[tuple[str, str], int]:
        """``(a, b) -> id`` of the word block's bigrams (no string building per message)."""
        bi = self.__dict__.get("_bi")
        if bi is None:
            bi = self._bi = {tuple(t.split(" ", 1)): j for t, j in self._blk["w"].items() if " " in t}
        return bi

    def logits(self, message: str) -> np.ndarray:
        """Class logits of ``message``: exactly ``logits_of(tfidf_analysis(message))`` (tested to
        1e-9 in probability): the word and typed blocks' coefficients in Python, the char block's
        n-gram ids cached per token and their counts merged over the message in numpy, then one
        gather of ``[idf-scaled weight row | idf^2]`` rows for all three blocks (the char block's
        norm from its last column) and one product."""
        text = (message or "")[:MAX_CHARS]
        low = text.lower()
        ids: list[int] = []
        coefs: list[float] = []
        # word 1-2-grams (+ the words of multi-word identifiers)
        toks = _TOKEN.findall(low)
        parts = identifier_parts(text) if self.subwords else None
        if toks or parts:
            wget = self._blk["w"].get
            if not parts and len(set(toks)) == len(toks):  # all distinct (then bigrams too): tf 1 each
                bi = [j for j in map(wget, toks) if j is not None]
                bi += [j for j in map(self._bigram_ids().get, zip(toks, toks[1:])) if j is not None]
                if bi:
                    idf2 = self._idf2
                    inv = 1.0 / math.sqrt(sum([idf2[j] for j in bi]))
                    ids += bi
                    coefs += [inv] * len(bi)
            else:
                cnt = Counter(toks)
                cnt.update([f"{a} {b}" for a, b in zip(toks, toks[1:])])
                if parts:
                    cnt.update(parts)
                self._block_coefs(cnt, wget, ids, coefs)
        # typed tokens
        typed = typed_tokens(text)
        if typed:
            self._block_coefs(Counter(typed), self._blk["t"].get, ids, coefs)
        # char_wb 2-5-grams: cached ids per token, counts merged over the message
        parts = low.split()
        if parts:
            tok = self._tok
            cat = np.concatenate([tok[t] if t in tok else self._token_ids(t) for t in parts])
            n = len(cat)
            if n:
                cat.sort()
                flag = np.empty(n, dtype=bool)
                flag[0] = True
                np.not_equal(cat[1:], cat[:-1], out=flag[1:])
                first = np.flatnonzero(flag)
                nc = len(first)
                if nc == n:  # every n-gram once: tf 1
                    G = self._rows(np.concatenate((cat, ids)) if ids else cat)
                    cc = np.full(n, 1.0 / math.sqrt(float(G[:n, -1].sum())))
                else:
                    cnt = np.empty(nc)
                    np.subtract(first[1:], first[:-1], out=cnt[:-1])
                    cnt[-1] = n - first[-1]
                    tf = np.log(cnt)
                    tf += 1.0
                    G = self._rows(np.concatenate((cat[first], ids)) if ids else cat[first])
                    cc = tf * (1.0 / math.sqrt(float((tf * tf) @ G[:nc, -1])))
                if ids:
                    cc = np.concatenate((cc, coefs))
                return cc @ G[:, :-1] + self.b
        if not ids:
            return self.b.copy()
        return np.dot(coefs, np.ascontiguousarray(self._rows(np.asarray(ids))[:, :-1])) + self.b

    def vector(self, message: str) -> tuple[np.ndarray, np.ndarray]:
        return self.vector_of(tfidf_analysis(message, self.subwords))

    def reference_logits(self, message: str) -> np.ndarray:
        """The reference vector's logits (what :meth:`logits` computes faster)."""
        return self.logits_of(tfidf_analysis(message, self.subwords))

    _softmax = TextModel._softmax
    proba_vector = TextModel.proba_vector
    top_terms = TextModel.top_terms
    top_features = TextModel.top_features

    def proba(self, message: str) -> dict[str, float]:
        return self._softmax(self.logits(message))

    # ---------------------------------------------------------------- persistence
    def arrays(self) -> dict[str, np.ndarray]:
        """What :meth:`save` writes (also an :class:`EnsembleModel` member's part of its file)."""
        keys = sorted(self.params)
        return dict(
            kind=np.asarray(self.kind), vocab=np.asarray(self.vocab_list, dtype=str),
            idf=self.idf.astype(np.float32), W=self.W.astype(np.float16), b=self.b.astype(np.float64),
            classes=np.asarray(self.classes, dtype=str), param_keys=np.asarray(keys, dtype=str),
            param_values=np.asarray([self.params[k] for k in keys], dtype=np.float64),
            subwords=np.asarray(self.subwords),
        )

    def save(self, path: str | Path = ARTIFACT) -> Path:
        path = Path(path)
        np.savez_compressed(path, **self.arrays())
        return path


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    m = z.max()
    return z - (m + math.log(float(np.exp(z - m).sum())))


class EnsembleModel:
    """A weighted geometric mean of member models' probabilities: ``logits = sum_i w_i log p_i``
    (so ``softmax(logits)`` is the normalised product ``prod_i p_i ** w_i``; weights sum to 1).
    Same inference interface as the members; explanations come from the heaviest member."""

    kind = "ensemble"
    # mixing weights of the TF-IDF model (the rest goes to the word-additive TextModel) that the
    # inner cross-validation chooses among (crossval.fit_with_params, family "ensemble")

    def __init__(self, members: Sequence[Any], weights: Sequence[float], params: dict[str, float] | None = None):
        if len(members) != len(weights) or not members:
            raise ValueError("an ensemble needs one weight per member")
        self.members = list(members)
        self.weights = [float(w) for w in weights]
        self.classes = tuple(self.members[0].classes)
        if any(tuple(m.classes) != self.classes for m in self.members):
            raise ValueError("ensemble members must share their classes")
        self.params = dict(params or {})
        self._active = [(w, m) for w, m in zip(self.weights, self.members) if w > 0]
        self._main = max(zip(self.weights, range(len(self.members))))[1]

    @property
    def vocab_list(self) -> list[str]:
        return self.members[self._main].vocab_list

    def mix(self, member_logits: Sequence[np.ndarray]) -> np.ndarray:
        z = np.zeros(len(self.classes))
        for w, zl in zip(self.weights, member_logits):
            if w > 0:
                z += w * _log_softmax(zl)
        return z

    def logits(self, message: str) -> np.ndarray:
        if len(self._active) == 1:
            return self._active[0][1].logits(message)
        z = np.zeros(len(self.classes))
        for w, m in self._active:
            z += w * _log_softmax(m.logits(message))
        return z

    def reference_logits(self, message: str) -> np.ndarray:
        return self.mix([m.reference_logits(message) for m in self.members])

    def proba(self, message: str) -> dict[str, float]:
        return TextModel._softmax(self, self.logits(message))

    def vector(self, message: str) -> tuple[np.ndarray, np.ndarray]:
        return self.members[self._main].vector(message)

    def top_terms(self, vec: tuple[np.ndarray, np.ndarray], category: str, k: int = 12) -> list[str]:
        return self.members[self._main].top_terms(vec, category, k)

    def top_features(self, message: str, category: str, k: int = 3) -> list[str]:
        return self.members[self._main].top_features(message, category, k)

    def warm(self) -> int:
        return sum(m.warm() for m in self.members)

    def clear_cache(self) -> None:
        for m in self.members:
            m.clear_cache()

    def save(self, path: str | Path = ARTIFACT) -> Path:
        path = Path(path)
        arrays: dict[str, np.ndarray] = {"kind": np.asarray(self.kind),
                                         "weights": np.asarray(self.weights, dtype=np.float64)}
        for i, m in enumerate(self.members):
            arrays.update({f"m{i}_{k}": v for k, v in m.arrays().items()})
            arrays[f"m{i}_kind"] = np.asarray(getattr(m, "kind", "textlr"))
        keys = sorted(self.params)
        arrays["param_keys"] = np.asarray(keys, dtype=str)
        arrays["param_values"] = np.asarray([self.params[k] for k in keys], dtype=np.float64)
        arrays["classes"] = np.asarray(self.classes, dtype=str)
        np.savez_compressed(path, **arrays)
        return path


def load_model(path: str | Path = ARTIFACT) -> TextModel | TfidfModel | EnsembleModel:
    """The model stored at ``path``: a :class:`TfidfModel` (``kind`` = tfidf), an
    :class:`EnsembleModel` (``ensemble``) or a :class:`TextModel` (artifacts before issue 16's
    tenth round)."""
    with np.load(Path(path), allow_pickle=False) as z:
        return _model_from({k: z[k] for k in z.files}, path)


def _model_from(z: dict[str, np.ndarray], path: Any) -> Any:
    if True:
        kind = str(z["kind"]) if "kind" in z else "textlr"
        params = dict(zip([str(k) for k in z["param_keys"]], [float(v) for v in z["param_values"]]))
        classes = [str(c) for c in z["classes"]]
        if kind == "ensemble":
            n = len(z["weights"])
            members = [_model_from({k[len(f"m{i}_"):]: v for k, v in z.items() if k.startswith(f"m{i}_")}, path)
                       for i in range(n)]
            return EnsembleModel(members, [float(w) for w in z["weights"]], params)
        if kind == "tfidf":
            return TfidfModel(z["vocab"], z["idf"].astype(np.float64),
                              z["W"].astype(np.float32), z["b"], params, classes,
                              subwords=bool(z["subwords"]) if "subwords" in z else False)
        if kind != "textlr":
            raise ValueError(f"unknown diagnosis model kind {kind!r} in {path}")
        return TextModel([str(v) for v in z["vocab"]], z["W"].astype(np.float32), z["b"], params, classes)


_DEFAULT: dict[str, Any] = {}


def env_get(name: str) -> str | None:
    """``os.environ.get(name)``, answering "not set" from the environment's own dict without the
    mapping's per-call encoding (POSIX; elsewhere, or when set, it is ``os.environ.get``). Asked
    twice per diagnosed message."""
    data = getattr(os.environ, "_data", None) if os.name == "posix" else None
    if isinstance(data, dict):
        key = _ENV_KEYS.get(name)
        if key is None:
            key = _ENV_KEYS[name] = os.fsencode(name)
        if key not in data:
            return None
    return os.environ.get(name)


_ENV_KEYS: dict[str, bytes] = {}


def default_path() -> Path | None:
    """The artifact :func:`load_default` reads: ``ORCHESTRATOR_DIAGNOSIS_MODEL`` if set (None when
    it disables the model), else the shipped ``model.npz``."""
    setting = env_get("ORCHESTRATOR_DIAGNOSIS_MODEL") or ""
    if setting.lower() in ("off", "0", "false", "none"):
        return None
    return Path(setting) if setting else ARTIFACT


def load_default() -> TextModel | TfidfModel | EnsembleModel | None:
    """The shipped model, loaded once; None when disabled (``ORCHESTRATOR_DIAGNOSIS_MODEL=off``)
    or the artifact is missing/unreadable (the rules still work)."""
    setting = env_get("ORCHESTRATOR_DIAGNOSIS_MODEL") or ""
    if setting in _DEFAULT:  # the common case: already resolved for this setting
        return _DEFAULT[setting]
    path = default_path()
    if path is None:
        return None
    key = str(path)
    if key not in _DEFAULT:
        try:
            _DEFAULT[key] = load_model(path)
            _DEFAULT[key].warm()
        except (OSError, ValueError, KeyError) as exc:
            import logging

            logging.getLogger(__name__).warning("diagnosis model %s unavailable (%s); rules only", path, exc)
            _DEFAULT[key] = None
    _DEFAULT[setting] = _DEFAULT[key]
    return _DEFAULT[key]


def iter_corpus_training(rows: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(messages, labels) of the consensus-labelled rows of a corpus."""
    msgs, labels = [], []
    for r in rows:
        if r.get("category"):
            msgs.append(r["message"])
            labels.append(r["category"])
    return msgs, labels


__all__ = ["ARTIFACT", "EnsembleModel", "TextModel", "TfidfModel", "default_path", "features", "load_default",
           "load_model", "tfidf_analysis", "identifier_parts", "iter_corpus_training"]
