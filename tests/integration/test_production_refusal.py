"""The serving processes really refuse production mode with development secrets: `orderflow
api`, `orderflow worker` and `orderflow up` exit at once, non-zero, naming the setting on
stderr without a traceback, and `up` starts no server first; `up` shows an external
database's URL without its password."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.demo_carriers import DEMO_CARRIERS
from orderflow.settings import ROLES
from stack.supervisor import free_ports

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _environment(state: Path, **extra: str) -> dict[str, str]:
    """A clean environment: none of the caller's orderflow settings, production mode."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ORDERFLOW_", "TEMPORAL_")) and key != "DATABASE_URL"
    }
    env.update(PYTHONPATH=str(ROOT), ORDERFLOW_MODE="production", ORDERFLOW_STATE_DIR=str(state))
    env.update(extra)
    return {key: value for key, value in env.items() if value}


def _run(
    command: str, cwd: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", command],
        cwd=cwd,  # away from the repository's own .env, if a developer keeps one
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, time.monotonic() - started


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("command", ["api", "worker"])
def test_api_and_worker_refuse_development_secrets(command: str, tmp_path: Path) -> None:
    # A database URL that would be tried: the refusal comes before any connection.
    (port,) = free_ports(1)
    env = _environment(
        tmp_path / "state", DATABASE_URL=f"postgresql://shop:pw@127.0.0.1:{port}/orderflow"
    )
    done, took = _run(command, tmp_path, env)
    assert done.returncode != 0
    assert took < 30
    assert "ORDERFLOW_CUSTOMER_TOKEN_SECRET is the development default" in done.stderr
    assert "ORDERFLOW_API_TOKENS (role 'admin') is unset" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_up_refuses_before_starting_anything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    grpc, ui, pg, api = free_ports(4)
    env = _environment(
        state,
        ORDERFLOW_TEMPORAL_GRPC_PORT=str(grpc),
        ORDERFLOW_TEMPORAL_UI_PORT=str(ui),
        ORDERFLOW_POSTGRES_PORT=str(pg),
        ORDERFLOW_API_PORT=str(api),
    )
    done, took = _run("up", tmp_path, env)
    assert done.returncode != 0
    assert took < 30
    assert "ORDERFLOW_CUSTOMER_TOKEN_SECRET is the development default" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    # No PostgreSQL, no Temporal dev server: not started, not even their state directory.
    assert "starting" not in done.stdout
    assert not state.exists()
    assert not any(_listening(port) for port in (grpc, ui, pg, api))


def test_a_fully_configured_production_passes_the_check(tmp_path: Path) -> None:
    """The environment forms of .env.example are accepted: the API gets past the check
    and stops only at what this test leaves out, the database."""
    env = _environment(
        tmp_path / "state",
        ORDERFLOW_CUSTOMER_TOKEN_SECRET=secrets.token_urlsafe(32),
        ORDERFLOW_API_TOKENS=json.dumps({role: secrets.token_urlsafe(32) for role in ROLES}),
        ORDERFLOW_CARRIER_WEBHOOK_SECRETS=json.dumps(
            {carrier.code: secrets.token_urlsafe(32) for carrier in DEMO_CARRIERS}
        ),
        ORDERFLOW_PAYLOAD_KEYS=json.dumps(
            {"k1": base64.b64encode(secrets.token_bytes(32)).decode()}
        ),
        ORDERFLOW_PAYLOAD_KEY_ID="k1",
        ORDERFLOW_PSP_API_KEY=secrets.token_urlsafe(32),
        ORDERFLOW_PSP_WEBHOOK_SECRET=secrets.token_urlsafe(32),
        ORDERFLOW_API_PORT=str(free_ports(1)[0]),
    )
    done, _ = _run("api", tmp_path, env)
    assert "refusing to start" not in done.stderr
    assert "DATABASE_URL is not set" in done.stderr + done.stdout


def _start_up(cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "up"],
        cwd=cwd,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def test_up_masks_the_password_of_an_external_database(
    database_url: str, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    scheme, _, rest = database_url.partition("://")
    user, _, host = rest.partition("@")
    if ":" in user:
        pytest.skip("the test database has a password of its own")
    # The embedded test server trusts local connections, so any password opens it.
    password = secrets.token_urlsafe(16)
    external = f"{scheme}://{user}:{password}@{host}"
    api, carrier, psp, smtp, mailbox = free_ports(5)
    env = _environment(
        tmp_path / "state",
        ORDERFLOW_MODE="",  # development: the embedded stack as everyone starts it
        DATABASE_URL=external,
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        # Its own task queue: this stack's worker takes no other test's tasks.
        ORDERFLOW_TASK_QUEUE=f"up-masked-{secrets.token_hex(4)}",
        ORDERFLOW_API_PORT=str(api),
        ORDERFLOW_CARRIER_SIMULATOR_PORT=str(carrier),
        ORDERFLOW_PSP_SIMULATOR_PORT=str(psp),
        ORDERFLOW_SMTP_PORT=str(smtp),
        ORDERFLOW_MAIL_SIMULATOR_HTTP_PORT=str(mailbox),
    )
    log = tmp_path / "up.log"
    process = _start_up(tmp_path, env, log)

    def banner() -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            text = log.read_text()
            if "Press Ctrl-C" in text:
                return text
            time.sleep(0.3)
        raise AssertionError(f"no banner:\n{log.read_text()[-3000:]}")

    try:
        text = await asyncio.to_thread(banner)
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.to_thread(process.wait, 90)
    assert f"{user}:***@{host}" in text
    assert password not in log.read_text()
