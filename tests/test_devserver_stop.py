"""`dev.py up` / `orchestrator dev` stops everything it started on SIGTERM and Ctrl-C, grandchildren
included - against a stand-in for `dagster dev` that, like the real one on SIGTERM, exits without
stopping its children (one of which ignores SIGINT and SIGTERM)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_DAGSTER = r'''#!{python}
import http.server, os, signal, subprocess, sys, threading
port = int(sys.argv[sys.argv.index("-p") + 1])
stubborn = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
kids = [subprocess.Popen([sys.executable, "-c", stubborn]),
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])]
with open(os.environ["FAKE_PIDS"], "w") as f:
    f.write(" ".join(str(p) for p in [os.getpid(), *(k.pid for k in kids)]))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{{}}")
    def log_message(self, *a): pass
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))  # leaves its children behind
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_bin(tmp_path):
    """A bin/ with `python` (the venv's interpreter, so `_bin` resolves siblings here) and a fake `dagster`."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    shutil.copy(Path(sys.executable).parent.parent / "pyvenv.cfg", tmp_path / "venv" / "pyvenv.cfg")
    dagster = bin_dir / "dagster"
    dagster.write_text(FAKE_DAGSTER.format(python=sys.executable))
    dagster.chmod(0o755)
    return bin_dir


def _start_dev(tmp_path, fake_bin, grace: str | None):
    pids_file = tmp_path / "pids"
    env = {**os.environ, "FAKE_PIDS": str(pids_file), "ORCHESTRATOR_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])}
    env.pop("ORCHESTRATOR_DEV_STOP_GRACE", None)
    if grace is not None:
        env["ORCHESTRATOR_DEV_STOP_GRACE"] = grace
    proc = subprocess.Popen([str(fake_bin / "python"), "-m", "orchestrator.cli", "dev", "--no-emulators",
                             "--port", str(_free_port())], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    seen = ""
    while "Dagster UI:" not in seen and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
    assert "Dagster UI:" in seen, seen
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 3 and all(_alive(p) for p in pids)
    return proc, pids


def _assert_all_gone_soon(pids, within: float = 10.0):
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in pids if _alive(p)] == [], "processes survived"


def _cleanup(proc, pids):
    if proc.poll() is None:
        proc.kill()
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_dev_stops_every_process_it_started(tmp_path, fake_bin, how):
    proc, pids = _start_dev(tmp_path, fake_bin, grace="1")
    try:
        proc.send_signal(how)
        proc.wait(timeout=30)
        _assert_all_gone_soon(pids)
    finally:
        _cleanup(proc, pids)


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc")
def test_sigterm_with_the_defaults_leaves_nothing_after_a_few_seconds(tmp_path, fake_bin):
    """SIGTERM with no setting changed: `orchestrator dev` (what `dev.py up` execs into) and every
    process it started, one ignoring SIGTERM included, are gone a few seconds later - the contract
    is "a few seconds", not the 15 s grace + 5 s + 5 s it used to wait out."""
    proc, pids = _start_dev(tmp_path, fake_bin, grace=None)
    try:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pytest.fail("orchestrator dev still running 8 s after SIGTERM")
        assert proc.returncode == 0
        assert [p for p in pids if _alive(p)] == [], "processes survived their supervisor"
    finally:
        _cleanup(proc, pids)


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM-twice", "ctrl-c-twice"])
def test_a_second_signal_while_stopping_does_not_orphan_anything(tmp_path, fake_bin, how):
    """A supervisor that repeats SIGTERM, or a user pressing Ctrl-C again, while the first stop waits
    for the child that ignores SIGTERM: the stop still reaches its SIGKILL phase (a second SIGTERM used
    to exit at once and leave that child running)."""
    proc, pids = _start_dev(tmp_path, fake_bin, grace="1")
    try:
        proc.send_signal(how)
        time.sleep(0.5)  # inside the first stop's wait
        proc.send_signal(how)
        proc.wait(timeout=30)
        _assert_all_gone_soon(pids)
    finally:
        _cleanup(proc, pids)


def test_emulator_ports_are_documented_settings(monkeypatch):
    """The ports the README lists are settings the embedded resources follow."""
    from orchestrator import resources
    from orchestrator.settings import get_settings

    for name in [n for n in os.environ if n.startswith(("FIVETRAN_", "AIRBYTE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ORCHESTRATOR_FIVETRAN_PORT", "18801")
    monkeypatch.setenv("ORCHESTRATOR_AIRBYTE_PORT", "18802")
    get_settings.cache_clear()
    try:
        assert resources.fivetran_workspace().api_base_url == "http://127.0.0.1:18801"
        assert resources.airbyte_workspace().rest_api_base_url == "http://127.0.0.1:18802/api/public/v1"
    finally:
        get_settings.cache_clear()
    readme = (ROOT / "README.md").read_text()
    for setting in ("ORCHESTRATOR_FIVETRAN_PORT", "ORCHESTRATOR_AIRBYTE_PORT", "ORCHESTRATOR_DEV_STOP_GRACE"):
        assert setting in readme
