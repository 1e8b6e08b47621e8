#!/usr/bin/env python3
"""Bootstrap and run the project with nothing but Python 3.11 installed.

    python3 dev.py up      start the product on its embedded defaults, print the UI URL
    python3 dev.py test    run the whole test suite (extra arguments go to pytest)

Both create .venv from requirements.lock when it is missing or the lock changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".installed-lock-sha256"
UV_VERSION = "0.13.8"
# Part of the stamp: changing how the environment is installed re-installs it once.
INSTALL_RECIPE = b"uv-sync --compile-bytecode"


def _lock_digest() -> str:
    digest = hashlib.sha256(LOCK.read_bytes())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    digest.update(INSTALL_RECIPE)
    return digest.hexdigest()


def ensure_environment() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Python >= 3.11 is required, this is {sys.version.split()[0]}")
    if STAMP.exists() and STAMP.read_text() == _lock_digest():
        return
    if not (BIN / "python").exists():
        print(f"Creating virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing locked dependencies (first run takes a minute) ...", flush=True)
    run([BIN / "python", "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"])
    env = {**os.environ, "VIRTUAL_ENV": str(VENV)}
    # Bytecode compiled at install: every command and test subprocess would otherwise compile
    # dagster & co. from source when .pyc cannot be written (PYTHONDONTWRITEBYTECODE, read-only
    # site-packages) - about half of a CLI command's time.
    run([BIN / "uv", "pip", "sync", "--compile-bytecode", "--python", BIN / "python", LOCK], env=env)
    run([BIN / "uv", "pip", "install", "--python", BIN / "python", "--no-deps", "-e", ROOT], env=env)
    STAMP.write_text(_lock_digest())


def run(cmd, **kwargs) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)


def _parallel_args(rest: list[str]) -> list[str]:
    """The suite runs on every core (pytest-xdist); tests sharing the repository's dbt project are kept on
    one worker by conftest.py. `-n 0` (or any -n / -p no:xdist given) overrides it."""
    if any(a == "-n" or a.startswith(("-n", "--numprocesses")) or a == "no:xdist" for a in rest):
        return []
    workers = min(os.cpu_count() or 1, 4)
    return ["-n", str(workers), "--dist", "loadgroup"] if workers > 1 else []


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"up", "test"}:
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "up":
        args = [str(BIN / "orchestrator"), "dev", *rest]
    else:
        # The whole suite prints its slowest tests, so CI logs show where the time goes.
        report = [] if rest else ["--durations=20"]
        args = [str(BIN / "python"), "-m", "pytest", *_parallel_args(rest), *report, *rest]
    os.chdir(ROOT)
    os.execv(args[0], args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
