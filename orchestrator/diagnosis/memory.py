"""Failure memory over the project store (pure Python + SQLAlchemy, no dagster).

Keeps normalized failure signatures, every occurrence, the resolutions tried and whether they
worked. New failures are matched to the nearest past signatures with a lexical similarity that
needs no model: TF-IDF cosine over word unigrams+bigrams of the normalized signature, blended
with TF-IDF cosine over character 4-grams (robust to identifiers glued to words). When
``ORCHESTRATOR_EMBEDDINGS_MODEL`` is set (and ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` point at an
OpenAI-compatible endpoint) signature embeddings are blended in: similarity is
``max(lexical, 0.35 * lexical + 0.65 * cosine)``, so embeddings can find a paraphrase with no
word in common but never hide a lexical match. Only normalized, scrubbed signatures are sent.
Signatures stored without an embedding of the configured model (recorded before embeddings were
on, while the endpoint was down, or under another model) are embedded when the index loads. Any
embedding failure (error, timeout: ``ORCHESTRATOR_EMBEDDINGS_TIMEOUT`` seconds, default 10)
falls back to lexical only for the rest of that memory object's life.

What it learns from:
- ``record(..., source="label")``: a human/curated label for a message;
- ``record_resolution(...)``: an executed resolution and whether it worked (a resolution that
  worked confirms the category; one that failed is counted for success rates only);
- ``learn_from_approval(...)``: an operator approved (confirms) or rejected a proposal;
- ``observe(...)``: automatic diagnoses are counted as occurrences but never reinforce labels
  (no self-training on the classifier's own guesses).
"""

from __future__ import annotations

from contextlib import nullcontext

import logging
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from orchestrator.diagnosis.normalize import (
    char_ngrams,
    normalize,
    scrub,
    scrub_pii,
    signature_hash,
    tokens,
)
from orchestrator.diagnosis.rules import CATEGORIES
from orchestrator.store import FailureOccurrence, FailureSignature, Resolution, Store, open_store
from orchestrator.store.models import utcnow

log = logging.getLogger(__name__)

# How much each kind of evidence counts towards a signature's category label.
SOURCE_WEIGHT: dict[str, float] = {
    "label": 1.0,
    "approval": 1.5,
    "resolution": 1.0,
    "observed": 0.0,
}
MAX_MESSAGE_CHARS = 4000


@dataclass(frozen=True)
class Neighbour:
    signature_id: int
    signature: str
    category: str | None
    similarity: float
    label_weight: float
    occurrences: int
    transient: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "signature_id": self.signature_id,
            "category": self.category,
            "similarity": round(self.similarity, 4),
            "label_weight": self.label_weight,
            "occurrences": self.occurrences,
        }


# --------------------------------------------------------------------------- lexical index
def _content_tokens(sig: str) -> list[str]:
    # Placeholders (<q>, <num>, ...) say nothing about the cause; drop them with 1-char tokens.
    return [t for t in tokens(sig) if not t.startswith("<") and len(t) > 1]


def _word_features(sig: str) -> Counter[str]:
    toks = _content_tokens(sig)
    feats = Counter(toks)
    feats.update(f"{a} {b}" for a, b in zip(toks, toks[1:]))
    return feats


def _char_features(sig: str) -> Counter[str]:
    # character 4-grams of the words only (punctuation and JSON structure are not evidence)
    return Counter(char_ngrams(" ".join(_content_tokens(sig)), 4))


class _TfIdf:
    """Tiny TF-IDF (sublinear tf, smoothed idf, L2-normalized) with sparse dict vectors."""

    def __init__(self, docs: list[Counter[str]]):
        self.n = len(docs)
        df: Counter[str] = Counter()
        for d in docs:
            df.update(d.keys())
        self.df = df
        self.vectors = [self.vectorize(d) for d in docs]

    def idf(self, term: str) -> float:
        # smoothed idf (as scikit-learn): stable for a memory of one signature or of thousands
        return math.log((self.n + 1) / (self.df.get(term, 0) + 1)) + 1.0

    def vectorize(self, feats: Counter[str]) -> dict[str, float]:
        vec = {t: (1.0 + math.log(c)) * self.idf(t) for t, c in feats.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {t: v / norm for t, v in vec.items()}


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())


def lexical_similarity(a: str, b: str) -> float:
    """Similarity of two raw messages (normalized first), 0..1. Handy for tests and tooling."""
    sa, sb = normalize(a), normalize(b)

    def unit(c: Counter[str]) -> dict[str, float]:
        n = math.sqrt(sum(v * v for v in c.values())) or 1.0
        return {k: v / n for k, v in c.items()}

    return 0.6 * _cosine(unit(_word_features(sa)), unit(_word_features(sb))) + 0.4 * _cosine(
        unit(_char_features(sa)), unit(_char_features(sb))
    )


