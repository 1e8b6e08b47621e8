"""The generalization corpus (tests/data/failure_corpus.jsonl): real messages with provenance,
two labelling passes whose agreement is what the README says, and grouped folds that never put a
source on both sides."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.diagnosis.crossval import group_folds
from orchestrator.diagnosis.normalize import scrub
from orchestrator.diagnosis.rules import CATEGORIES, RULES, match_rules

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "failure_corpus.jsonl"
README = ROOT / "tests" / "data" / "failure_corpus" / "README.md"
SOURCE = re.compile(r"^(https://github\.com/[^/]+/[^/]+/(issues|pull)/\d+|pypi:[\w.\-]+==[\w.\-]+:\S+|debian:postgresql-15 .+)$")


@pytest.fixture(scope="module")
def rows():
    return [json.loads(x) for x in CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_size_systems_and_provenance(rows):
    assert len(rows) >= 800
    assert len({r["system"] for r in rows}) >= 20
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert SOURCE.match(r["source"]), r["source"]
        assert r["message"].strip()
        assert r["group"] and (r["group"] == r["source"] or r["source"].startswith(r["group"].split(":")[0]))


def test_two_labels_and_consensus_are_consistent(rows):
    for r in rows:
        a, b = r["label_a"], r["label_b"]
        assert a["category"] in CATEGORIES and b["category"] in CATEGORIES
        assert r["category"] == (a["category"] if a["category"] == b["category"] else None)
        assert r["transient"] == (a["transient"] if a["transient"] == b["transient"] else None)


def _kappa(a, b):
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb.get(k, 0) for k in ca) / n / n
    return (po - pe) / (1 - pe)


def test_agreement_is_what_the_readme_reports(rows):
    k = _kappa([r["label_a"]["category"] for r in rows], [r["label_b"]["category"] for r in rows])
    text = README.read_text()
    m = re.search(r"Cohen's kappa ([0-9.]+)", text)
    assert m, "README must state the category kappa"
    assert abs(float(m.group(1)) - k) < 0.005
    assert f"{len(rows)} messages" in text


def test_no_live_credentials_in_the_corpus(rows):
    live = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b|\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}|\bgh[pousr]_[A-Za-z0-9]{20,}|\bsk-[A-Za-z0-9]{20,}")
    assert not [r["id"] for r in rows if live.search(r["message"])]


@pytest.mark.parametrize("seed", range(25))
def test_grouped_folds_never_split_a_group(seed):
    rng = random.Random(seed)
    groups = [f"g{rng.randint(0, rng.randint(1, 40))}" for _ in range(rng.randint(1, 300))]
    k = rng.randint(2, 6)
    folds = group_folds(groups, k)
    owner = {}
    for g, f in zip(groups, folds):
        assert owner.setdefault(g, f) == f
    assert folds == group_folds(groups, k)  # deterministic
    sizes = Counter(folds)
    biggest = max(Counter(groups).values())
    assert max(sizes.values()) - min(sizes.get(i, 0) for i in range(k)) <= biggest


def test_rule_prechecks_change_nothing_on_the_corpus(rows):
    for r in rows:
        t = scrub(r["message"])
        fast = [(h.rule.name, h.line, h.span) for h in match_rules(t)]
        slow = [(h.rule.name, h.line, h.span) for h in match_rules(t, precheck=False)]
        assert fast == slow, r["id"]


@pytest.mark.parametrize("seed", range(30))
def test_rule_prechecks_change_nothing_on_random_text(seed):
    # random worlds: fragments of the rules' own literals glued with random noise and case
    rng = random.Random(seed)
    pieces = [a for r in RULES for a in (r.anchors or ())] + ["429", "503", "ERROR", "\n", " ", "::"]
    noise = "abcdefXYZ0123 _-.:'\"()[]{}"
    for _ in range(40):
        parts = []
        for _ in range(rng.randint(1, 12)):
            p = rng.choice(pieces) if rng.random() < 0.6 else "".join(rng.choice(noise) for _ in range(rng.randint(1, 8)))
            parts.append(p.upper() if rng.random() < 0.2 else p)
        text = "".join(parts)
        fast = [(h.rule.name, h.span) for h in match_rules(text)]
        slow = [(h.rule.name, h.span) for h in match_rules(text, precheck=False)]
        assert fast == slow, text


def test_relabels_replace_both_passes_and_keep_their_provenance(rows):
    """A correction (relabels.tsv) changes an item's category in both passes, records the labels it
    replaced and why; no other item carries a correction."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_corpus", CORPUS.parent / "failure_corpus" / "build_corpus.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    fixes = build.relabels()
    assert fixes, "relabels.tsv lists the corrected items"
    by_id = {r["id"]: r for r in rows}
    for rid, (cat, note) in fixes.items():
        r = by_id[rid]
        assert r["label_a"]["category"] == r["label_b"]["category"] == r["category"] == cat
        assert r["relabel"]["note"] == note and note.strip()
        assert cat not in r["relabel"]["from"], "a correction changes the label it replaces"
    assert {r["id"] for r in rows if "relabel" in r} == set(fixes)
