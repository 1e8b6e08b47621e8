"""The TF-IDF model (issue 16, tenth round): its numpy inference is exactly the TF-IDF + logistic
regression that was trained (scikit-learn's definitions), deterministic, and saves and loads as an artifact of its kind."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.diagnosis.model import (
    MAX_CHARS, TextModel, TfidfModel, load_model, tfidf_analysis, token_char_grams,
)
from orchestrator.diagnosis.rules import CATEGORIES

sklearn = pytest.importorskip("sklearn")  # a dev dependency: training only

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "failure_corpus.jsonl"

# text built from pieces that exercise every block: repeated words (tf > 1), punctuation inside
# white-space tokens, short tokens (char_wb's short-word rule), typed tokens, non-ASCII case folding
_PIECES = st.sampled_from(list("abcdeXYZ _-:'\"\n\t0123456789{}()./") + [
    "Error", "HTTP 403 ", "Exception", " status 429", "timeout ", "denied", " a ", "İ", "K", "ß",
    "psycopg2.OperationalError: ", "SQLSTATE 42P01 ", "ECONNREFUSED ", "${DB_HOST} ", "profiles.yml ",
    "connection refused ", "connection refused ", "permission denied for table x "])
TEXTS = st.lists(_PIECES, max_size=80).map("".join)


@pytest.fixture(scope="module")
def rows():
    return [json.loads(x) for x in CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def small(rows):
    sample = [r for r in rows if r["category"]][::12]
    msgs, labels = [r["message"][:400] for r in sample], [r["category"] for r in sample]
    return msgs, labels, TfidfModel.fit(msgs, labels, min_df=1, max_char_features=10**9, max_iter=100)


def _sk_blocks():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return {
        "w": lambda **kw: TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                          token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9_]+\b", **kw),
        "c": lambda **kw: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, **kw),
        "t": lambda **kw: TfidfVectorizer(analyzer=lambda d: tfidf_analysis(d)[2].elements(), sublinear_tf=True,
                                          lowercase=False, **kw),
    }


@settings(max_examples=80, deadline=None)
@given(TEXTS)
def test_analysis_is_scikit_learns_word_and_char_wb_analyzers(text):
    blocks = _sk_blocks()
    words, chars, _ = tfidf_analysis(text)
    assert Counter(blocks["w"]().build_analyzer()(text[:MAX_CHARS])) == words
    assert Counter(blocks["c"]().build_analyzer()(text[:MAX_CHARS])) == chars


def test_short_tokens_follow_char_wb():
    assert token_char_grams("a") == [" a", "a ", " a "]  # padded length 3: n=2 twice, n=3 once, stop
    assert token_char_grams("ab")[-1] == " ab "  # length 4 = n: once, then stop
    assert len(token_char_grams("abcdef")) == 7 + 6 + 5 + 4


def test_vectors_equal_scikit_learns_tfidf_per_block(small):
    """Same vocabulary, same training messages: sublinear tf, smoothed idf and per-block L2 norm
    equal scikit-learn's TfidfVectorizer to float precision."""
    msgs, _, m = small
    blocks = _sk_blocks()
    parts = []
    for prefix in ("w", "c", "t"):
        terms = sorted(f[2:] for f in m.vocab_list if f[0] == prefix)
        vec = blocks[prefix](vocabulary=terms).fit([s[:MAX_CHARS] for s in msgs])
        parts.append(vec)
    for msg in msgs[:40] + ["", "x", "HTTP 429 429 Too Many Requests Too Many"]:
        ids, vals = m.vector(msg)
        dense = np.zeros(len(m.vocab_list))
        dense[ids] = vals
        ref = np.concatenate([p.transform([msg[:MAX_CHARS]]).toarray()[0] for p in parts])
        assert np.allclose(dense, ref, atol=1e-6)


@settings(max_examples=80, deadline=None)
@given(TEXTS)
def test_fast_logits_equal_the_reference_vector(small, text):
    """Inference merges cached per-token n-gram ids in numpy; it must equal the reference vector's
    logits (tf over the whole message, not per token)."""
    m = small[2]
    assert np.allclose(m.logits(text), m.logits_of(tfidf_analysis(text)), atol=1e-5)


def test_fast_logits_after_the_cache_is_cleared_and_on_corpus_messages(rows, small):
    m = small[2]
    msgs = [r["message"] for r in rows[::5]]
    warm = [m.logits(x) for x in msgs]
    m.clear_cache()
    cold = [m.logits(x) for x in msgs]
    ref = [m.logits_of(tfidf_analysis(x)) for x in msgs]
    assert all(np.array_equal(a, b) for a, b in zip(warm, cold))
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(cold, ref))


