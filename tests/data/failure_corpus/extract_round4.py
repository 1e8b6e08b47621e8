"""Third collection (round 4 of issue 16): raise-site messages of packages the first two collections
do not have, read from the project's own virtualenv (the installed wheels are the provenance:
``pypi:<dist>==<version>:<path>:<line>``). Same string extraction and filters as
``extract_packages.py`` (``from_python``, ``keep``); at most ``CAP`` per package, fixed seed.

    python tests/data/failure_corpus/extract_round4.py .venv/lib/python3.11/site-packages > /tmp/round4.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_packages import SKIP_PARTS, from_python, keep  # noqa: E402

SEED = 4
CAP = 24
# package dir -> (system, distribution name as in its .dist-info)
PACKAGES = {
    "dagster_k8s": ("kubernetes", "dagster_k8s"),
    "kubernetes/config": ("kubernetes", "kubernetes"),
    "dagster_postgres": ("postgres", "dagster_postgres"),
    "google/auth": ("gcp", "google_auth"),
    "google/oauth2": ("gcp", "google_auth"),
    "oauthlib": ("oauth", "oauthlib"),
    "requests_oauthlib": ("oauth", "requests_oauthlib"),
    "pyarrow": ("arrow", "pyarrow"),
    "pandas/io": ("pandas", "pandas"),
    "pandas/core/reshape": ("pandas", "pandas"),
    "agate": ("agate", "agate"),
    "aiohttp": ("aiohttp", "aiohttp"),
    "fsspec": ("fsspec", "fsspec"),
    "alembic": ("alembic", "alembic"),
    "sqlglot": ("sqlglot", "sqlglot"),
    "dbt_common": ("dbt", "dbt_common"),
    "jsonschema": ("jsonschema", "jsonschema"),
    "grpc": ("grpc", "grpcio"),
    "websockets": ("websockets", "websockets"),
    "dagster_shared": ("dagster", "dagster_shared"),
    "dagster_graphql": ("dagster", "dagster_graphql"),
    "psycopg2": ("postgres", "psycopg2_binary"),
    "gql": ("graphql", "gql"),
    "upath": ("fsspec", "universal_pathlib"),
    "dotenv": ("dotenv", "python_dotenv"),
}


def version_of(site: Path, dist: str) -> str:
    for d in site.glob("*.dist-info"):
        name, _, ver = d.name[: -len(".dist-info")].rpartition("-")
        if name.lower().replace("-", "_") == dist.lower():
            return f"{name}=={ver}"
    return dist


def main(site: Path) -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    for prefix, (system, dist) in PACKAGES.items():
        base = site / prefix
        if not base.exists():
            continue
        ver = version_of(site, dist)
        rows = []
        for path in sorted(base.rglob("*.py")):
            rel = "/" + path.relative_to(site).as_posix()
            if any(s in rel for s in SKIP_PARTS):
                continue
            for line, msg in from_python(path):
                msg = msg.strip()
                if keep(msg) and msg not in seen:
                    seen.add(msg)
                    rows.append({"message": msg, "system": system,
                                 "source": f"pypi:{ver}:{path.relative_to(site).as_posix()}:{line}",
                                 "group": f"pypi:{ver.split('==')[0]}"})
        rng.shuffle(rows)
        for r in rows[:CAP]:
            print(json.dumps(r, ensure_ascii=False))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
