"""The product as a user starts it: `orchestrator dev` prints the UI URL and the UI shows the graph.

Screenshots land in artifacts/ui/ (look at them: the grouped lineage and one dashboard's upstream chain).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "ui"
GROUPS = [
    "fivetran_salesforce", "fivetran_stripe", "fivetran_zendesk",
    "airbyte_product", "airbyte_hubspot", "airbyte_google_ads",
    "dbt_staging", "dbt_intermediate", "dbt_marts", "dashboards",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def running_product(tmp_path_factory):
    env = {
        **os.environ,
        "ORCHESTRATOR_HOME": str(tmp_path_factory.mktemp("ui_home")),
        "ORCHESTRATOR_FIVETRAN_PORT": str(free_port()),
        "ORCHESTRATOR_AIRBYTE_PORT": str(free_port()),
    }
    for name in [n for n in env if n.startswith(("FIVETRAN_", "AIRBYTE_")) or n in ("ORCHESTRATOR_LANDING_DIR", "ORCHESTRATOR_DUCKDB_PATH")]:
        del env[name]  # the embedded defaults, as on a fresh machine
    port = free_port()
    orchestrator = Path(sys.executable).with_name("orchestrator")
    process = subprocess.Popen(
        [str(orchestrator), "dev", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    url, lines, deadline = None, [], time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith("Dagster UI: "):
            url = line.split()[2]
            break
    try:
        assert url == f"http://127.0.0.1:{port}", "".join(lines[-30:])
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_ui_shows_the_connected_asset_graph(running_product, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 2200, "height": 1300})
    page.goto(f"{running_product}/asset-groups", wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")  # first-visit community dialog
    if skip.count():
        skip.click()
    for group in GROUPS:
        page.get_by_text(group, exact=True).last.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "asset-graph.png"))

    # One dashboard's whole upstream chain, expanded: connector tables -> staging -> marts -> dashboard.
    page.goto(
        f"{running_product}/assets/dashboard/executive_revenue?view=lineage&lineageScope=upstream&lineageDepth=6",
        wait_until="networkidle",
    )
    for name in ("fct_mrr", "invoice", "customer", "executive_revenue"):
        page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "executive-revenue-lineage.png"))
    assert (ARTIFACTS / "asset-graph.png").stat().st_size > 20_000