def test_training_is_deterministic(small):
    msgs, labels, m = small
    m2 = TfidfModel.fit(list(msgs), list(labels), min_df=1, max_char_features=10**9, max_iter=100)
    assert m.vocab_list == m2.vocab_list
    assert np.array_equal(m.W, m2.W) and np.array_equal(m.b, m2.b) and np.array_equal(m.idf, m2.idf)


def test_it_learns_the_training_messages_and_keeps_the_class_order(small):
    msgs, labels, m = small
    assert m.classes == tuple(CATEGORIES)
    pred = [max(m.proba(x).items(), key=lambda kv: kv[1])[0] for x in msgs]
    assert sum(p == g for p, g in zip(pred, labels)) / len(labels) > 0.9


def test_char_vocabulary_is_capped_by_frequency(small):
    msgs, labels, _ = small
    m = TfidfModel.fit(msgs, labels, max_char_features=500, max_iter=5)
    chars = [f for f in m.vocab_list if f.startswith("c:")]
    assert len(chars) == 500
    tf, df = Counter(), Counter()
    for x in msgs:
        c = tfidf_analysis(x)[1]
        tf.update(c)
        df.update(c.keys())
    kept_min = min(tf[f[2:]] for f in chars)
    assert all(df[f[2:]] >= 2 for f in chars)  # min_df first, then the most frequent
    assert all(tf[t] <= kept_min for t in tf if df[t] >= 2 and "c:" + t not in m.vocab)


def test_save_load_roundtrip(tmp_path, small):
    _, _, m = small
    m.params = {"rule_weight": 2.0, "temperature": 1.0, "threshold": 0.2}
    m2 = load_model(m.save(tmp_path / "m.npz"))
    assert isinstance(m2, TfidfModel) and m2.params == m.params and m2.classes == m.classes
    for msg in ["HTTP 429 Too Many Requests", "permission denied for relation orders", ""]:
        assert np.allclose(m.logits(msg), m2.logits(msg), atol=1e-4)  # float16 weights round-trip exactly


def test_older_artifacts_still_load(tmp_path, rows):
    sample = [r for r in rows if r["category"]][::15]
    old = TextModel.fit([r["message"] for r in sample], [r["category"] for r in sample], steps=5)
    old.params = {"rule_weight": 1.0}
    loaded = load_model(old.save(tmp_path / "old.npz"))
    assert isinstance(loaded, TextModel) and loaded.params == {"rule_weight": 1.0}


def test_an_unknown_artifact_kind_is_named(tmp_path, small):
    _, _, m = small
    path = m.save(tmp_path / "m.npz")
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["kind"] = np.asarray("forest")
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match="forest"):
        load_model(tmp_path / "bad.npz")


def test_the_typed_tokens_are_a_block_of_their_own(small):
    m = small[2]
    assert m.classes == tuple(CATEGORIES)
    assert any(f.startswith("t:") for f in m.vocab_list) and any(f.startswith("c:") for f in m.vocab_list)


def test_explanations_name_block_terms(small):
    m = small[2]
    terms = m.top_features("HTTP 429 Too Many Requests: rate limit exceeded", "rate_limit", k=5)
    assert terms and all(t[:2] in ("w:", "c:", "t:") for t in terms)


def test_ensemble_is_the_weighted_geometric_mean_and_round_trips(tmp_path, small, rows):
    """The ensemble family (measured by the grouped CV, not shipped): softmax(logits) is the
    normalised product of the members' probabilities to their weights; it saves and loads as one file."""
    from orchestrator.diagnosis.model import EnsembleModel

    msgs, labels, m = small
    other = TextModel.fit(msgs, labels, steps=5)
    ens = EnsembleModel([m, other], [0.75, 0.25], {"rule_weight": 2.0, "mix": 0.75})
    loaded = load_model(ens.save(tmp_path / "e.npz"))
    assert isinstance(loaded, EnsembleModel) and loaded.weights == [0.75, 0.25] and loaded.params == ens.params
    for msg in msgs[:10] + ["", "HTTP 429 Too Many Requests"]:
        p1, p2 = m.proba(msg), other.proba(msg)
        geo = {c: p1[c] ** 0.75 * p2[c] ** 0.25 for c in CATEGORIES}
        tot = sum(geo.values())
        pe = ens.proba(msg)
        assert all(abs(pe[c] - geo[c] / tot) < 1e-6 for c in CATEGORIES)
        assert np.allclose(ens.logits(msg), ens.reference_logits(msg), atol=1e-4)
        assert np.allclose(loaded.logits(msg), ens.logits(msg), atol=1e-2)  # float16 weights on disk
    with pytest.raises(ValueError, match="one weight per member"):
        EnsembleModel([m], [0.5, 0.5])


