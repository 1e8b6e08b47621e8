"""The fourth collection (issue 16, round six): runtime failure messages pasted in public issue threads,
each from a thread no other collection, the held-out set or the project set uses, labelled in two passes
(pass A by reading with the system and source; pass B shuffled, message text only, RUBRIC.md's
decision list). The jsonl is exactly what ``build_threads.py`` makes from the raw rows and the two
label files, so the labels cannot drift from the recorded passes."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.diagnosis.crossval import (
    CORPUS, EXTRA_CORPUS, HELDOUT, PROJECT_SET, ROUND4_CORPUS, THREADS_CORPUS, group_folds, load_items,
)
from orchestrator.diagnosis.rules import CATEGORIES

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "tests" / "data" / "failure_corpus"
README = FOLDER / "README.md"
THREAD = re.compile(r"^https://github\.com/[\w.\-]+/[\w.\-]+/(issues|pull)/\d+$")


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def rows():
    return _rows(THREADS_CORPUS)


@pytest.fixture(scope="module")
def built():
    sys.path.insert(0, str(FOLDER))
    try:
        import build_threads
    finally:
        sys.path.remove(str(FOLDER))
    return build_threads.build()


def test_size_systems_and_thread_provenance(rows):
    assert len(rows) >= 150
    assert len({r["system"] for r in rows}) >= 20
    assert all(THREAD.match(r["source"]) and r["group"] == r["source"] for r in rows)
    assert len({r["group"] for r in rows}) == len(rows)  # one message per thread
    assert all(r["kind"] == "issue_thread" and r["id"].startswith("ft-") for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)


def test_no_thread_or_message_is_shared_with_another_set(rows):
    others = _rows(CORPUS) + _rows(EXTRA_CORPUS) + _rows(ROUND4_CORPUS) + _rows(HELDOUT) + _rows(PROJECT_SET)
    urls = {str(o.get(k) or "").split("#")[0] for o in others for k in ("source", "group")}
    urls |= {line.split("\t")[0] for line in (FOLDER / "issues_raw.tsv").read_text().splitlines()
             if line.startswith("http")}
    assert not {r["source"] for r in rows} & urls
    assert not {r["message"] for r in rows} & {o["message"] for o in others}


def test_the_jsonl_is_what_the_builder_makes_from_the_two_passes(rows, built):
    out, _ = built
    assert out == rows


def test_consensus_is_where_the_two_passes_agree(rows):
    for r in rows:
        for lab in (r["label_a"], r["label_b"]):
            assert lab is None or lab["category"] in CATEGORIES
        agree = r["label_a"] and r["label_b"] and r["label_a"]["category"] == r["label_b"]["category"]
        assert (r["category"] is not None) == bool(agree)
        if agree:
            same_t = r["label_a"]["transient"] == r["label_b"]["transient"]
            assert r["transient"] == (r["label_a"]["transient"] if same_t else None)


def test_agreement_is_what_the_readme_reports(rows, built):
    _, stats = built
    both = [r for r in rows if r["label_a"] and r["label_b"]]
    agree = sum(r["label_a"]["category"] == r["label_b"]["category"] for r in both)
    assert stats["category_agreement"] == agree / len(both)
    text = README.read_text(encoding="utf-8")
    assert f"{agree}/{len(both)}" in text and f"kappa {stats['category_kappa']:.3f}" in text
    assert Counter(r["category"] for r in rows if r["category"]) == Counter(stats["consensus"])


def test_cross_validation_folds_the_new_sources_like_the_others(rows, monkeypatch):
    import orchestrator.diagnosis.crossval as cv

    monkeypatch.setattr(cv, "prepare", lambda rs, **kw: [cv.Item(r["message"], r.get("system"), str(
        r.get("group") or r.get("source")), r.get("category"), id=str(r.get("id", ""))) for r in rs])
    corpus, extra = load_items()
    assert {r["id"] for r in rows} <= {i.id for i in corpus}
    assert not any(i.id.startswith("fh-") for i in corpus + extra)  # the held-out set stays out
    without, _ = load_items(threads=False)
    assert len(corpus) - len(without) == len(rows)
    folds = group_folds([i.group for i in corpus], 5)
    fold_of: dict[str, set[int]] = {}
    for it, f in zip(corpus, folds):
        fold_of.setdefault(it.group, set()).add(f)
    assert all(len(v) == 1 for v in fold_of.values())
    assert len({f for it, f in zip(corpus, folds) if it.id.startswith("ft-")}) == 5  # spread over all folds
