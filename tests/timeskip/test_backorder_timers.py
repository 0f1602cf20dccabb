"""Backorder reminders at production durations: a waiting order reminds its customer every
three days and offers cancellation once seven days have passed, then completes when the
goods arrive. The real order workflow, activities, PostgreSQL, API and carrier simulator run
on the time-skipping test server, which skips the days.

The carrier simulator answers with wall-clock delivery dates while the workflow's clock is
days ahead, so a delivery follow-up may fire early here; the simulator's tracking events
still deliver the parcel, and this test asserts nothing about follow-ups."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.helpers import wait_for_status
from tests.integration.inventory_support import assert_consistent, make_order, new_sku
from tests.servers import Stack, running_stack

# Production backorder durations (the policy's defaults); the rest runs straight through.
POLICY = OrderPolicy.instant()
REMIND_EVERY = POLICY.backorder_reminder_interval
OFFER_AFTER = POLICY.backorder_cancel_offer_after
MARGIN = timedelta(minutes=10)


@pytest.fixture(scope="module")
async def stack(time_skipping_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(time_skipping_env, database_url, policy=POLICY) as running:
        yield running


async def _reminders(pool: asyncpg.Pool, order_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT e.details, n.body FROM order_events e
           JOIN notifications n ON n.notification_key =
                e.order_id || ':backorder_reminder:' || (e.details->>'reminder_no')
           WHERE e.order_id = $1 AND e.kind = 'backorder_reminder'
           ORDER BY (e.details->>'reminder_no')::int""",
        order_id,
    )


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_backordered_order_is_reminded_offered_cancellation_and_completes_on_receipt(
    stack: Stack, time_skipping_env: WorkflowEnvironment
) -> None:
    assert (REMIND_EVERY, OFFER_AFTER) == (timedelta(days=3), timedelta(days=7))
    env = time_skipping_env
    sku = await new_sku(stack.pool, on_hand=0, prefix="TS")
    order = make_order([(sku, 2)])
    await stack.storefront.place_order(order)
    order_id = order.order_id
    await wait_for_status(stack.pool, order_id, "BACKORDERED")

    async def reminders_at_least(n: int) -> bool:
        return len(await _reminders(stack.pool, order_id)) >= n

    await env.sleep(REMIND_EVERY - MARGIN)
    assert await _reminders(stack.pool, order_id) == [], "no reminder before three days"

    await env.sleep(2 * MARGIN)
    await _eventually(lambda: reminders_at_least(1), "the first reminder")
    (first,) = await _reminders(stack.pool, order_id)
    assert first["details"] == {"reminder_no": 1, "cancellation_offered": False}
    assert "cancel" not in first["body"]

    # Just before seven days: the second reminder (day six) came, still without an offer.
    await env.sleep(OFFER_AFTER - REMIND_EVERY - 2 * MARGIN)
    await _eventually(lambda: reminders_at_least(2), "the second reminder")
    before_offer = await _reminders(stack.pool, order_id)
    assert [r["details"]["cancellation_offered"] for r in before_offer] == [False, False]

    # At seven days the customer is offered cancellation, on time rather than with the
    # next regular reminder (day nine).
    await env.sleep(2 * MARGIN)

    async def offered() -> bool:
        return any(
            r["details"]["cancellation_offered"] for r in await _reminders(stack.pool, order_id)
        )

    await _eventually(offered, "the cancellation offer")
    offers = [
        r for r in await _reminders(stack.pool, order_id) if r["details"]["cancellation_offered"]
    ]
    assert len(offers) == 1
    assert "cancel the order at no cost" in offers[0]["body"]
    assert await stack.pool.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id) == (
        "BACKORDERED"
    )

    # The goods arrive: purchasing books them, the waiting order is served and completes.
    response = await stack.http(
        "POST",
        "/purchasing/receipts",
        role="purchasing",
        json={"sku": sku, "quantity": 2},
        headers={"Idempotency-Key": f"receipt-{sku}"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["served_orders"] == [order_id]
    final = await stack.storefront.handle(order_id).result()
    assert final.status == "COMPLETED"
    consumed = await stack.pool.fetch(
        "SELECT quantity, status FROM reservations WHERE order_id = $1", order_id
    )
    assert [(r["quantity"], r["status"]) for r in consumed] == [(2, "consumed")]
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM purchase_requests WHERE sku = $1 AND status = 'open'", sku
        )
        == 0
    )
    await assert_consistent(stack.pool)