def test_an_unknown_model_family_is_named():
    from orchestrator.diagnosis.crossval import _fit

    with pytest.raises(ValueError, match="tfidf, textlr, ensemble"):
        _fit([], family="forest")


def _softmax_rows(Z):
    Z = np.asarray(Z, dtype=np.float64)
    P = np.exp(Z - Z.max(axis=-1, keepdims=True))
    return P / P.sum(axis=-1, keepdims=True)


def test_fast_probabilities_equal_scikit_learns_computation_on_the_corpus(rows, small):
    """Every corpus message, raw and scrubbed: the per-message inference (cached per-token n-gram
    ids, one gather of idf-scaled rows) gives the probabilities of scikit-learn's own TF-IDF
    vectors times the weights, to 1e-9 (float64 throughout; the idf-scaled rows were float32
    before issue 16's eleventh round, ~2e-8 off)."""
    from scipy.sparse import hstack

    from orchestrator.diagnosis.normalize import scrub

    msgs, _, m = small
    blocks = _sk_blocks()
    parts = []
    for prefix in ("w", "c", "t"):
        terms = sorted(f[2:] for f in m.vocab_list if f[0] == prefix)
        parts.append(blocks[prefix](vocabulary=terms).fit([s[:MAX_CHARS] for s in msgs]))
    texts = [r["message"] for r in rows] + [scrub(r["message"]) for r in rows[::3]]
    cut = [t[:MAX_CHARS] for t in texts]
    X = hstack([p.transform(cut) for p in parts]).tocsr()
    reference = _softmax_rows(X @ m.W.astype(np.float64) + m.b)
    fast = _softmax_rows([m.logits(t) for t in texts])
    assert np.abs(fast - reference).max() < 1e-9


def test_the_shipped_artifact_infers_exactly_its_reference_vectors(rows):
    """The shipped model is the TF-IDF family (since issue 16's eleventh round); on every corpus
    message its fast logits give the reference computation's probabilities to 1e-9."""
    from orchestrator.diagnosis.model import ARTIFACT

    m = load_model(ARTIFACT)
    assert isinstance(m, TfidfModel)
    m.warm()
    texts = [r["message"] for r in rows]
    fast = _softmax_rows([m.logits(t) for t in texts])
    reference = _softmax_rows([m.reference_logits(t) for t in texts])
    assert np.abs(fast - reference).max() < 1e-9


ANY_TEXT = st.one_of(
    st.text(max_size=3000),  # any unicode, incl. surrogates-free astral planes and case-changing letters
    st.builds(lambda w, k: (w + " ") * k, st.text(min_size=1, max_size=12), st.integers(1, 20000)),
    st.builds(lambda a, b, k: a * k + b, st.sampled_from(["İ", "ß", "ﬃ", "\u0130x ", "a\u0307", "Σ"]),
              TEXTS, st.integers(1, 5000)),
)


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_arbitrary_text_gives_the_reference_probabilities_in_bounded_time(small, text):
    """Any text (unicode, case-changing letters, one word repeated tens of thousands of times,
    megabyte-sized input): an answer equal to the reference to 1e-9, within a bound (only the
    first MAX_CHARS characters are read)."""
    import time

    m = small[2]
    t0 = time.perf_counter()
    z = m.logits(text)
    elapsed = time.perf_counter() - t0
    assert z.shape == (len(CATEGORIES),) and np.isfinite(z).all()
    assert np.abs(_softmax_rows(z) - _softmax_rows(m.reference_logits(text))).max() < 1e-9
    assert elapsed < 0.5  # ~0.1 ms typical; generous for a loaded CI box


def test_a_full_token_cache_starts_over_without_changing_answers(small, monkeypatch):
    m = small[2]
    msg = "psycopg2.OperationalError: could not connect to server: Connection refused " * 3
    before = m.logits(msg)
    monkeypatch.setattr(m, "_TOKEN_CACHE_MAX", 3)
    m.clear_cache()
    assert np.array_equal(m.logits(msg), before)
    assert len(m._tok) <= 3
    m.clear_cache()


