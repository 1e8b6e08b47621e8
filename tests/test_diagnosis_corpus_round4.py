"""The third collection (issue 16, round 4): raise-site messages of 23 packages the first two
collections do not have, each traceable to the installed wheel's file and line, labelled in two
passes (pass A by reading; pass B later, shuffled, message only, by RUBRIC.md's decision list);
consensus items only are scored. Its sources are new: no group is shared with the other
collections or the held-out set, no message repeats one of theirs."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.diagnosis.crossval import EXTRA_CORPUS, HELDOUT, ROUND4_CORPUS, load_items
from orchestrator.diagnosis.rules import CATEGORIES

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
README = DATA / "failure_corpus" / "README.md"
SOURCE = re.compile(r"^pypi:(?P<dist>[\w.\-]+)==(?P<ver>[\w.\-+]+):(?P<path>[\w./\-]+\.py):(?P<line>\d+)$")


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def rows():
    return _rows(ROUND4_CORPUS)


def test_size_sources_and_new_groups(rows):
    assert len(rows) >= 450
    assert len({r["group"] for r in rows}) >= 20 and len({r["system"] for r in rows}) >= 15
    assert all(SOURCE.match(r["source"]) for r in rows), [r["source"] for r in rows if not SOURCE.match(r["source"])][:3]
    others = _rows(DATA / "failure_corpus.jsonl") + _rows(EXTRA_CORPUS) + _rows(HELDOUT)
    assert not {r["group"] for r in rows} & {r["group"] for r in others}
    assert not {r["message"] for r in rows} & {r["message"] for r in others}
    assert len({r["id"] for r in rows}) == len(rows) and all(r["id"].startswith("fr-") for r in rows)


def test_each_message_is_in_the_installed_package_at_its_line(rows):
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    checked = 0
    for r in rows:
        m = SOURCE.match(r["source"])
        f = site / m["path"]
        dist = [d for d in site.glob(f"{m['dist']}-*.dist-info")]
        if not f.exists() or not dist or not dist[0].name.startswith(f"{m['dist']}-{m['ver']}."):
            continue  # another version installed: the check is only meaningful on the one cited
        lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
        line = int(m["line"])
        # letters and digits only: string literals may be split over lines ('a ' 'b') or escaped
        raw = re.sub(r"([\"'])\s*[rRbBfFuU]{0,2}([\"'])", "", "\n".join(lines[line - 1: line + 8]))
        window = re.sub(r"\W", "", re.sub(r"\\[ntr]", " ", raw))
        literal = max((re.sub(r"\W", "", part) for part in re.split(r"\{[^}]*\}|%\w", r["message"])), key=len)[:25]
        assert literal and literal in window, (r["id"], r["source"], literal)
        checked += 1
    assert checked >= 0.9 * len(rows)


def test_two_labels_and_consensus_are_consistent(rows):
    for r in rows:
        for lab in (r["label_a"], r["label_b"]):
            assert lab is None or lab["category"] in CATEGORIES
        agree = r["label_a"] and r["label_b"] and r["label_a"]["category"] == r["label_b"]["category"]
        assert (r["category"] is not None) == bool(agree)
        if agree:
            assert r["category"] == r["label_a"]["category"]
            same_t = r["label_a"]["transient"] == r["label_b"]["transient"]
            assert r["transient"] == (r["label_a"]["transient"] if same_t else None)


def test_agreement_is_what_the_readme_reports(rows):
    both = [r for r in rows if r["label_a"] and r["label_b"]]
    agree = sum(r["label_a"]["category"] == r["label_b"]["category"] for r in both)
    n = len(both)
    pa = Counter(r["label_a"]["category"] for r in both)
    pb = Counter(r["label_b"]["category"] for r in both)
    pe = sum(pa[c] * pb[c] for c in set(pa) | set(pb)) / n / n
    kappa = (agree / n - pe) / (1 - pe)
    text = README.read_text(encoding="utf-8")
    assert f"{agree}/{n}" in text and f"kappa {kappa:.3f}" in text


def test_cross_validation_loads_the_consensus_items_of_all_three_collections(rows):
    corpus, _ = load_items()
    ids = {i.id for i in corpus}
    assert {r["id"] for r in rows} <= ids
    assert not any(i.id.startswith("fh-") for i in corpus)  # the held-out set stays out
    without, _ = load_items(round4=False)
    assert len(corpus) - len(without) == len(rows)
