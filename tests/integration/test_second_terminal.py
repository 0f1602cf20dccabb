"""A second terminal beside `orderflow up`: with the stack's facts file in the state dir and
no DATABASE_URL / ORDERFLOW_API_URL in the environment, `orderflow report` reaches the
stack's PostgreSQL and `orderflow status` its API; a file left by a dead stack is ignored."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from orderflow.settings import Settings
from orderflow.stack_facts import facts_path, remove_facts, running_stack_facts, write_facts
from tests.helpers import order_json
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_env, database_url, policy=OrderPolicy.instant(auto_warehouse=True)
    ) as running:
        yield running


def _cli(state_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "ORDERFLOW_API_URL")
        and not k.startswith("ORDERFLOW_")
    }
    env.update(PYTHONPATH=str(ROOT), ORDERFLOW_STATE_DIR=str(state_dir), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _run(state_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # In a thread: the API under test serves from this event loop.
    return await asyncio.to_thread(_cli, state_dir, cwd, *args)


def _facts(stack: Stack) -> dict[str, object]:
    return {
        "database_url": stack.database_url,
        "temporal_address": "127.0.0.1:1",
        "api_url": f"http://127.0.0.1:{stack.settings.api_port}",
    }


async def test_report_and_status_reach_the_running_stack(stack: Stack, tmp_path: Path) -> None:
    body = order_json()
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    state = tmp_path / "state"

    # Without the file: the command says what is missing.
    refused = await _run(state, tmp_path, "report", "--json")
    assert refused.returncode != 0
    assert "DATABASE_URL is not set" in refused.stderr + refused.stdout

    # The file names this process (pytest) as the stack's supervisor: alive, so it counts.
    path = write_facts(state, _facts(stack))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    report = await _run(state, tmp_path, "report", "--json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data, report.stdout

    status = await _run(state, tmp_path, "status", body["order_id"])
    assert status.returncode == 0, status.stderr + status.stdout
    assert f"order {body['order_id']}" in status.stdout

    remove_facts(state)
    assert not path.exists()


def test_a_file_of_a_dead_stack_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    path = facts_path(tmp_path)
    path.write_text(json.dumps({"pid": pid, "database_url": "postgresql://nowhere/x"}))
    assert running_stack_facts(tmp_path) is None
    assert Settings(state_dir=tmp_path).database_url is None


def test_settings_fall_back_to_the_facts_but_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", "ORDERFLOW_API_URL"):
        monkeypatch.delenv(name, raising=False)
    write_facts(
        tmp_path,
        {
            "database_url": "postgresql://postgres@127.0.0.1:5999/orderflow",
            "temporal_address": "127.0.0.1:7999",
            "api_url": "http://127.0.0.1:8999",
        },
    )
    settings = Settings(state_dir=tmp_path)
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5999/orderflow"
    assert settings.temporal_address == "127.0.0.1:7999"
    assert settings.api_url == "http://127.0.0.1:8999"

    monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/db")
    chosen = Settings(state_dir=tmp_path)
    assert chosen.database_url == "postgresql://elsewhere/db"
    assert chosen.temporal_address == "127.0.0.1:7999"