def test_the_inner_split_chooses_among_fit_settings_and_records_it(rows):
    """``fit_with_params(grid=...)``: each setting is scored on the inner grouped split only; the
    model returned is the chosen setting fitted on all training rows, and the choice is recorded."""
    from orchestrator.diagnosis.crossval import CLASS_WEIGHT_GRID, _fit, fit_with_params, prepare

    items = [i for i in prepare([r for r in rows if r["kind"] == "issue_thread"][:160]) if i.category]
    m = fit_with_params(items, inner_k=2, grid=CLASS_WEIGHT_GRID, family="tfidf")
    pos = int(m.params["grid_choice"])
    assert pos in (0, 1) and {"rule_weight", "temperature", "threshold"} <= set(m.params)
    again = _fit(items, family="tfidf", **CLASS_WEIGHT_GRID[pos])
    assert np.array_equal(again.W, m.W) and np.array_equal(again.b, m.b)
    plain = fit_with_params(items, inner_k=2, family="tfidf")
    assert "grid_choice" not in plain.params


def test_the_feature_ids_are_the_processs_shared_ints(small):
    """Each term's feature id is its position in the vocabulary (as ``enumerate`` gave it), held
    as the process's shared int object (the one the graph's positions hold), not an int of its own."""
    from orchestrator.core.graph import shared_ints

    _, _, m = small
    vocab = m.vocab_list
    assert m.vocab == {f: i for i, f in enumerate(vocab)}
    ints = shared_ints(len(vocab))
    assert all(i is ints[i] for terms in m._blk.values() for i in terms.values())


@pytest.fixture(scope="module")
def shipped():
    from orchestrator.diagnosis.model import ARTIFACT

    m = load_model(ARTIFACT)
    m.warm()
    return m


@pytest.fixture(scope="module")
def shipped_plain():
    from orchestrator.diagnosis.model import ARTIFACT

    m = load_model(ARTIFACT)
    m._rows = _whole_product_rows(m)
    return m


def _whole_product_rows(m):
    """``_rows`` as the plain gather from the whole ``[W * idf | idf^2]`` product, the matrix the
    model held until issue 19's memory round."""
    whole = np.concatenate((m.W.astype(np.float64) * m.idf[:, None], (m.idf * m.idf)[:, None]), axis=1)
    return lambda ids: whole[ids]


@settings(max_examples=150, deadline=None)
@given(st.one_of(ANY_TEXT, TEXTS, st.text(alphabet="é€Ωxq !0_", max_size=40)))
def test_rows_made_per_message_give_exactly_the_whole_products_logits(shipped, shipped_plain, text):
    """The rows ``logits`` gathers are made per message from ``W`` and ``idf`` (the whole product
    is not held): every logit is bit for bit the one the whole product's rows give, on any text
    (char n-grams or none, repeated or not, typed tokens)."""
    assert np.array_equal(shipped.logits(text), shipped_plain.logits(text))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**9), max_size=60))
def test_rows_equal_the_whole_products_rows(shipped, picks):
    ids = np.asarray([p % len(shipped.idf) for p in picks], dtype=np.int64)
    assert np.array_equal(shipped._rows(ids), _whole_product_rows(shipped)(ids))
    assert shipped._rows(ids).shape == (len(ids), len(shipped.classes) + 1)


def test_the_model_holds_no_whole_product_matrix(shipped):
    """What a loaded model holds stays below W, idf and the vocabulary: no (terms x classes+1)
    float64 matrix beside them (3.7 MiB for the shipped model)."""
    arrays = [v for v in vars(shipped).values() if isinstance(v, np.ndarray)]
    assert sum(a.nbytes for a in arrays) <= shipped.W.nbytes + shipped.idf.nbytes + 64 * 1024


# ---------------------------------------------------------------- issue 16, twelfth round
# The shipped TF-IDF model's word block also counts the words of multi-word identifiers, and its
# vocabulary keeps only terms that at least two sources use (crossval.TFIDF_FIT).

IDENT_TEXTS = st.lists(st.sampled_from(list("aZ_.-: 09{}") + [
    "oauth_jwt_key_file", "allowSyncMethods", "ExecutedAsyncStatement", "fsspec.parquet", "HTTPXClient",
    "__init__", "a_b", "X.Y", "İ_ß", "credentials_file ", " port "]), max_size=60).map("".join)


