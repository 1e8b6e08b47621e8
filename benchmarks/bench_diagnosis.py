"""Figures for failure diagnosis: per-category precision/recall on the labelled set, and throughput.

    .venv/bin/python benchmarks/bench_diagnosis.py [--cli] [--memory]

Default: in-process ``diagnose()`` with the rule catalog (no memory). ``--cli`` also measures the
``orchestrator diagnose`` subprocess end to end. ``--memory`` adds a leave-one-out run in which
every other labelled message is in the failure memory (shows what the memory adds, optimistic
because near-duplicates exist in the set).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.diagnosis import diagnose  # noqa: E402
from orchestrator.diagnosis.evaluate import format_table, load_dataset, per_category, split_of  # noqa: E402

DATA = ROOT / "tests" / "data" / "failure_messages.jsonl"


def report(gold, pred, rows, label):
    splits = {
        "all": [r["id"] for r in rows],
        "dev": [r["id"] for i, r in enumerate(rows) if split_of(i) == "dev"],
        "heldout (every 4th)": [r["id"] for i, r in enumerate(rows) if split_of(i) == "heldout"],
        "collected after rules were first frozen": [r["id"] for r in rows if r.get("split") == "blind"],
    }
    for name, ids in splits.items():
        print(format_table(per_category(gold, pred, ids), title=f"== {label}: {name} =="))
        print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", action="store_true")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    rows = load_dataset(DATA)
    gold = {r["id"]: r["category"] for r in rows}

    t0 = time.perf_counter()
    for _ in range(args.repeat):
        pred = {r["id"]: diagnose(r["message"], r["system"]).category for r in rows}
    dt = time.perf_counter() - t0
    report(gold, pred, rows, "rules only, in-process")
    n = len(rows) * args.repeat
    print(f"throughput (in-process, rules only): {n / dt:,.0f} messages/s ({dt / n * 1e3:.2f} ms/message)")

    wrong = [(r["id"], gold[r["id"]], pred[r["id"]]) for r in rows if pred[r["id"]] != gold[r["id"]]]
    print(f"misclassified: {wrong}")

    if args.cli:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, ORCHESTRATOR_HOME=tmp)
            env.pop("ORCHESTRATOR_STORE_URL", None)
            stdin = "".join(json.dumps({"id": r["id"], "message": r["message"], "system": r["system"]}) + "\n"
                            for r in rows)
            exe = str(Path(sys.executable).parent / "orchestrator")
            t0 = time.perf_counter()
            proc = subprocess.run([exe, "diagnose", "-"], input=stdin, capture_output=True, text=True, env=env,
                                  check=True)
            dt = time.perf_counter() - t0
            out = [json.loads(x) for x in proc.stdout.splitlines()]
            cli_pred = {o["id"]: o["category"] for o in out}
            acc = sum(cli_pred[i] == g for i, g in gold.items()) / len(gold)
            print(f"CLI (with empty store, incl. startup and migrations): {len(rows)} messages in {dt:.2f}s, "
                  f"accuracy {acc:.3f}")

    if args.memory:
        from orchestrator.diagnosis.memory import FailureMemory
        from orchestrator.store import open_store

        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"sqlite:///{tmp}/mem.db", cached=False)
            mem = FailureMemory(store, embeddings=False)
            t0 = time.perf_counter()
            for r in rows:
                mem.record(r["message"], r["category"], system=r["system"], source="label")
            t_rec = time.perf_counter() - t0
            # leave-one-out: drop the message's own signature from the neighbour list
            mem_pred = {}
            t0 = time.perf_counter()
            for r in rows:
                d = diagnose(r["message"], r["system"], _LeaveOneOut(mem, r["message"]))
                mem_pred[r["id"]] = d.category
            t_q = time.perf_counter() - t0
            report(gold, mem_pred, rows, "rules + memory (leave-one-out)")
            print(f"memory: record {len(rows) / t_rec:,.0f}/s, diagnose with memory {len(rows) / t_q:,.0f}/s")
            store.dispose()


class _LeaveOneOut:
    def __init__(self, memory, message):
        from orchestrator.diagnosis.normalize import normalize

        self.memory, self.sig = memory, normalize(message)

    def nearest(self, message, k=5, **kw):
        return [n for n in self.memory.nearest(message, k=k + 1, **kw) if n.signature != self.sig][:k]


if __name__ == "__main__":
    main()
