"""`orderflow up` from a fresh clone: the whole embedded stack starts, takes an order, shows
it in the Web UI's visibility, stops cleanly on Ctrl-C, and a second start reuses the data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stack.supervisor import free_ports
from tests.helpers import order_json

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _clone(into: Path) -> Path:
    clone = into / "orderflow"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(clone)], check=True
    )
    return clone


def _start(clone: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "up"],
        cwd=clone,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_healthy(api: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"orderflow up exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"stack not healthy in time:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=90)


def test_up_runs_the_stack_and_reuses_its_data(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    grpc, ui, api_port, pg, sim, smtp, mailbox, psp, market = free_ports(9)
    env = {
        **os.environ,
        "PYTHONPATH": str(clone),
        "ORDERFLOW_TEMPORAL_GRPC_PORT": str(grpc),
        "ORDERFLOW_TEMPORAL_UI_PORT": str(ui),
        "ORDERFLOW_API_PORT": str(api_port),
        "ORDERFLOW_POSTGRES_PORT": str(pg),
        "ORDERFLOW_CARRIER_SIMULATOR_PORT": str(sim),
        "ORDERFLOW_PSP_SIMULATOR_PORT": str(psp),
        "ORDERFLOW_MARKETPLACE_SIMULATOR_PORT": str(market),
        # A demo order arrives on each simulated marketplace every second.
        "ORDERFLOW_MARKETPLACE_SIMULATOR_DEMO_SECONDS": "1",
        # The embedded mail server, away from a developer's own on 1025 / 8025.
        "ORDERFLOW_SMTP_PORT": str(smtp),
        "ORDERFLOW_MAIL_SIMULATOR_HTTP_PORT": str(mailbox),
    }
    for name in (
        "DATABASE_URL",
        "TEMPORAL_ADDRESS",
        "ORDERFLOW_API_URL",
        "ORDERFLOW_SMTP_HOST",
        "ORDERFLOW_MARKETPLACES",
    ):
        env.pop(name, None)
    api = f"http://127.0.0.1:{api_port}"
    log = tmp_path / "up.log"
    headers = {"Authorization": "Bearer dev-storefront"}
    body = order_json()

    process = _start(clone, env, log)
    try:
        _wait_healthy(api, process, log)
        # The banner follows the API's first answer by a moment.
        deadline = time.monotonic() + 30
        while "Press Ctrl-C" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "dev-reviewer" in log.read_text()
        placed = httpx.post(f"{api}/orders", json=body, headers=headers, timeout=30)
        assert placed.status_code == 202, placed.text
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and status not in (
            "SHIPPED",
            "IN_TRANSIT",
            "OUT_FOR_DELIVERY",
            "DELIVERED",
            "COMPLETED",
        ):
            status = httpx.get(
                f"{api}/orders/{body['order_id']}", headers=headers, timeout=10
            ).json()["status"]
            time.sleep(0.5)
        assert status in ("SHIPPED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "COMPLETED")
        assert httpx.get(f"http://127.0.0.1:{ui}/", timeout=10).status_code == 200
        # The customer's mails went over SMTP to the embedded mail server, which keeps them.
        deadline = time.monotonic() + 60
        mails: list[dict[str, str]] = []
        while time.monotonic() < deadline and not mails:
            mails = httpx.get(
                f"http://127.0.0.1:{mailbox}/messages",
                params={"to": body["customer"]["email"]},
                timeout=10,
            ).json()
            time.sleep(0.5)
        assert mails and {m["order_id"] for m in mails} == {body["order_id"]}
        visible = subprocess.run(
            [
                str(Path(sys.executable).parent / "temporal"),
                "workflow",
                "list",
                "--address",
                f"127.0.0.1:{grpc}",
                "--query",
                f"WorkflowId = 'order-{body['order_id']}' AND OrderStatus IS NOT NULL",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert body["order_id"] in visible.stdout
        # Orders from the simulated marketplaces are placed and acknowledged.
        admin = {"Authorization": "Bearer dev-admin"}
        deadline = time.monotonic() + 90
        feeds: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            feeds = httpx.get(f"{api}/channels", headers=admin, timeout=10).json()
            placed_acked = [
                f for f in feeds if int(str(f["placed"])) > int(str(f["unacknowledged"]))
            ]
            if len(placed_acked) == 2:
                break
            time.sleep(0.5)
        assert sorted(str(f["marketplace"]) for f in feeds) == ["mkt-a", "mkt-b"], feeds
        assert all(int(str(f["placed"])) >= 1 for f in feeds), feeds
    finally:
        code = _stop(process)
    assert code == 0, log.read_text()[-3000:]
    assert (clone / ".orderflow" / "temporal.db").exists()
    assert (clone / ".orderflow" / "postgres" / "PG_VERSION").exists()

    # A second start finds the same order, in PostgreSQL and in Temporal.
    process = _start(clone, env, log)
    try:
        _wait_healthy(api, process, log)
        again = httpx.post(f"{api}/orders", json=body, headers=headers, timeout=30)
        assert again.status_code == 200, again.text
        view = httpx.get(f"{api}/orders/{body['order_id']}", headers=headers, timeout=10).json()
        assert view["timeline"] and view["timeline"][0]["status"] == "RECEIVED"
    finally:
        assert _stop(process) == 0
    assert json.loads(json.dumps(view))["order_id"] == body["order_id"]
