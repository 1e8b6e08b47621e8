"""Second collection, package part: error strings raised in source trees fetched from GitHub.

How the ``package_source`` items of ``tests/data/failure_corpus_extra.jsonl`` were produced (re-runnable;
not part of the test suite). The source trees are git snapshots of:

- dbt-labs/dbt-adapters @ 802d40f0f0eb (the dbt-snowflake, dbt-bigquery, dbt-postgres, dbt-redshift,
  dbt-spark and dbt-athena packages; the shared ``dbt-adapters`` package is left out because its
  installed copy is already in the first collection's ``pypi:dbt_core`` group);
- airbytehq/airbyte-python-cdk @ 9cc7b80fe43d (``airbyte_cdk``).

    git --git-dir=<snapshot> archive HEAD | tar -x -C /tmp/diagx/src/<owner>+<name>
    python tests/data/failure_corpus/extract_github.py > /tmp/diagx/new_pkg.jsonl

Same extraction and filters as ``extract_packages.py`` (first argument of ``raise X(...)``, f-string
fields kept as ``{expr}``, no API-misuse wording, 30-600 characters), minus any message already in the
first collection or the project set, shuffled with a fixed seed and capped per package. Each package
is its own cross-validation group (``github:<repo>/<package>``).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from extract_packages import SKIP_PARTS, from_python, keep  # noqa: E402

SRC = Path("/tmp/diagx/src")
COMMITS = {"dbt-labs/dbt-adapters": "802d40f0f0eb663c17e5be08d1e3fb2e55b9ee34",
           "airbytehq/airbyte-python-cdk": "9cc7b80fe43dead1d3159261405642eeb58a8ec0"}
UNITS = [  # (repo, package dir, system, cap)
    ("dbt-labs/dbt-adapters", "dbt-snowflake", "snowflake", 35),
    ("dbt-labs/dbt-adapters", "dbt-bigquery", "bigquery", 40),
    ("dbt-labs/dbt-adapters", "dbt-postgres", "postgres", 20),
    ("dbt-labs/dbt-adapters", "dbt-redshift", "redshift", 25),
    ("dbt-labs/dbt-adapters", "dbt-spark", "spark", 30),
    ("dbt-labs/dbt-adapters", "dbt-athena", "athena", 30),
    ("airbytehq/airbyte-python-cdk", "airbyte_cdk", "airbyte", 80),
]


def main() -> None:
    data = HERE.parent
    seen = {json.loads(x)["message"].strip() for f in ("failure_corpus.jsonl", "failure_messages.jsonl")
            for x in (data / f).read_text(encoding="utf-8").splitlines() if x.strip()}
    rng = random.Random(16)
    for repo, sub, system, cap in UNITS:
        root = SRC / repo.replace("/", "+") / sub
        cands = []
        for p in sorted(root.rglob("*.py")):
            rel = "/" + p.relative_to(root).as_posix()
            if any(s in rel for s in SKIP_PARTS) or "/test" in rel:
                continue
            for line, msg in from_python(p):
                msg = msg.strip()
                if keep(msg) and msg not in seen:
                    seen.add(msg)
                    cands.append({"message": msg, "system": system,
                                  "source": f"github:{repo}@{COMMITS[repo][:12]}:{sub}/{p.relative_to(root).as_posix()}:{line}",
                                  "group": f"github:{repo}/{sub}", "kind": "package_source"})
        rng.shuffle(cands)
        for c in cands[:cap]:
            print(json.dumps(c))


if __name__ == "__main__":
    main()
