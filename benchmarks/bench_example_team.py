"""Cost of tests/test_example_team.py (the second team project adopting the library): wall and CPU
seconds (this process's children: pytest and the `dbt` / emulator processes it starts), for the
suite's CI budget. Prints; asserts nothing.

    .venv/bin/python benchmarks/bench_example_team.py [--repo DIR]   # DIR: another checkout, e.g. main
"""

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", type=Path, default=ROOT)
    args = parser.parse_args()
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "tests/test_example_team.py", "-q", "-n", "0",
                          "-p", "no:cacheprovider", "--durations=5"], cwd=args.repo, capture_output=True, text=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(out.stdout[-1500:])
    print(f"{args.repo}: wall {wall:.1f} s, CPU {usage.ru_utime + usage.ru_stime:.1f} s "
          f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