# --------------------------------------------------------------------------- embeddings
class _Embedder:
    """Optional embeddings through the ``openai`` SDK to any OpenAI-compatible endpoint."""

    BATCH = 128

    def __init__(self, model: str, timeout: float = 10.0):
        self.model = model
        self.timeout = timeout
        self._client = None
        self.disabled = False

    @classmethod
    def from_env(cls) -> _Embedder | None:
        model = os.environ.get("ORCHESTRATOR_EMBEDDINGS_MODEL")
        if not model or not (os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY")):
            return None
        try:
            timeout = float(os.environ.get("ORCHESTRATOR_EMBEDDINGS_TIMEOUT") or 10.0)
        except ValueError:
            timeout = 10.0
        return cls(model, timeout)

    def embed(self, texts: list[str]) -> list[list[float]] | None:
        if self.disabled or not texts:
            return None
        try:
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(
                    api_key=os.environ.get("OPENAI_API_KEY", "not-needed"), timeout=self.timeout, max_retries=1
                )
            out: list[list[float]] = []
            for i in range(0, len(texts), self.BATCH):
                batch = [scrub(t) for t in texts[i:i + self.BATCH]]  # signatures are scrubbed already
                resp = self._client.embeddings.create(model=self.model, input=batch)
                data = sorted(resp.data, key=lambda d: d.index)
                if len(data) != len(batch):
                    raise ValueError(f"{len(data)} embeddings for {len(batch)} inputs")
                out.extend([float(x) for x in d.embedding] for d in data)
            return out
        except Exception as exc:  # never required: fall back to lexical similarity
            log.warning("embeddings disabled (%s: %s); using lexical similarity only", type(exc).__name__, exc)
            self.disabled = True
            return None


EMBEDDING_WEIGHT = 0.65
BACKFILL_MAX = 2000  # signatures embedded per index load


def _dense_cosine(a: list[float], b: list[float]) -> float:
    num = sum(x * y for x, y in zip(a, b))
    den = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return num / den if den else 0.0


# --------------------------------------------------------------------------- the memory
class FailureMemory:
    def __init__(self, store: Store | None = None, *, embeddings: bool | None = None):
        self.store = store or open_store()
        self._embedder = _Embedder.from_env() if embeddings in (None, True) else None
        self._index: dict[str, Any] | None = None

    # ---- writing ---------------------------------------------------------------------------
    def record(
        self,
        message: str,
        category: str,
        resolution: str | None = None,
        worked: bool | None = None,
        *,
        system: str | None = None,
        source: str = "label",
        external_id: str | None = None,
        confidence: float | None = None,
        transient: bool | None = None,
        actor: str = "system",
        session=None,
    ) -> int:
        """Remember ``message`` as a failure of ``category``; optionally a resolution attempt.

        ``message`` may be a raw message or an already-normalized signature. Returns the
        signature id. A resolution that did not work (``worked=False``) is recorded for success
        rates but does not count as confirming the category. With ``session`` everything
        (rows and audit event) is written in the caller's transaction (no embedding call then).
        """
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
        clean = scrub_pii(message)[:MAX_MESSAGE_CHARS]
        sig = normalize(message)
        if not sig:
            raise ValueError("empty failure message")
        weight = SOURCE_WEIGHT.get(source, 1.0)
        if source == "resolution" and worked is False:
            weight = 0.0
        with (nullcontext(session) if session is not None else self.store.session()) as s:
            row = s.scalars(
                select(FailureSignature).where(FailureSignature.signature_hash == signature_hash(sig))
            ).one_or_none()
            is_new = row is None
            if row is None:
                row = FailureSignature(
                    signature_hash=signature_hash(sig), signature=sig, example=clean, system=system,
                    category=None, label_weight=0.0, occurrences=0,
                )
                s.add(row)
                s.flush()
            row.occurrences += 1
            row.updated_at = utcnow()
            if system and not row.system:
                row.system = system
            if transient is not None and weight > 0:
                row.transient = transient
            s.add(FailureOccurrence(
                signature_id=row.id, external_id=external_id, message=clean, system=system,
                category=category, confidence=confidence, source=source,
            ))
            if resolution:
                s.add(Resolution(
                    signature_id=row.id, category=category, resolution=resolution, worked=worked,
                    source=source,
                ))
            s.flush()
            if weight > 0:
                self._relabel(s, row)
            sig_id = row.id
            label = row.category
        if is_new and self._embedder is not None and session is None:
            # outside the write transaction: a slow endpoint must not hold the store's lock
            emb = self._embedder.embed([sig])
            if emb:
                with self.store.session() as s:
                    row = s.get(FailureSignature, sig_id)
                    row.embedding, row.embedding_model = emb[0], self._embedder.model
        if is_new or weight > 0:
            self._index = None
        if weight > 0 or resolution:
            audit = {"source": source, "category": category, "label": label,
                     "resolution": resolution, "worked": worked, "external_id": external_id}
            if session is not None:
                self.store.audit(session, "failure_memory.learn", actor=actor, subject=f"signature:{sig_id}",
                                 payload=audit)
            else:
                self.store.append_audit("failure_memory.learn", actor=actor, subject=f"signature:{sig_id}",
                                        payload=audit)
        return sig_id

    @staticmethod
    def _relabel(session, row: FailureSignature) -> None:
        """Category of a signature = weighted vote of its confirming occurrences."""
        votes: dict[str, float] = defaultdict(float)
        occ = session.execute(
            select(FailureOccurrence.category, FailureOccurrence.source).where(
                FailureOccurrence.signature_id == row.id
            )
        ).all()
        for cat, src in occ:
            if cat:
                votes[cat] += SOURCE_WEIGHT.get(src, 1.0)
        failed = session.execute(
            select(Resolution.category, func.count()).where(
                Resolution.signature_id == row.id, Resolution.worked.is_(False),
                Resolution.source == "resolution",
            ).group_by(Resolution.category)
        ).all()
        for cat, n in failed:  # failed resolutions were recorded as occurrences; undo their vote
            votes[cat] -= SOURCE_WEIGHT["resolution"] * n
        rejected = session.execute(
            select(Resolution.category, func.count()).where(
                Resolution.signature_id == row.id, Resolution.source == "rejection",
            ).group_by(Resolution.category)
        ).all()
        for cat, n in rejected:
            votes[cat] -= SOURCE_WEIGHT["approval"] * n
        votes = {c: v for c, v in votes.items() if v > 0}
        if not votes:
            row.category, row.label_weight = None, 0.0
            return
        best = max(votes, key=lambda c: votes[c])
        others = sum(v for c, v in votes.items() if c != best)
        row.category, row.label_weight = best, votes[best] - others

    def record_resolution(
        self, message: str, category: str, resolution: str, worked: bool, **kw: Any
    ) -> int:
        """An executed resolution and its outcome (learns the category when it worked)."""
        return self.record(message, category, resolution, worked, source="resolution", **kw)

    def learn_from_approval(
        self, message: str, category: str, resolution: str | None, approved: bool, **kw: Any
    ) -> int:
        """An operator approved (confirms category) or rejected (weakens it) a proposal."""
        if approved:
            return self.record(message, category, resolution, None, source="approval", **kw)
        sig_id = self.record(message, category, None, None, source="observed", **kw)
        with self.store.session() as s:
            s.add(Resolution(signature_id=sig_id, category=category,
                             resolution=resolution or "(none)", worked=False, source="rejection"))
            s.flush()
            row = s.get(FailureSignature, sig_id)
            self._relabel(s, row)
        self._index = None
        self.store.append_audit("failure_memory.rejection", actor=kw.get("actor", "system"),
                                subject=f"signature:{sig_id}",
                                payload={"category": category, "resolution": resolution})
        return sig_id

    def observe(self, message: str, category: str, *, confidence: float | None = None,
                system: str | None = None, external_id: str | None = None, session=None) -> int:
        """Count an automatically diagnosed occurrence (does not reinforce any label)."""
        return self.record(message, category, source="observed", confidence=confidence,
                           system=system, external_id=external_id, session=session)

    # ---- reading ---------------------------------------------------------------------------
    def _load_index(self) -> dict[str, Any]:
        if self._index is not None:
            return self._index
        with self.store.session() as s:
            rows = s.execute(
                select(FailureSignature.id, FailureSignature.signature, FailureSignature.category,
                       FailureSignature.label_weight, FailureSignature.occurrences,
                       FailureSignature.transient, FailureSignature.embedding,
                       FailureSignature.embedding_model)
            ).all()
        sigs = [r[1] for r in rows]
        self._index = {
            "rows": rows,
            "words": _TfIdf([_word_features(x) for x in sigs]),
            "chars": _TfIdf([_char_features(x) for x in sigs]),
            "emb": self._embeddings(rows),
        }
        return self._index

    def _embeddings(self, rows) -> list[list[float] | None]:
        """Each row's embedding under the configured model; missing ones are embedded and stored."""
        if self._embedder is None:
            return [None] * len(rows)
        model = self._embedder.model
        embs = [r[6] if r[6] and r[7] == model else None for r in rows]
        todo = [i for i, e in enumerate(embs) if e is None][:BACKFILL_MAX]
        vectors = self._embedder.embed([rows[i][1] for i in todo]) if todo else None
        if vectors:
            with self.store.session() as s:
                for i, vec in zip(todo, vectors):
                    row = s.get(FailureSignature, rows[i][0])
                    if row is not None:
                        row.embedding, row.embedding_model = vec, model
                    embs[i] = vec
        return embs

    def nearest(self, message: str, k: int = 5, *, min_similarity: float = 0.0,
                labelled_only: bool = False) -> list[Neighbour]:
        """The ``k`` past signatures most similar to ``message`` (best first)."""
        idx = self._load_index()
        rows = idx["rows"]
        if not rows:
            return []
        sig = normalize(message)
        qw = idx["words"].vectorize(_word_features(sig))
        qc = idx["chars"].vectorize(_char_features(sig))
        qemb = None
        if self._embedder is not None and any(e is not None for e in idx["emb"]):
            e = self._embedder.embed([sig])
            qemb = e[0] if e else None
        scored = []
        for i, r in enumerate(rows):
            if labelled_only and not r[2]:
                continue
            lex = 0.6 * _cosine(qw, idx["words"].vectors[i]) + 0.4 * _cosine(qc, idx["chars"].vectors[i])
            sim = lex
            emb = idx["emb"][i]
            if qemb is not None and emb is not None and len(emb) == len(qemb):
                dense = max(0.0, _dense_cosine(qemb, emb))
                sim = max(lex, (1 - EMBEDDING_WEIGHT) * lex + EMBEDDING_WEIGHT * dense)
            if sim >= min_similarity:
                scored.append((min(1.0, sim), r))
        scored.sort(key=lambda x: -x[0])
        return [
            Neighbour(signature_id=r[0], signature=r[1], category=r[2], similarity=sim,
                      label_weight=float(r[3] or 0.0), occurrences=int(r[4] or 0), transient=r[5])
            for sim, r in scored[:k]
        ]

    def success_rates(self, category: str | None = None) -> dict[tuple[str, str], dict[str, float]]:
        """(category, resolution) -> attempts, successes, rate (only attempts with a known outcome)."""
        with self.store.session() as s:
            q = select(Resolution.category, Resolution.resolution, Resolution.worked, func.count()).where(
                Resolution.worked.is_not(None), Resolution.source != "rejection"
            ).group_by(Resolution.category, Resolution.resolution, Resolution.worked)
            if category:
                q = q.where(Resolution.category == category)
            rows = s.execute(q).all()
        out: dict[tuple[str, str], dict[str, float]] = {}
        for cat, res, worked, n in rows:
            d = out.setdefault((cat, res), {"attempts": 0, "successes": 0, "rate": 0.0})
            d["attempts"] += n
            if worked:
                d["successes"] += n
        for d in out.values():
            d["rate"] = d["successes"] / d["attempts"] if d["attempts"] else 0.0
        return out

    def best_resolution(self, category: str, *, min_attempts: int = 1) -> str | None:
        """Resolution with the highest Laplace-smoothed success rate for ``category``."""
        rates = self.success_rates(category)
        cands = [
            ((d["successes"] + 1) / (d["attempts"] + 2), res)
            for (cat, res), d in rates.items() if d["attempts"] >= min_attempts
        ]
        return max(cands)[1] if cands else None

    def resolution_for(self, message: str, *, min_similarity: float = 0.8) -> tuple[str, str, float] | None:
        """(resolution, category, similarity) that worked for the most similar confirmed past
        failure (similarity >= ``min_similarity``): the next occurrence of a signature gets the fix
        that worked for it, not merely the class's most frequent fix. Net successes count (a
        failed attempt or a person's rejection of that resolution subtracts one); None when no
        similar signature has a resolution that worked."""
        near = self.nearest(message, k=5, min_similarity=min_similarity, labelled_only=True)
        if not near:
            return None
        ids = [n.signature_id for n in near]
        with self.store.session() as s:
            rows = s.execute(
                select(Resolution.signature_id, Resolution.resolution, Resolution.worked, Resolution.source)
                .where(Resolution.signature_id.in_(ids))
            ).all()
        net: dict[tuple[int, str], int] = defaultdict(int)
        for sig_id, res, worked, src in rows:
            if src == "rejection" or worked is False:
                net[(sig_id, res)] -= 1
            elif worked:
                net[(sig_id, res)] += 1
        for n in near:  # most similar first
            cands = [(v, res) for (sid, res), v in net.items() if sid == n.signature_id and v > 0]
            if cands and n.category:
                return max(cands)[1], n.category, n.similarity
        return None

    def stats(self) -> dict[str, int]:
        with self.store.session() as s:
            return {
                "signatures": s.scalar(select(func.count()).select_from(FailureSignature)) or 0,
                "occurrences": s.scalar(select(func.count()).select_from(FailureOccurrence)) or 0,
                "resolutions": s.scalar(select(func.count()).select_from(Resolution)) or 0,
            }

    def bulk_label(self, items: Iterable[tuple[str, str]], *, source: str = "label") -> int:
        n = 0
        for message, category in items:
            self.record(message, category, source=source)
            n += 1
        return n
