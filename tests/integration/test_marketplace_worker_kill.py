"""Two marketplaces feeding 50 orders each while the worker (its own process, as deployed)
is killed with SIGKILL mid-feed and started again: every order is placed exactly once,
acknowledged once, and its shipment pushed once with its tracking number."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from orderflow.settings import Settings
from simulators.marketplaces import create_app as create_marketplace
from stack.supervisor import ManagedProcess, free_port
from tests.servers import Stack, fresh_database, prepare, running_stack, serve
from workflows.marketplace_poller import poller_id

pytestmark = pytest.mark.integration

KEY = "kill-test-marketplace-key"
CODES = ("mkt-a", "mkt-b")
PER_MARKETPLACE = 50


@pytest.fixture
async def world(
    temporal_env: WorkflowEnvironment, postgres_server_url: str
) -> AsyncIterator[tuple[Stack, str]]:
    url = await fresh_database(postgres_server_url)
    await prepare(url)
    port = free_port()
    sim = Settings(
        marketplace_simulator_port=port,
        marketplace_simulator_api_key=KEY,
        marketplace_simulator_codes=list(CODES),
    )
    async with (
        serve(create_marketplace(sim), port),
        running_stack(temporal_env, url, policy=OrderPolicy.instant(), with_worker=False) as stack,
    ):
        try:
            yield stack, f"http://127.0.0.1:{port}"
        finally:
            for code in CODES:
                try:
                    await stack.client.get_workflow_handle(poller_id(code)).terminate("over")
                except Exception:
                    pass


def _worker(stack: Stack, markets: str, log_dir: Path) -> ManagedProcess:
    s = stack.settings
    env = {
        "DATABASE_URL": stack.database_url,
        "TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "ORDERFLOW_TASK_QUEUE": s.task_queue,
        "ORDERFLOW_CARRIER_API_URL": s.carrier_api_url,
        "ORDERFLOW_CARRIER_WEBHOOK_BASE_URL": s.carrier_webhook_base_url,
        "ORDERFLOW_PSP_API_URL": s.psp_api_url,
        "ORDERFLOW_ORDER_POLICY": OrderPolicy.instant().model_dump_json(),
        "ORDERFLOW_RISK_FLAG_THRESHOLD": str(s.risk_flag_threshold),
        "ORDERFLOW_WORKER_METRICS_PORT": "0",
        # Small pages: the kill lands between pages as well as inside one.
        "ORDERFLOW_MARKETPLACE_PAGE_SIZE": "7",
        "ORDERFLOW_MARKETPLACES": json.dumps(
            [
                {"code": c, "base_url": f"{markets}/{c}", "api_key": KEY, "poll_seconds": 0.3}
                for c in CODES
            ]
        ),
    }
    return ManagedProcess(
        "worker", [sys.executable, "-m", "app.cli", "worker"], log_dir / "worker.log", env
    )


async def _records(markets: str, code: str, what: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as http:
        response = await http.get(f"{markets}/{code}/{what}", timeout=10)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found


async def test_a_worker_killed_mid_feed_places_acknowledges_and_pushes_each_order_once(
    world: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, markets = world
    added: dict[str, list[str]] = {code: [] for code in CODES}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as http:
        for code in CODES:
            for _ in range(PER_MARKETPLACE):
                response = await http.post(f"{markets}/{code}/orders", json={}, timeout=10)
                assert response.status_code == 201, response.text
                added[code].append(response.json()["id"])
    order_ids = [f"{code}-{ext}" for code in CODES for ext in added[code]]

    async def placed() -> int:
        return int(
            await stack.pool.fetchval(
                "SELECT count(*) FROM orders WHERE order_id = ANY($1::text[])", order_ids
            )
        )

    worker = _worker(stack, markets, tmp_path)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        for _ in range(2400):
            if await placed() >= 15 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        worker.kill()
        assert 0 < await placed() < len(order_ids), "the kill must land mid-feed"
        await asyncio.sleep(1)
        worker.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            completed = await stack.pool.fetchval(
                "SELECT count(*) FROM orders WHERE order_id = ANY($1::text[]) "
                "AND status = 'COMPLETED'",
                order_ids,
            )
            if completed == len(order_ids):
                break
            # An order the risk review flags waits for a person, as any order would.
            for order_id in await stack.pool.fetchval(
                "SELECT coalesce(array_agg(order_id), '{}') FROM orders "
                "WHERE order_id = ANY($1::text[]) AND status = 'PENDING_REVIEW'",
                order_ids,
            ):
                await stack.http(
                    "POST",
                    f"/reviews/{order_id}/decision",
                    role="reviewer",
                    json={"decision": "approve", "note": "checked"},
                )
            await asyncio.sleep(0.5)
        assert completed == len(order_ids), f"{completed} of {len(order_ids)} completed"
        # Pushes and acknowledgements settle a moment after the orders.
        await asyncio.sleep(2)
    finally:
        worker.stop()

    assert await placed() == len(order_ids)
    tracking = {
        r["order_id"]: r["tracking_number"]
        for r in await stack.pool.fetch(
            "SELECT order_id, tracking_number FROM shipments WHERE order_id = ANY($1::text[])",
            order_ids,
        )
    }
    assert len(tracking) == len(order_ids)
    for code in CODES:
        acks = [a["id"] for a in await _records(markets, code, "acknowledgements")]
        assert sorted(acks) == sorted(added[code]), code
        shipments = await _records(markets, code, "shipments")
        assert sorted(s["id"] for s in shipments) == sorted(added[code]), code
        for shipment in shipments:
            assert shipment["tracking_number"] == tracking[f"{code}-{shipment['id']}"]
