"""Accuracy of `orchestrator diagnose` on the labelled development set, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.diagnosis.evaluate import format_table, load_dataset, per_category, split_of
from orchestrator.diagnosis.rules import CATEGORIES

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "failure_messages.jsonl"
VENV_BIN = Path(sys.executable).parent


def _orchestrator_bin() -> str:
    exe = VENV_BIN / "orchestrator"
    if not exe.exists():
        uv = shutil.which("uv", path=str(VENV_BIN)) or shutil.which("uv")
        assert uv, "orchestrator console script missing and uv not available to install it"
        subprocess.run([uv, "pip", "install", "--python", sys.executable, "-e", str(ROOT)], check=True)
    return str(exe)


def _run_cli(args: list[str], stdin: str | None, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["ORCHESTRATOR_HOME"] = str(tmp_path / "home")  # fresh, empty failure memory
    env.pop("ORCHESTRATOR_STORE_URL", None)
    env.pop("ORCHESTRATOR_EMBEDDINGS_MODEL", None)
    return subprocess.run(
        [_orchestrator_bin(), "diagnose", *args], input=stdin, capture_output=True, text=True,
        env=env, timeout=120,
    )


@pytest.fixture(scope="module")
def dataset():
    rows = load_dataset(DATA)
    assert len(rows) >= 150
    return rows


def test_dataset_is_well_formed(dataset):
    ids = [r["id"] for r in dataset]
    assert len(ids) == len(set(ids))
    counts = {c: 0 for c in CATEGORIES}
    for r in dataset:
        assert set(r) >= {"id", "message", "system", "category", "source"}
        assert r["category"] in CATEGORIES
        assert r["source"].startswith(("https://", "http://")) or ":" in r["source"]
        counts[r["category"]] += 1
    for c, n in counts.items():
        assert n >= 8, f"category {c} has only {n} messages"


def test_accuracy_through_cli(dataset, tmp_path):
    stdin = "".join(
        json.dumps({"id": r["id"], "message": r["message"], "system": r["system"]}) + "\n" for r in dataset
    )
    proc = _run_cli(["-"], stdin, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(out) == len(dataset)
    for o in out:
        assert list(o) == ["id", "category", "transient", "confidence", "evidence"]
        assert o["category"] in CATEGORIES
        assert isinstance(o["transient"], bool)
        assert 0.0 <= o["confidence"] <= 1.0
        assert isinstance(o["evidence"], list) and all(isinstance(e, str) for e in o["evidence"])

    gold = {r["id"]: r["category"] for r in dataset}
    pred = {o["id"]: o["category"] for o in out}
    splits = {
        "all": [r["id"] for r in dataset],
        "dev": [r["id"] for i, r in enumerate(dataset) if split_of(i) == "dev"],
        "heldout (every 4th)": [r["id"] for i, r in enumerate(dataset) if split_of(i) == "heldout"],
        "collected after rules were first frozen": [r["id"] for r in dataset if r.get("split") == "blind"],
    }
    results = {name: per_category(gold, pred, ids) for name, ids in splits.items()}
    for name, res in results.items():
        print()
        print(format_table(res, title=f"== {name} =="))
    assert results["all"]["accuracy"] >= 0.90
    assert results["heldout (every 4th)"]["accuracy"] >= 0.85


def test_cli_reports_malformed_lines_and_continues(tmp_path):
    lines = [
        json.dumps({"id": "a", "message": "HTTP 429 Too Many Requests"}),
        "{not json",
        json.dumps({"id": "b"}),
        "",
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "c", "message": "permission denied for schema analytics", "system": "postgres"}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    proc = _run_cli([str(src), "--no-memory"], None, tmp_path)
    assert proc.returncode == 1
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a", "c"]
    assert out[0]["category"] == "rate_limit" and out[0]["transient"] is True
    assert out[1]["category"] == "permission_denied" and out[1]["transient"] is False
    for n in (2, 3, 5):
        assert f"line {n}:" in proc.stderr
    assert "line 4" not in proc.stderr  # blank lines are skipped silently