def test_identifier_parts_are_the_words_of_multi_word_names():
    from orchestrator.diagnosis.model import identifier_parts

    assert identifier_parts("both oauth_jwt_key_file and oauth_client_secret were provided") == [
        "oauth", "jwt", "key", "file", "oauth", "client", "secret"]
    assert identifier_parts("HTTPXClient was not initialized with allowSyncMethods") == [
        "allow", "sync", "methods"]
    assert identifier_parts("requires ExecutedAsyncStatement.reader()") == ["executed", "async", "statement", "reader"]
    assert identifier_parts("Connection refused") == []  # single words are the word block's already
    assert identifier_parts("x" * 5000 + "_y") == []  # only the first MAX_CHARS characters are read


@settings(max_examples=150, deadline=None)
@given(st.one_of(IDENT_TEXTS, st.text(max_size=2000),
                 st.builds(lambda k: "a" * k + "_", st.integers(0, 100_000)),
                 st.builds(lambda k: "aB" * k, st.integers(0, 50_000))))
def test_identifier_parts_of_any_text_are_lower_case_words_in_bounded_time(text):
    import time

    from orchestrator.diagnosis.model import identifier_parts

    t0 = time.perf_counter()
    parts = identifier_parts(text)
    assert time.perf_counter() - t0 < 0.2  # linear scan of at most MAX_CHARS characters
    assert all(len(p) >= 2 and p.isalpha() and p == p.lower() for p in parts)
    words = tfidf_analysis(text, subwords=True)[0]
    assert words - tfidf_analysis(text)[0] == Counter(parts)


@pytest.fixture(scope="module")
def small_subwords(rows):
    sample = [r for r in rows if r["category"]][::12]
    msgs, labels = [r["message"][:400] for r in sample], [r["category"] for r in sample]
    return TfidfModel.fit(msgs, labels, min_df=1, max_char_features=10**9, max_iter=100, subwords=True)


@settings(max_examples=80, deadline=None)
@given(st.one_of(TEXTS, IDENT_TEXTS, ANY_TEXT))
def test_fast_logits_with_identifier_words_equal_the_reference(small_subwords, text):
    m = small_subwords
    assert m.subwords
    z = m.logits(text)
    assert np.abs(_softmax_rows(z) - _softmax_rows(m.reference_logits(text))).max() < 1e-9


def test_identifier_words_reach_the_word_block_and_round_trip(tmp_path, small_subwords, small):
    m = small_subwords
    assert any(f == "w:key" for f in m.vocab_list)
    msg = "Unsupported private_key type: pass the key_file option"
    ids, _ = m.vector(msg)
    assert m.vocab["w:file"] in set(ids.tolist())  # from key_file: the plain model has no such term for it
    loaded = load_model(m.save(tmp_path / "sw.npz"))
    assert loaded.subwords and np.allclose(loaded.logits(msg), m.logits(msg), atol=1e-4)
    # artifacts written before (no flag) read as before
    path = small[2].save(tmp_path / "plain.npz")
    with np.load(path) as z:
        data = {k: z[k] for k in z.files if k != "subwords"}
    np.savez(tmp_path / "old.npz", **data)
    assert load_model(tmp_path / "old.npz").subwords is False


def test_a_term_only_one_source_uses_stays_out_of_the_vocabulary():
    msgs = ["zorblax option missing", "zorblax option invalid", "quux option missing", "quux option invalid",
            "shared wording here", "shared wording there"]
    labels = ["config_error", "config_error", "code_error", "code_error", "unknown", "unknown"]
    groups = ["pkg-a", "pkg-a", "pkg-b", "pkg-b", "pkg-a", "pkg-b"]
    every = TfidfModel.fit(msgs, labels, groups=groups, min_groups=1, max_iter=50)
    spread = TfidfModel.fit(msgs, labels, groups=groups, min_groups=2, max_iter=50)
    assert "w:zorblax" in every.vocab and "w:zorblax" not in spread.vocab  # two messages, one package
    assert "w:option" in spread.vocab and "w:shared" in spread.vocab


def test_the_shipped_artifact_reads_text_as_the_cross_validation_does():
    from orchestrator.diagnosis.crossval import TFIDF_FIT
    from orchestrator.diagnosis.model import ARTIFACT

    m = load_model(ARTIFACT)
    assert m.subwords is TFIDF_FIT["subwords"]
