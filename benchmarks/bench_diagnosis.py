"""Figures for failure diagnosis on messages it never saw: grouped cross-validation on the corpus.

    .venv/bin/python benchmarks/bench_diagnosis.py            # grouped 5-fold CV + throughput (~5 min on 2 busy cores)
    .venv/bin/python benchmarks/bench_diagnosis.py --train    # also refit and save the shipped model.npz
    .venv/bin/python benchmarks/bench_diagnosis.py --project-set [--cli] [--memory]   # the older 154-message set
    .venv/bin/python benchmarks/bench_diagnosis.py --heldout --no-cv   # the shipped model on the held-out set
    .venv/bin/python benchmarks/bench_diagnosis.py --learning --no-cv  # 30-day learning-loop simulation

Grouped CV (``orchestrator/diagnosis/crossval.py``): groups are the public sources (issue
thread, package); no group is in both a training and a test fold. Model, rule weight,
temperature and abstention threshold are fitted inside the training folds only (inner grouped
split). Scores are on the items both labelling passes agree on (``category`` / ``transient``
not null in ``tests/data/failure_corpus.jsonl``). Targets (issue 16): category >= 0.88,
transient >= 0.93, abstention <= 8% among items not labelled unknown, >= 2,000 messages/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.diagnosis import diagnose  # noqa: E402
from orchestrator.diagnosis.crossval import (  # noqa: E402
    CLASS_WEIGHT_GRID, HELDOUT, cross_validate, format_confusion, format_metrics, load_items, load_rows, metrics, prepare, rules_only,
    train_artifact, Prediction,
)
from orchestrator.diagnosis.evaluate import format_table, load_dataset, per_category, split_of  # noqa: E402
from orchestrator.diagnosis.model import ARTIFACT, default_path, load_default, load_model  # noqa: E402

DATA = ROOT / "tests" / "data" / "failure_messages.jsonl"


def fit_kwargs(args) -> dict:
    """The model family's fit arguments: ``tfidf`` takes none here, ``textlr`` and ``ensemble`` (the
    word-additive member) the Adam steps; ``--class-weight-grid``: the inner split chooses plain or
    class-balanced weights (tfidf)."""
    kw = {"family": args.family, **({"steps": args.steps} if args.family != "tfidf" else {})}
    if args.class_weight_grid:
        kw["grid"] = CLASS_WEIGHT_GRID
    return kw


def grouped_cv(args) -> None:
    t0 = time.perf_counter()
    corpus, extra = load_items()
    n_cons = sum(1 for i in corpus if i.category)
    print(f"corpus: {len(corpus)} messages, {n_cons} with consensus category, "
          f"{len({i.group for i in corpus})} source groups; + {len(extra)} project-set messages for training")
    print(f"  first collection (two passes, consensus): {sum(1 for i in corpus if i.id.startswith('fc-'))}; "
          f"second collection (one rubric pass): {sum(1 for i in corpus if i.id.startswith('fx-'))}; "
          f"third collection (round 4, two passes): {sum(1 for i in corpus if i.id.startswith('fr-'))}; "
          f"fourth collection (round 6, issue-thread logs, two passes): "
          f"{sum(1 for i in corpus if i.id.startswith('ft-'))}")
    preds, chosen = cross_validate(corpus, extra, k=args.folds, inner_k=3, **fit_kwargs(args))
    print(f"model family: {args.family}")
    print(f"grouped {args.folds}-fold CV in {time.perf_counter() - t0:.0f}s; parameters chosen per fold "
          f"(inner CV): {chosen}")
    m = metrics(corpus, preds)
    print()
    print(format_metrics(m, "== rules + model + project set, grouped CV, consensus items =="))
    print()
    print(format_confusion(m))
    first = lambda i: i.id.startswith("fc-")  # noqa: E731
    print()
    mf = metrics(corpus, preds, subset=first)
    print(format_metrics(mf, "== first collection only (the consensus items the targets were set on) =="))
    print()
    print(format_confusion(mf))
    for name, sub in [("first collection, issue-thread messages", lambda i: first(i) and i.kind == "issue_thread"),
                      ("second collection (other sources, one labelling pass)", lambda i: i.id.startswith("fx-")),
                      ("third collection (round 4: 23 more packages, two passes)", lambda i: i.id.startswith("fr-")),
                      ("fourth collection (round 6: runtime logs of 189 more threads, two passes)",
                       lambda i: i.id.startswith("ft-")),
                      ("first three collections (the round-5 figure's items)", lambda i: not i.id.startswith("ft-")),
                      ("first + second collections (the previous rounds' figure)",
                       lambda i: not i.id.startswith("fr-")),
                      ("issue-thread messages (runtime logs)", lambda i: i.kind == "issue_thread"),
                      ("package-source messages (raise sites)", lambda i: i.kind == "package_source"),
                      ("excluding messages the rules were written from", lambda i: not i.seen_by_rules)]:
        print()
        print(format_metrics(metrics(corpus, preds, subset=sub), f"== {name} =="))
    rp = rules_only(corpus)
    print()
    print(format_metrics(metrics(corpus, rp), "== rules only (no fitting), same items =="))
    print(format_metrics(metrics(corpus, rp, subset=lambda i: i.kind == "issue_thread"),
                         "== rules only, issue-thread messages =="))
    print()
    for label, mm in (("all corpus items", m), ("first collection", mf)):
        print(f"TARGETS ({label})  category {mm['accuracy']:.3f} (>= 0.88)   transient {mm['transient_accuracy']:.3f} "
              f"(>= 0.93)   abstention {mm['abstention']:.1%} (<= 8%)")


def heldout(args) -> None:
    """The shipped model (fitted on both collections + the project set, never on this file) on the
    held-out set, through the public diagnose()."""
    if not HELDOUT.exists():
        print(f"no held-out set at {HELDOUT}")
        return
    items = prepare(load_rows(HELDOUT))
    preds = []
    for it in items:
        d = diagnose(it.message, it.system)
        preds.append(Prediction(d.category, d.confidence, d.transient, -1))
    print()
    print(f"held-out set: {len(items)} messages, {len({i.group for i in items})} sources, "
          f"{len({i.system for i in items})} systems (collected after all tuning; never trained on)")
    m = metrics(items, preds)
    print(format_metrics(m, "== shipped model on the held-out set =="))
    print()
    print(format_confusion(m))
    rp = rules_only(items)
    print(format_metrics(metrics(items, rp), "== rules only, held-out set =="))


def throughput(args) -> None:
    """CPU time of ``diagnose()`` per message and of ``diagnose_batch()`` over the corpus messages
    (every message distinct: the batch's de-duplication of repeated log lines does not help here)."""
    from orchestrator.diagnosis import diagnose_batch

    corpus_rows = [json.loads(x) for x in (ROOT / "tests/data/failure_corpus.jsonl").read_text().splitlines() if x]
    msgs = [(r["message"], r["system"]) for r in corpus_rows]
    path = default_path()  # the shipped model.npz unless ORCHESTRATOR_DIAGNOSIS_MODEL names another
    if path is None:
        print("\nthroughput: the model is off (ORCHESTRATOR_DIAGNOSIS_MODEL); rules only")
    else:
        t0 = time.perf_counter()
        loaded = load_model(path)
        loaded.warm()
        print(f"\nmodel artifact {path.name}: family {getattr(loaded, 'kind', 'textlr')}, "
              f"{path.stat().st_size / 1024:.0f} KiB, loads (incl. warming its token cache) in "
              f"{time.perf_counter() - t0:.3f}s")
    diagnose(msgs[0][0])
    print(f"{len(msgs)} distinct messages, {args.repeat} passes each (load average {os.getloadavg()[0]:.1f})")
    figures = {}
    for name, run in (("diagnose() per message", lambda: [diagnose(m, s) for m, s in msgs]),
                      ("diagnose_batch(), one batch", lambda: diagnose_batch(msgs))):
        shipped = load_default()
        if shipped is not None:
            shipped.clear_cache()  # each way starts from the shipped cache: its first pass meets new words
            shipped.warm()
        rates = []
        n_all = cpu_all = wall_all = 0.0
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            rates.append(len(msgs) / cpu)
            n_all, cpu_all, wall_all = n_all + len(msgs), cpu_all + cpu, wall_all + wall
        figures[name] = statistics.median(rates)
        print(f"throughput, {name} (rules + model, in-process): median of {len(rates)} passes "
              f"{figures[name]:,.0f} messages/s of CPU time; all passes together {n_all / cpu_all:,.0f}/s "
              f"({n_all / wall_all:,.0f}/s wall clock on this shared machine; {cpu_all / n_all * 1e3:.3f} ms "
              f"CPU/message); per pass: " + ", ".join(f"{x:,.0f}/s" for x in rates)
              + " (the first pass also caches the words the vocabulary does not hold)")
    print("TARGET throughput (median of passes) " + "   ".join(f"{k}: {v:,.0f} messages/s" for k, v in figures.items())
          + " (>= 2,000)")


def learning(args) -> None:
    from orchestrator.diagnosis.learning import simulate_learning

    t0 = time.perf_counter()
    run = simulate_learning(30, seed=args.seed)
    print()
    print(run.format())
    first, last = run.first_last()
    print(f"TARGET learning loop: first 7 days {first:.0%} -> last 7 days {last:.0%} (rises, >= 80%), "
          f"unsafe {run.unsafe} (0)  [{time.perf_counter() - t0:.0f}s]")


def project_set(args) -> None:
    rows = load_dataset(DATA)
    gold = {r["id"]: r["category"] for r in rows}
    for label, model in (("rules only", None), ("rules + model", "default")):
        kw = {} if model else {"model": None}
        pred = {r["id"]: diagnose(r["message"], r["system"], **kw).category for r in rows}
        splits = {"all": [r["id"] for r in rows],
                  "heldout (every 4th)": [r["id"] for i, r in enumerate(rows) if split_of(i) == "heldout"]}
        for name, ids in splits.items():
            print(format_table(per_category(gold, pred, ids), title=f"== project set, {label}: {name} =="))
            print()
        print("(the model was trained on this set: the rules + model figures here are not a generalization test)")
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
            acc = sum(o["category"] == gold[o["id"]] for o in out) / len(gold)
            print(f"CLI (empty store, incl. startup and migrations): {len(rows)} messages in {dt:.2f}s, "
                  f"accuracy {acc:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", action="store_true", help="refit and save the shipped model.npz first")
    ap.add_argument("--project-set", action="store_true", help="report on tests/data/failure_messages.jsonl")
    ap.add_argument("--cli", action="store_true")
    ap.add_argument("--memory", action="store_true", help="(project set) unused; kept for compatibility")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60, help="Adam steps (--family textlr only)")
    ap.add_argument("--family", default="tfidf", choices=("tfidf", "textlr", "ensemble"),
                    help="the model family cross-validated/trained: tfidf (TF-IDF LR), textlr (the numpy "
                         "Adam LR shipped before issue 16's tenth round) or ensemble (their geometric mean, "
                         "the weight chosen by the inner split)")
    ap.add_argument("--class-weight-grid", action="store_true",
                    help="(tfidf) let the inner split choose plain or class-balanced sample weights")
    ap.add_argument("--identifier-words", action="store_true",
                    help="(tfidf) the twelfth round's fit setting: identifier words in the word block, terms "
                         "of at least two sources (crossval.IDENTIFIER_WORDS; not the shipped artifact's)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-cv", action="store_true", help="skip the cross-validation (throughput only)")
    ap.add_argument("--heldout", action="store_true", help="score the shipped model on the held-out set")
    ap.add_argument("--learning", action="store_true", help="the 30-day learning-loop simulation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.identifier_words:
        import orchestrator.diagnosis.crossval as crossval

        crossval.TFIDF_FIT.update(crossval.IDENTIFIER_WORDS)
    if args.train:
        t0 = time.perf_counter()
        model = train_artifact(**fit_kwargs(args))
        print(f"trained {ARTIFACT.name} in {time.perf_counter() - t0:.0f}s: {len(model.vocab_list)} features, "
              f"params {model.params}")
    if args.project_set:
        project_set(args)
        return
    if not args.no_cv:
        grouped_cv(args)
    if args.heldout:
        heldout(args)
    if args.learning:
        learning(args)
    throughput(args)


if __name__ == "__main__":
    main()
