"""Placement a storefront can read back at once: after `POST /orders` (or the client's
`place_order`) answers, the order is found by `GET /orders/{id}`, its customer's token and
a cancel — also while no worker runs at all. A cancel that no worker can take yet is
answered 202 "pending", kept with the order, and carried out exactly once when a worker
returns."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import Order, OrderPolicy
from tests.helpers import events_of, order_json, wait_for_status
from tests.integration.fulfilment_support import wait_awaiting
from tests.servers import Stack, running_stack
from workers.order_worker import build_worker

pytestmark = pytest.mark.integration

MANUAL = OrderPolicy.instant(auto_warehouse=False)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    # No worker of its own: each test starts one when it wants the orders to move. A cancel
    # waits two seconds for a worker before it is left with the order.
    async with running_stack(
        temporal_env, database_url, policy=MANUAL, with_worker=False, api_update_wait_seconds=2.0
    ) as running:
        yield running


@contextlib.asynccontextmanager
async def worker_running(stack: Stack) -> AsyncIterator[None]:
    async with (
        httpx.AsyncClient() as http,
        build_worker(stack.client, stack.pool, http, stack.settings),
    ):
        yield


async def _cancel(stack: Stack, order_id: str, token: str) -> httpx.Response:
    return await stack.http(
        "POST",
        f"/orders/{order_id}/cancel",
        role=None,
        headers={"Authorization": f"Bearer {token}"},
        json={"reason": "ordered by mistake"},
    )


async def _refunds(stack: Stack, order_id: str) -> list[Decimal]:
    rows = await stack.pool.fetch("SELECT amount FROM refunds WHERE order_id = $1", order_id)
    return [r["amount"] for r in rows]


async def test_an_order_placed_while_no_worker_runs_is_read_back_and_cancelled_once(
    stack: Stack,
) -> None:
    body = order_json(items=[("SKU-RED-MUG", 2)])
    order_id = body["order_id"]
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    token = placed.json()["access_token"]

    # Read back at once, by the storefront and by the customer: no worker has run step 1.
    assert await stack.pool.fetchval("SELECT 1 FROM orders WHERE order_id = $1", order_id) is None
    for headers, role in (({}, "storefront"), ({"Authorization": f"Bearer {token}"}, None)):
        seen = await stack.http("GET", f"/orders/{order_id}", role=role, headers=headers)
        assert seen.status_code == 200, seen.text
        view = seen.json()
        assert (view["status"], view["total"], view["currency"]) == ("RECEIVED", "25.00", "EUR")
    again = await stack.http("POST", "/orders", json=body)
    assert (again.status_code, again.json()["status"]) == (200, "RECEIVED")
    unknown = await stack.http("GET", "/orders/never-placed-1")
    assert unknown.status_code == 404

    # The cancel cannot be carried out yet: it is accepted as pending, twice alike.
    for _ in range(2):
        pending = await _cancel(stack, order_id, token)
        assert pending.status_code == 202, pending.text
        assert pending.json()["cancellation"] == "pending"
        assert "will be carried out" in pending.json()["detail"]
    assert await _refunds(stack, order_id) == []

    async with worker_running(stack):
        assert await wait_for_status(stack.pool, order_id, "CANCELLED") == "CANCELLED"
        handle = stack.storefront.handle(order_id)
        await handle.result()
    assert await _refunds(stack, order_id) == [Decimal("25.00")]
    kinds = [e["kind"] for e in await events_of(stack.pool, order_id)]
    assert kinds.count("order_cancelled") == 1 and kinds.count("payment_refunded") == 1
    # A retried cancel now gets the final answer.
    done = await _cancel(stack, order_id, token)
    assert (done.status_code, done.json()["status"]) == (200, "CANCELLED")


async def test_the_client_place_then_read_back_without_a_worker(stack: Stack) -> None:
    order = Order.model_validate(order_json(items=[("SKU-TEA-TIN", 1)]))
    placed = await stack.storefront.place_order(order)
    assert placed.created
    seen = await stack.http("GET", f"/orders/{order.order_id}")
    assert (seen.status_code, seen.json()["status"]) == (200, "RECEIVED")
    stream = await stack.http(
        "GET", f"/orders/{order.order_id}/feedback", role="storefront"
    )  # any order route finds it
    assert stream.status_code == 200, stream.text
    async with worker_running(stack):
        await wait_awaiting(stack, order.order_id, "picked")
        cancelled = await stack.http(
            "POST", f"/orders/{order.order_id}/cancel", json={"reason": "test over"}
        )
        assert (cancelled.status_code, cancelled.json()["status"]) == (200, "CANCELLED")


async def test_a_cancel_while_workers_are_stopped_is_pending_then_carried_out_once(
    stack: Stack,
) -> None:
    body = order_json(items=[("SKU-RED-MUG", 1)])
    order_id = body["order_id"]
    placed = await stack.http("POST", "/orders", json=body)
    token = placed.json()["access_token"]
    async with worker_running(stack):
        await wait_awaiting(stack, order_id, "picked")
    # The order is recorded and waits for the warehouse; no worker runs any more.
    pending = await _cancel(stack, order_id, token)
    assert pending.status_code == 202, pending.text
    assert pending.json()["status"] == "PICKING"
    assert await _refunds(stack, order_id) == []
    async with worker_running(stack):
        assert await wait_for_status(stack.pool, order_id, "CANCELLED") == "CANCELLED"
        await stack.storefront.handle(order_id).result()
    assert await _refunds(stack, order_id) == [Decimal("12.50")]
    released = await stack.pool.fetchval(
        "SELECT count(*) FROM reservations WHERE order_id = $1 AND status = 'held'", order_id
    )
    assert released == 0
