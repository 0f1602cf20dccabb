"""Bad input at the edges on the real stack: values a client controls are bounded where they
enter (422 or 413, never a 500 or an order stuck on a value that can never pass), and queues
count from what the shop itself observed, not from what a client claims."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.inventory import InventoryActivities
from db.repositories import inventory, orders
from orderflow.models import OrderPolicy
from tests.helpers import order_json, wait_for_status
from tests.integration.inventory_support import make_order, new_sku
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


@pytest.mark.parametrize(
    "placed_at",
    [
        "0001-01-01T00:00:00+01:00",
        "1999-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        (datetime.now(UTC) - timedelta(days=31)).isoformat(),
        (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    ],
)
async def test_a_placed_at_outside_the_window_is_refused_with_422(
    stack: Stack, placed_at: str
) -> None:
    body = order_json(placed_at=placed_at)
    response = await stack.http("POST", "/orders", json=body)
    assert response.status_code == 422, response.text
    assert "placed_at" in response.json()["detail"]
    assert await orders.order_status(stack.pool, body["order_id"]) is None
    assert await stack.storefront.placed_input(body["order_id"]) is None


async def test_a_placed_at_inside_the_window_is_accepted_and_the_window_is_configured(
    temporal_env: WorkflowEnvironment, database_url: str, stack: Stack
) -> None:
    recent = order_json(placed_at=(datetime.now(UTC) - timedelta(days=2)).isoformat())
    assert (await stack.http("POST", "/orders", json=recent)).status_code == 202
    await wait_for_status(stack.pool, recent["order_id"], "COMPLETED")
    row = await stack.pool.fetchrow(
        "SELECT placed_at, received_at FROM orders WHERE order_id = $1", recent["order_id"]
    )
    # Recorded as the customer said, queued by when the shop received it.
    assert row["placed_at"] < datetime.now(UTC) - timedelta(days=1)
    assert row["received_at"] > datetime.now(UTC) - timedelta(minutes=5)
    async with running_stack(
        temporal_env,
        database_url,
        policy=OrderPolicy.instant(),
        placed_at_max_age=timedelta(days=1),
        with_worker=False,
    ) as strict:
        again = order_json(placed_at=(datetime.now(UTC) - timedelta(days=2)).isoformat())
        assert (await strict.http("POST", "/orders", json=again)).status_code == 422


async def test_the_backorder_queue_is_served_in_the_order_the_shop_received_orders(
    stack: Stack,
) -> None:
    """The second order claims a placed_at a day before the first: it still waits behind."""
    pool: asyncpg.Pool = stack.pool
    sku = await new_sku(pool, on_hand=0)
    now = datetime.now(UTC)
    first = make_order([(sku, 1)], placed_at=now)
    second = make_order([(sku, 1)], placed_at=now - timedelta(days=1))
    async with pool.acquire() as conn, conn.transaction():
        for n, order in enumerate((first, second)):
            assert order.placed_at is not None
            await orders.insert_order(
                conn,
                order,
                workflow_id=f"order-{order.order_id}",
                placed_at=order.placed_at,
                status="APPROVED",
                received_at=now + timedelta(seconds=n),
            )
    activities = InventoryActivities(pool, stack.settings)
    for order in (first, second):
        assert not (await activities.reserve_stock(order)).reserved
    async with pool.acquire() as conn:
        receipt = await inventory.receive_stock(
            conn, sku=sku, quantity=1, receipt_key=f"{sku}-fifo", received_by="test"
        )
    assert receipt.served_orders == [first.order_id]


async def test_a_chunked_body_over_the_limit_is_refused_with_413(stack: Stack) -> None:
    limit = stack.settings.api_max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: httpx sends an async iterator chunked.
        yield b'{"order_id": "'
        for _ in range(limit // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    response = await stack.http(
        "POST", "/orders", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["detail"]
    # The webhook reads its raw body itself: bounded the same way.
    webhook = await stack.http(
        "POST",
        "/carriers/dhl/events",
        role=None,
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert webhook.status_code == 413, webhook.text


async def test_huge_integers_are_422_never_500(stack: Stack) -> None:
    huge = 10**30
    body = order_json()
    body["items"][0]["quantity"] = huge
    assert (await stack.http("POST", "/orders", json=body)).status_code == 422
    receipt = await stack.http(
        "POST",
        "/purchasing/receipts",
        role="purchasing",
        json={"sku": "SKU-RED-MUG", "quantity": huge},
        headers={"Idempotency-Key": "huge"},
    )
    assert receipt.status_code == 422
    for method, path in (("GET", f"/mail/outbox/{huge}"), ("POST", f"/mail/outbox/{huge}/retry")):
        response = await stack.http(method, path, role="admin")
        assert response.status_code == 422, (path, response.text)
        assert "out of int64 range" in response.json()["detail"]
        assert "$1" not in response.json()["detail"]


async def test_an_order_id_with_the_key_separator_is_refused(stack: Stack) -> None:
    response = await stack.http("POST", "/orders", json=order_json(order_id="A-1:confirmation"))
    assert response.status_code == 422, response.text
    assert "order_id" in response.json()["detail"]
