"""Pre-orders on real parts: purchasing sets a product's release date over the API, an order
with it waits for that moment without reserving (its customer told when it ships), a moved
date reaches the waiting order and its customer, and on the release it reserves and ships."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.helpers import order_json, wait_for_status
from tests.integration.inventory_support import new_sku
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as s:
        yield s


async def _release(stack: Stack, sku: str, at: datetime) -> dict[str, object]:
    response = await stack.http(
        "POST",
        "/purchasing/releases",
        role="purchasing",
        json={"sku": sku, "release_at": at.isoformat(), "note": "supplier's date"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


async def _place(stack: Stack, sku: str) -> str:
    body = order_json(items=[(sku, 1)])
    body["items"][0]["unit_price"] = "12.50"
    body["payment"]["amount"] = "12.50"
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 202, response.text
    order_id: str = body["order_id"]
    return order_id


async def _kinds(stack: Stack, order_id: str) -> list[str]:
    rows = await stack.pool.fetch(
        "SELECT kind FROM notifications WHERE order_id = $1 ORDER BY id", order_id
    )
    return [r["kind"] for r in rows]


async def _waiting(stack: Stack, order_id: str) -> None:
    for _ in range(200):
        if (
            await stack.pool.fetchval("SELECT status FROM pre_orders WHERE order_id = $1", order_id)
            == "waiting"
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{order_id} never waited for its release")


async def test_a_pre_order_waits_for_the_release_then_ships(stack: Stack) -> None:
    sku = await new_sku(stack.pool, on_hand=10, prefix="PRE")
    await stack.pool.execute("UPDATE products SET unit_price = 12.50 WHERE sku = $1", sku)
    await _release(stack, sku, datetime.now(UTC) + timedelta(seconds=4))
    order_id = await _place(stack, sku)
    await _waiting(stack, order_id)
    assert (
        await stack.pool.fetchval("SELECT order_type FROM orders WHERE order_id = $1", order_id)
        == "pre_sale"
    )
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM reservations WHERE order_id = $1", order_id)
        == 0
    )
    assert "pre_order_waiting" in await _kinds(stack, order_id)
    assert await wait_for_status(stack.pool, order_id, "COMPLETED", timeout=60) == "COMPLETED"
    released = await stack.pool.fetchrow(
        "SELECT status, released_at, release_at FROM pre_orders WHERE order_id = $1", order_id
    )
    assert released["status"] == "released"
    assert released["released_at"] >= released["release_at"]


async def test_a_moved_release_reaches_the_waiting_order_and_its_customer(stack: Stack) -> None:
    sku = await new_sku(stack.pool, on_hand=10, prefix="PRM")
    await stack.pool.execute("UPDATE products SET unit_price = 12.50 WHERE sku = $1", sku)
    await _release(stack, sku, datetime.now(UTC) + timedelta(days=30))
    order_id = await _place(stack, sku)
    await _waiting(stack, order_id)
    # The supplier delivers early: purchasing moves the release to a few seconds from now.
    answer = await _release(stack, sku, datetime.now(UTC) + timedelta(seconds=3))
    assert answer["moved_orders"] == [order_id]
    assert await wait_for_status(stack.pool, order_id, "COMPLETED", timeout=60) == "COMPLETED"
    kinds = await _kinds(stack, order_id)
    assert kinds.count("pre_order_waiting") == 1 and kinds.count("release_date_moved") == 1
    moves = await stack.pool.fetchval("SELECT moves FROM pre_orders WHERE order_id = $1", order_id)
    assert moves == 1


async def test_an_unknown_sku_has_no_release(stack: Stack) -> None:
    response = await stack.http(
        "POST",
        "/purchasing/releases",
        role="purchasing",
        json={"sku": "SKU-NOPE-NOPE", "release_at": "2027-01-01T00:00:00Z"},
    )
    assert response.status_code == 404
    naive = await stack.http(
        "POST",
        "/purchasing/releases",
        role="purchasing",
        json={"sku": "SKU-RED-MUG", "release_at": "2027-01-01T00:00:00"},
    )
    assert naive.status_code == 422
