"""A real PostgreSQL server for tests: initdb + pg_ctl in a temp dir on a random free port (as
the ``postgres`` system user when running as root, since PostgreSQL refuses root). It can be
killed (``pg_ctl -m immediate``: no clean shutdown, like a crash) and started again."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
               if (p / "initdb").exists()), None) if Path("/usr/lib/postgresql").exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self):
        if PG_BIN is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.as_root = os.geteuid() == 0
        if self.as_root and subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        self.wrap = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        self.tmp = Path(tempfile.mkdtemp(prefix="orch-pg-"))
        self.data, self.sock = self.tmp / "data", self.tmp / "sock"
        self.sock.mkdir()
        if self.as_root:
            shutil.chown(self.tmp, "postgres")
            shutil.chown(self.sock, "postgres")
        self.port = free_port()
        subprocess.run([*self.wrap, str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
        self.kills = 0
        self.start()

    def url(self, db: str = "orch") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        subprocess.run([*self.wrap, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.tmp / "log"), "-w",
                        "-t", "60", "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c max_connections=200", "start"], check=True, capture_output=True)
        import psycopg

        for _ in range(100):
            try:
                with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                                     autocommit=True, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not come back")

    def kill(self) -> None:
        """Crash it: immediate shutdown, every connection dropped mid-transaction."""
        subprocess.run([*self.wrap, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)
        self.kills += 1

    def create_db(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
