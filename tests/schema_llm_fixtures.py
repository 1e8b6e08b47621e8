"""Shared pieces of the LLM-patch tests: a scripted OpenAI-compatible server on loopback (port 0)
and landed Parquet files for tests/projects/shop written directly (no emulator), with whatever
columns a case removes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

UTC = timezone.utc


def completion(content: str, model: str = "m") -> dict:
    return {"id": "x", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}}


class ScriptedLLM:
    """``answer(request_json) -> str`` gives the message content of each completion; ``hang``
    makes the server never answer (the client's deadline must end the call)."""

    def __init__(self, answer: Callable[[dict], str] | None = None):
        self.answer = answer or (lambda request: "{}")
        self.requests: list[dict] = []
        self.hang = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if outer.hang:
                    time.sleep(30)
                    return
                payload = json.dumps(completion(outer.answer(body), body.get("model", "m"))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def context(self, index: int = -1) -> dict:
        return json.loads(self.requests[index]["messages"][1]["content"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_shop_landing(landing: Path, *, drop: dict[str, set[str]] | None = None, rows: int = 40) -> Path:
    """Parquet files for the shop project's three tables under ``landing/shop/<table>/``; columns in
    ``drop[table]`` are missing (the table re-landed under its new schema: no older file has them,
    so a model naming one fails, as `read_parquet(union_by_name=true)` has nowhere to find it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    drop = drop or {}
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    tables = {
        "orders": {
            "id": [f"o{i}" for i in range(rows)], "customer_id": [f"c{i % 10}" for i in range(rows)],
            "amount": [1000 + i for i in range(rows)], "discount": [i % 3 for i in range(rows)],
            "status": ["cancelled" if i % 7 == 0 else "paid" for i in range(rows)],
            "channel": ["web" if i % 2 else "store" for i in range(rows)],
            "ordered_at": [datetime(2026, 10, 1) + timedelta(hours=i) for i in range(rows)],
        },
        "customers": {
            "id": [f"c{i}" for i in range(10)], "email": [f"user{i}@example.com" for i in range(10)],
            "country": ["DE" if i % 2 else "US" for i in range(10)],
            "segment": ["smb" if i % 3 else "enterprise" for i in range(10)],
            "signed_up_at": [datetime(2025, 1, 1) + timedelta(days=i) for i in range(10)],
        },
        "refunds": {
            "id": [f"r{i}" for i in range(5)], "order_id": [f"o{i}" for i in range(5)],
            "amount": [100 * i for i in range(5)], "reason": ["damaged"] * 5,
            "refunded_at": [datetime(2026, 10, 5) + timedelta(hours=i) for i in range(5)],
        },
    }
    for table, columns in tables.items():
        folder = landing / "shop" / table
        folder.mkdir(parents=True, exist_ok=True)
        n = len(next(iter(columns.values())))
        for index, dropped in enumerate([drop.get(table, set())]):
            data = {k: v for k, v in columns.items() if k not in dropped}
            data["_fivetran_synced"] = [t0 + timedelta(hours=index)] * n
            data["_fivetran_deleted"] = [False] * n
            path = folder / f"sync-{index:04d}.parquet"
            pq.write_table(pa.table(data), path)
    return landing


COMPILED_CACHE = Path(__import__("tempfile").gettempdir()) / "sla-orchestrator-schema-compiled"


def shop_compiled(landing: Path) -> dict:
    """The shop project's compiled manifest, compiled once per version of its files on this machine
    (``scan.compiled_manifest``'s cache, keyed by a hash of the project's files: the landing path
    in its relation names only serves the lineage's placeholders)."""
    from orchestrator.schema_changes.scan import compiled_manifest

    return compiled_manifest(Path(__file__).parent / "projects" / "shop", landing, COMPILED_CACHE)


def land_change(landing: Path, table: str, kind: str, column: str, to: str | None = None) -> Path:
    """A sync that lands `table` changed: the newest file drops / renames / retypes `column`."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = landing / "shop" / table
    files = sorted(folder.glob("*.parquet"))
    data = pq.read_table(files[-1])
    if kind == "removed":
        data = data.drop_columns([column])
    elif kind == "renamed":
        data = data.rename_columns([to if c == column else c for c in data.column_names])
    else:  # type_changed: to a string, as a connector does when it widens a column
        data = data.set_column(data.column_names.index(column), column, pc.cast(data[column], pa.string()))
    path = folder / f"sync-{len(files):04d}.parquet"
    pq.write_table(data, path)
    import os

    stamp = files[-1].stat().st_mtime + 10
    os.utime(path, (stamp, stamp))
    return path
