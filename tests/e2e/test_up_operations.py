"""`orderflow up` as a long-running service, from this working tree (not a clone, so it tests
what is on disk): two worker processes with their own logs and metrics ports; killing every
worker with SIGKILL leaves the stack up, the supervisor restarts them, and an order placed
afterwards is delivered; a second terminal's `orderflow report` finds the stack through
`.orderflow/stack.json`; the API serves `/metrics`; Ctrl-C stops it and removes the file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.metrics import sample
from stack.supervisor import free_port, free_ports, port_is_free
from tests.helpers import order_json

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _metrics_base() -> int:
    """A port p with p + 1 free as well (the two workers' metrics ports)."""
    for _ in range(50):
        port = free_port()
        if port < 65000 and port_is_free(port + 1):
            return port
    raise AssertionError("no two adjacent free ports")


def _wait(what: str, check: Any, log: Path, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} not in time:\n{log.read_text()[-4000:]}")


def test_up_restarts_killed_workers_and_serves_metrics(tmp_path: Path) -> None:
    grpc, ui, api_port, pg, sim, smtp, mailbox, psp, market = free_ports(9)
    metrics = _metrics_base()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ORDERFLOW_TEMPORAL_GRPC_PORT": str(grpc),
        "ORDERFLOW_TEMPORAL_UI_PORT": str(ui),
        "ORDERFLOW_API_PORT": str(api_port),
        "ORDERFLOW_POSTGRES_PORT": str(pg),
        "ORDERFLOW_CARRIER_SIMULATOR_PORT": str(sim),
        "ORDERFLOW_CARRIER_SIMULATOR_MODE": "instant",
        "ORDERFLOW_PSP_SIMULATOR_PORT": str(psp),
        "ORDERFLOW_MARKETPLACE_SIMULATOR_PORT": str(market),
        "ORDERFLOW_SMTP_PORT": str(smtp),
        "ORDERFLOW_MAIL_SIMULATOR_HTTP_PORT": str(mailbox),
        "ORDERFLOW_WORKER_METRICS_PORT": str(metrics),
        "ORDERFLOW_METRICS_REFRESH_SECONDS": "1",
    }
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", "ORDERFLOW_API_URL", "ORDERFLOW_SMTP_HOST"):
        env.pop(name, None)
    api = f"http://127.0.0.1:{api_port}"
    log = tmp_path / "up.log"
    facts_file = tmp_path / ".orderflow" / "stack.json"
    headers = {"Authorization": "Bearer dev-storefront"}

    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "up", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        facts = _wait(
            "stack.json",
            lambda: process.poll() is None and json.loads(facts_file.read_text()),
            log,
        )
        assert facts["pid"] == process.pid
        assert oct(facts_file.stat().st_mode & 0o777) == "0o600"
        assert facts["api_url"] == api and facts["temporal_address"]
        assert facts["worker_metrics_ports"] == [metrics, metrics + 1]
        workers = {n: p for n, p in facts["processes"].items() if n.startswith("worker")}
        assert set(workers) == {"worker-1", "worker-2"}
        assert (tmp_path / ".orderflow" / "logs" / "worker-2.log").exists()
        _wait("healthy API", lambda: httpx.get(f"{api}/healthz", timeout=2).is_success, log)

        # Each worker serves its metrics on its own port, gauges from PostgreSQL included.
        for port in (metrics, metrics + 1):
            text = _wait(
                f"metrics on {port}",
                lambda port=port: (
                    (t := httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
                    and "orderflow_outbox_due_rows" in t
                    and "temporal_" in t
                    and t
                ),
                log,
            )
            assert sample(text, "orderflow_metrics_refresh_failures") == 0

        # Crash every worker at once.
        for pid in workers.values():
            os.kill(pid, signal.SIGKILL)
        restarted = _wait(
            "restarted workers",
            lambda: (
                all(
                    json.loads(facts_file.read_text())["processes"][name] not in (None, pid)
                    for name, pid in workers.items()
                )
                and json.loads(facts_file.read_text())["processes"]
            ),
            log,
            timeout=60,
        )
        assert process.poll() is None, "the stack stopped when its workers died"
        assert "restarting it in" in log.read_text()

        body = order_json()
        placed = httpx.post(f"{api}/orders", json=body, headers=headers, timeout=30)
        assert placed.status_code == 202, placed.text
        final = _wait(
            "order delivered",
            lambda: (
                (
                    s := httpx.get(f"{api}/orders/{body['order_id']}", headers=headers, timeout=10)
                    .json()
                    .get("status")
                )
                in ("DELIVERED", "COMPLETED")
                and s
            ),
            log,
            timeout=150,
        )
        assert final in ("DELIVERED", "COMPLETED")
        for name in workers:
            assert psutil_alive(restarted[name]), name

        # The API's metrics counted the order.
        api_metrics = httpx.get(f"{api}/metrics", timeout=10).text
        assert (sample(api_metrics, "orderflow_orders_placed_total") or 0) >= 1

        # A second terminal: no DATABASE_URL, same working directory.
        second_env = {
            k: v
            for k, v in env.items()
            if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "ORDERFLOW_API_URL")
        }
        report = subprocess.run(
            [sys.executable, "-m", "app.cli", "report", "--json"],
            cwd=tmp_path,
            env=second_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert report.returncode == 0, report.stderr + report.stdout
        assert json.loads(report.stdout)

        # A second `orderflow up` beside it refuses, naming the running one.
        second = subprocess.run(
            [sys.executable, "-m", "app.cli", "up"],
            cwd=tmp_path,
            env=second_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode != 0
        assert "already running" in second.stdout + second.stderr
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=90)
    assert code == 0, log.read_text()[-4000:]
    assert not facts_file.exists()


def psutil_alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
