"""Extract real failure-message strings from published packages (provenance: package==version:path:line).

How the corpus's package items were produced (re-runnable; not part of the test suite)::

    python3 -m pip download --no-deps -d /tmp/diag_pkgs snowflake-connector-python google-cloud-bigquery \
        google-api-core google-cloud-storage botocore pymysql redshift-connector databricks-sql-connector \
        kafka-python simple-salesforce stripe apache-airflow-core mysql-connector-python pyspark-client
    (unzip each wheel / sdist under /tmp/diag_pkgs/x/<name>-<version>/)
    python tests/data/failure_corpus/extract_packages.py /tmp/diag_pkgs/x .venv/lib/python3.11/site-packages \
        > /tmp/candidates.jsonl

Sources of strings:
- ``raise SomeError("...")`` / f-strings / ``"..." % x`` / ``"...".format(x)`` in the package's Python
  source (f-string fields are kept as ``{expr}``, i.e. the template as written);
- dict literals with a ``"msg"`` key (snowflake-connector's ``errorhandler_wrapper`` payloads);
- ``pyspark/errors/error-conditions.json`` (Spark's error classes, rendered "[NAME] message SQLSTATE: x");
- kafka-python's error classes (``description``), mysql-connector's client error catalog;
- the PostgreSQL server's message catalog (msgids of ``postgres-15.mo`` in Debian's postgresql-15).

Messages are filtered (length, no pure API-misuse wording) and capped per package with a fixed seed.
"""

from __future__ import annotations

import ast
import gettext  # noqa: F401  (documenting that .mo files are gettext catalogs)
import json
import random
import re
import struct
import sys
from pathlib import Path

SEED = 16
CAP_DEFAULT = 45
CAPS = {"pyspark": 70, "postgres": 70, "dagster": 60, "dbt": 60, "snowflake": 50, "botocore": 40,
        "airflow": 50, "mysql": 40}

# package dir prefix -> (system, package name for provenance)
PACKAGES = {
    "snowflake/connector": "snowflake",
    "google/cloud/bigquery": "bigquery",
    "google/api_core": "gcp",
    "google/cloud/storage": "gcs",
    "botocore": "aws",
    "pymysql": "mysql",
    "mysql/connector": "mysql",
    "redshift_connector": "redshift",
    "databricks/sql": "databricks",
    "kafka": "kafka",
    "simple_salesforce": "salesforce",
    "stripe": "stripe",
    "airflow": "airflow",
    "dagster_airbyte": "airbyte",
    "dagster_fivetran": "fivetran",
    "dagster_dbt": "dbt",
    "dagster": "dagster",
    "dbt": "dbt",
    "psycopg": "postgres",
    "httpx": "httpx",
    "requests": "requests",
    "urllib3": "urllib3",
    "sqlalchemy": "sqlalchemy",
    "openai": "openai",
    "duckdb": "duckdb",
}
SKIP_PARTS = ("/vendored/", "/_vendor/", "/vendor/", "/tests/", "/test/", "/testing/", "/_generated/",
              "/migrations/", "/example", "/docs/")
API_MISUSE = re.compile(
    r"\b(?:argument|arguments|kwarg|keyword|positional|must be (?:a|an|one of|of type|str|int|callable)|"
    r"expected (?:a|an|type)|should be (?:a|an)|instance of|subclass|not supported in this|"
    r"deprecated|use .* instead|__\w+__|isinstance|not implemented|abstract|self\.)",
    re.I,
)


