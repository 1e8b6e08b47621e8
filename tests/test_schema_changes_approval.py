"""0 patches applied without approval: generated sequences of proposals (verified or not),
approvals (some racing each other, some whose publication fails), rejections and repeated
decisions, against the real store and the real git publisher. After every step: the main branch
and the checkout are untouched, and the only schema-fix branches are those of published
proposals, each published after an approval recorded by a person."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.schema_changes.patch import Patch
from orchestrator.schema_changes.publish import GitPublisher, PublishError
from orchestrator.schema_changes.store import PatchDecisionError, SchemaPatches
from orchestrator.store import open_store

SHOP = Path(__file__).parent / "projects" / "shop"
STG = "models/staging/stg_shop__orders.sql"


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Verified:
    def __init__(self, ok):
        self.ok = ok

    def as_dict(self):
        return {"ok": self.ok, "commands": ["dbt compile", "dbt build"]}


class Impact:
    def __init__(self, n):
        self.table, self.owners, self.n = "shop.orders", {"sales-ops@example.com"}, n

    def summary(self):
        return f"change {self.n}"

    def as_dict(self):
        return {"summary": self.summary()}


class FlakyPublisher(GitPublisher):
    """The real publisher; `fail` makes the push step fail after the branch is made (a remote down)."""

    fail = False

    def publish(self, proposal):
        if self.fail:
            raise PublishError("git push failed: remote unreachable")
        return super().publish(proposal)


ops = st.lists(st.one_of(
    st.tuples(st.just("propose"), st.booleans()),
    st.tuples(st.just("approve"), st.integers(0, 5)),
    st.tuples(st.just("approve_race"), st.integers(0, 5)),
    st.tuples(st.just("approve_failing"), st.integers(0, 5)),
    st.tuples(st.just("reject"), st.integers(0, 5)),
), min_size=1, max_size=8)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_nothing_is_published_without_an_approval(tmp_path_factory, sequence):
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(SHOP, root / "dbt", ignore=shutil.ignore_patterns("target", "*.duckdb"))
    _git("init", "-q", "-b", "main", cwd=root)
    _git("add", "-A", cwd=root)
    _git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "init", cwd=root)
    main = _git("rev-parse", "main", cwd=root)
    original = (root / "dbt" / STG).read_text()
    store = open_store(f"sqlite:///{root / 'store.db'}", cached=False)
    patches = SchemaPatches(store)
    publisher = FlakyPublisher(root, "dbt")
    ids: list[str] = []
    for step, (op, arg) in enumerate(sequence):
        if op == "propose":
            patch = Patch(files={STG: (original, original + f"\n-- fix {step}\n")}, answered=[f"change {step}"])
            ids.append(patches.propose(patch, [Impact(step)], Verified(arg)).id)
        elif ids:
            pid = ids[arg % len(ids)]
            try:
                if op == "reject":
                    patches.reject(pid, "bob@example.com")
                elif op == "approve_race":  # two people click approve at once: one wins
                    errors = []

                    def click(who):
                        try:
                            patches.approve(pid, who, publisher)
                        except (PatchDecisionError, PublishError) as exc:
                            errors.append(exc)

                    threads = [threading.Thread(target=click, args=(w,)) for w in ("ana@example.com", "cy@example.com")]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    assert len(errors) >= 1
                else:
                    publisher.fail = op == "approve_failing"
                    try:
                        patches.approve(pid, "ana@example.com", publisher)
                    finally:
                        publisher.fail = False
            except (PatchDecisionError, PublishError):
                pass  # refused decisions (not proposed any more) and failed publications: checked below
        _invariants(root, main, original, patches, store)


def _invariants(root, main, original, patches, store):
    assert _git("rev-parse", "main", cwd=root) == main
    assert _git("rev-parse", "--abbrev-ref", "HEAD", cwd=root) == "main"
    assert (root / "dbt" / STG).read_text() == original
    assert _git("status", "--porcelain", "--", "dbt", cwd=root) == ""
    branches = {b.strip("* ").strip() for b in _git("branch", "--list", "schema-fix/*", cwd=root).splitlines() if b.strip()}
    published = {p.id: p for p in patches.list() if p.status == "published"}
    assert branches == {p.branch for p in published.values()}
    events = store.audit_events(limit=100000)
    for pid, p in published.items():
        kinds = [(e["kind"], e.get("actor")) for e in events if e.get("subject") == pid]
        approved = [i for i, (k, a) in enumerate(kinds) if k == "schema_patch.approved" and a]
        done = [i for i, (k, _) in enumerate(kinds) if k == "schema_patch.published"]
        assert len(done) == 1 and approved and approved[0] < done[0], kinds
        assert p.decided_by and p.decided_by.endswith("@example.com")
        assert _git("show", f"{p.branch}:dbt/{STG}", cwd=root) != original
    for p in patches.list():
        assert p.status != "published" or p.verification["ok"]  # failed verification never published
