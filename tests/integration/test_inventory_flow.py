"""Inventory through the real order workflow, worker and HTTP API on the dev server: racing
orders reserve exactly the stock there is, the rest wait BACKORDERED behind one purchase
request, receipts resume them oldest first, and cancels give everything back once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.helpers import wait_for_status
from tests.integration.inventory_support import assert_consistent, make_order, new_sku
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    """Orders run straight through (automatic warehouse) once they have their stock."""
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


@pytest.fixture(scope="module")
async def manual(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    """Reserved orders wait for the warehouse, so they keep holding their stock."""
    policy = OrderPolicy.instant(auto_warehouse=False)
    async with running_stack(temporal_env, database_url, policy=policy) as running:
        yield running


async def _place(stack: Stack, lines: list[tuple[str, int]]) -> str:
    order = make_order(lines)
    response = await stack.http("POST", "/orders", json=order.model_dump(mode="json"))
    assert response.status_code == 202, response.text
    return order.order_id


async def _receive(stack: Stack, sku: str, quantity: int) -> list[str]:
    response = await stack.http(
        "POST",
        "/purchasing/receipts",
        role="purchasing",
        json={"sku": sku, "quantity": quantity},
        headers={"Idempotency-Key": f"receipt-{uuid.uuid4().hex}"},
    )
    assert response.status_code == 201, response.text
    served: list[str] = response.json()["served_orders"]
    return served


async def _request_for(stack: Stack, sku: str) -> list[dict[str, object]]:
    response = await stack.http("GET", "/purchasing/requests", role="purchasing")
    assert response.status_code == 200
    return [r for r in response.json() if r["sku"] == sku]


async def test_racing_workflows_reserve_exactly_the_last_units_and_cancels_release_once(
    manual: Stack,
) -> None:
    sku = await new_sku(manual.pool, on_hand=10)
    order_ids = await asyncio.gather(*(_place(manual, [(sku, 1)]) for _ in range(40)))
    outcome = await asyncio.gather(
        *(wait_for_status(manual.pool, o, "PICKING", "BACKORDERED") for o in order_ids)
    )
    assert outcome.count("PICKING") == 10
    assert outcome.count("BACKORDERED") == 30

    level = (await manual.http("GET", f"/inventory/{sku}", role="warehouse")).json()
    assert (level["on_hand"], level["reserved"], level["available"]) == (10, 10, 0)
    assert (level["backordered"], level["open_purchase_request"]) == (30, 30)
    (request,) = await _request_for(manual, sku)
    assert (request["quantity"], request["reason"], request["waiting_orders"]) == (
        30,
        "shortage",
        30,
    )
    await assert_consistent(manual.pool)

    # Every order cancelled, then the holders again (a storefront's retry): all is given
    # back once.
    async def cancel(order_id: str) -> tuple[int, dict[str, object]]:
        response = await manual.http(
            "POST", f"/orders/{order_id}/cancel", json={"reason": "no longer needed"}
        )
        return response.status_code, response.json()

    first = await asyncio.gather(*(cancel(o) for o in order_ids))
    assert [code for code, _ in first] == [200] * 40, first
    released = {body["order_id"]: body["released_lines"] for _, body in first}
    holders = [o for o, s in zip(order_ids, outcome, strict=True) if s == "PICKING"]
    assert {released[o] for o in holders} == {1}
    assert sum(released.values()) == 10
    for code, body in await asyncio.gather(*(cancel(o) for o in holders)):
        # The same result while the workflow still answers; once it has ended, a 409 that
        # says so. Either way nothing is released again.
        if code == 200:
            assert body["released_lines"] == 1
        else:
            assert code == 409 and "ended" in str(body["detail"])
    level = (await manual.http("GET", f"/inventory/{sku}", role="warehouse")).json()
    assert (level["on_hand"], level["reserved"], level["backordered"]) == (10, 0, 0)
    assert level["open_purchase_request"] is None
    assert await _request_for(manual, sku) == []
    statuses = await manual.pool.fetch(
        "SELECT DISTINCT status FROM orders WHERE order_id = ANY($1::text[])", order_ids
    )
    assert [r["status"] for r in statuses] == ["CANCELLED"]
    await assert_consistent(manual.pool)


async def test_receipts_resume_backordered_orders_oldest_first_even_when_partial(
    stack: Stack,
) -> None:
    sku = await new_sku(stack.pool, on_hand=0)
    first, second, third = [], [], []
    for holder, quantity in ((first, 2), (second, 1), (third, 2)):
        order_id = await _place(stack, [(sku, quantity)])
        await wait_for_status(stack.pool, order_id, "BACKORDERED")
        holder.append(order_id)
    o1, o2, o3 = first[0], second[0], third[0]
    (request,) = await _request_for(stack, sku)
    assert (request["quantity"], request["waiting_orders"]) == (5, 3)

    # Two units: the oldest order takes both; the others keep waiting in order.
    assert await _receive(stack, sku, 2) == [o1]
    await wait_for_status(stack.pool, o1, "COMPLETED")
    # Two more: the second order takes one, the third needs two and waits for them.
    assert await _receive(stack, sku, 2) == [o2]
    await wait_for_status(stack.pool, o2, "COMPLETED")
    assert await stack.pool.fetchval("SELECT status FROM orders WHERE order_id = $1", o3) == (
        "BACKORDERED"
    )
    (request,) = await _request_for(stack, sku)
    assert (request["quantity"], request["waiting_orders"]) == (1, 1)

    assert await _receive(stack, sku, 1) == [o3]
    await wait_for_status(stack.pool, o3, "COMPLETED")
    assert await _request_for(stack, sku) == []
    level = (await stack.http("GET", f"/inventory/{sku}", role="purchasing")).json()
    assert (level["on_hand"], level["reserved"], level["available"]) == (0, 0, 0)
    consumed = await stack.pool.fetchval(
        "SELECT sum(quantity) FROM reservations WHERE sku = $1 AND status = 'consumed'", sku
    )
    assert consumed == 5
    # The customer heard about the wait once, and nothing about a reminder (none was due).
    notices = await stack.pool.fetch(
        "SELECT kind FROM notifications WHERE order_id = ANY($1::text[]) AND kind LIKE 'backorder%'",
        [o1, o2, o3],
    )
    assert [n["kind"] for n in notices] == ["backorder_notice"] * 3
    await assert_consistent(stack.pool)


async def test_receipts_are_purchasing_s_and_need_a_known_sku(stack: Stack) -> None:
    sku = await new_sku(stack.pool, on_hand=0)
    refused = await stack.http(
        "POST", "/purchasing/receipts", role="storefront", json={"sku": sku, "quantity": 1}
    )
    assert refused.status_code == 403
    unknown = await stack.http(
        "POST",
        "/purchasing/receipts",
        role="purchasing",
        json={"sku": "NO-SUCH-SKU", "quantity": 1},
        headers={"Idempotency-Key": f"receipt-{uuid.uuid4().hex}"},
    )
    assert unknown.status_code == 404
    assert (await stack.http("GET", "/inventory/NO-SUCH-SKU", role="warehouse")).status_code == 404
    # A repeated receipt (same Idempotency-Key) counts once.
    for _ in range(2):
        response = await stack.http(
            "POST",
            "/purchasing/receipts",
            role="purchasing",
            json={"sku": sku, "quantity": 4},
            headers={"Idempotency-Key": f"delivery-note-{sku}"},
        )
        assert response.status_code == 201
    assert response.json()["duplicate"] is True
    level = (await stack.http("GET", f"/inventory/{sku}", role="warehouse")).json()
    assert level["on_hand"] == 4