def _render(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                out.append(str(v.value))
            elif isinstance(v, ast.FormattedValue):
                out.append("{" + ast.unparse(v.value) + "}")
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        left = _render(node.left)
        right = _render(node.right) if isinstance(node.op, ast.Add) else None
        if left is None:
            return None
        return left + (right or "") if isinstance(node.op, ast.Add) else left
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"):
        return _render(node.func.value)
    return None


def from_python(path: Path) -> list[tuple[int, str]]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            msg = _render(node.exc.args[0])
            if msg:
                out.append((node.lineno, msg))
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == "msg":
                    msg = _render(v)
                    if msg:
                        out.append((node.lineno, msg))
    return out


def keep(msg: str) -> bool:
    m = msg.strip()
    if len(m) < 30 or len(m) > 600 or len(m.split()) < 5:
        return False
    if API_MISUSE.search(m):
        return False
    return True


def package_of(root: Path, path: Path) -> tuple[str, str] | None:
    rel = path.relative_to(root).as_posix()
    for prefix, system in PACKAGES.items():
        if rel.startswith(prefix + "/") or rel == prefix + ".py":
            return prefix, system
    return None


def dist_version(root: Path, prefix: str) -> str:
    top = prefix.split("/")[0]
    names = {"snowflake": "snowflake_connector_python", "google": None, "mysql": "mysql_connector_python",
             "databricks": "databricks_sql_connector", "kafka": "kafka_python", "airflow": "apache_airflow_core",
             "dbt": "dbt_core"}
    want = names.get(top, top)
    if prefix == "google/cloud/bigquery":
        want = "google_cloud_bigquery"
    elif prefix == "google/api_core":
        want = "google_api_core"
    elif prefix == "google/cloud/storage":
        want = "google_cloud_storage"
    for d in root.glob("*.dist-info"):
        name, _, ver = d.name[: -len(".dist-info")].rpartition("-")
        if name.lower().replace("-", "_") == want:
            return f"{name}=={ver}"
    if root.name and "-" in root.name:  # /tmp/diag_pkgs/x/<name>-<version>
        name, _, ver = root.name.rpartition("-")
        return f"{name}=={ver}"
    return want


def main(argv: list[str]) -> None:
    rng = random.Random(SEED)
    items: dict[str, list[dict]] = {}
    roots: list[Path] = []
    for a in argv:
        p = Path(a)
        if (p / "site-packages").exists():
            p = p / "site-packages"
        if any(p.glob("*.dist-info")) or p.name == "site-packages":
            roots.append(p)
        else:
            roots.extend(d for d in sorted(p.iterdir()) if d.is_dir())
    seen: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            rel = "/" + path.relative_to(root).as_posix()
            if any(s in rel for s in SKIP_PARTS):
                continue
            pk = package_of(root, path)
            if not pk:
                continue
            prefix, system = pk
            ver = dist_version(root, prefix)
            for line, msg in from_python(path):
                msg = msg.strip()
                if not keep(msg) or msg in seen:
                    continue
                seen.add(msg)
                items.setdefault(system if system not in ("dbt",) else "dbt", []).append({
                    "message": msg, "system": system,
                    "source": f"pypi:{ver}:{path.relative_to(root).as_posix()}:{line}",
                    "group": f"pypi:{ver.split('==')[0]}",
                })
        spark = root / "pyspark" / "errors" / "error-conditions.json"
        if spark.exists():
            ver = dist_version(root, "pyspark")
            conds = json.loads(spark.read_text())
            for name, c in sorted(conds.items()):
                text = " ".join(c.get("message", []))
                msg = f"[{name}] {text}" + (f" SQLSTATE: {c['sqlState']}" if c.get("sqlState") else "")
                if keep(text) and msg not in seen:
                    seen.add(msg)
                    items.setdefault("pyspark", []).append({
                        "message": msg, "system": "spark",
                        "source": f"pypi:{ver}:pyspark/errors/error-conditions.json#{name}",
                        "group": "pypi:pyspark"})
    mo = Path("/usr/share/locale/de/LC_MESSAGES/postgres-15.mo")
    if mo.exists():
        for msgid in _mo_msgids(mo):
            if keep(msgid) and "\n" not in msgid and msgid not in seen:
                seen.add(msgid)
                items.setdefault("postgres", []).append({
                    "message": msgid, "system": "postgres",
                    "source": "debian:postgresql-15 (15.x) /usr/share/locale/de/LC_MESSAGES/postgres-15.mo msgid",
                    "group": "debian:postgresql-15"})
    for system, rows in sorted(items.items()):
        rng.shuffle(rows)
        for r in rows[: CAPS.get(system, CAP_DEFAULT)]:
            print(json.dumps(r, ensure_ascii=False))


def _mo_msgids(path: Path) -> list[str]:
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic == 0x950412DE else ">"
    _, n, orig, _trans = struct.unpack(end + "4I", data[4:20])
    out = []
    for i in range(n):
        length, off = struct.unpack(end + "2I", data[orig + 8 * i: orig + 8 * i + 8])
        s = data[off: off + length].decode("utf-8", errors="replace")
        if s:
            out.append(s.split("\x00")[0])
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
