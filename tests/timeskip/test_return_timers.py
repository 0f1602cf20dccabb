"""Returns at production durations (days, skipped by the test server): a parcel not sent back
within the send-back time closes its return unrefunded; a parcel back but not inspected
within the inspection SLA tells the warehouse's lead once, and is refunded once inspected.

As in test_fulfilment_timers, each test has a test server of its own and a silent carrier
(normal mode, hour-long intervals): the tests post the tracking events, signed, themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from orderflow.models.returns import ReturnPolicy
from tests.helpers import wait_for_status
from tests.integration.fulfilment_support import (
    add_product,
    carrier_control,
    notifications_of,
    place,
    post_tracking,
    tracking_body,
    wait_awaiting,
    wait_until,
)
from tests.servers import Stack, running_stack
from tests.time_skipping import start_skipping_server

PRODUCTION = OrderPolicy(auto_warehouse=True)
RETURNS = ReturnPolicy()


@pytest.fixture
async def timed(database_url: str) -> AsyncIterator[tuple[Stack, WorkflowEnvironment]]:
    env = await start_skipping_server()
    try:
        async with running_stack(env, database_url, policy=PRODUCTION) as stack:
            await carrier_control(stack, mode="normal", event_interval_seconds=3600)
            yield stack, env
    finally:
        await env.shutdown()


async def _delivered(stack: Stack) -> tuple[str, str]:
    """A delivered order of one line: (order id, sku)."""
    sku = await add_product(stack)
    order, _ = await place(stack, PRODUCTION, [(sku, 1)])
    view = await wait_awaiting(stack, order.order_id, "delivery")
    assert view.carrier and view.tracking_number
    now = datetime.now(UTC).isoformat()
    delivered = await post_tracking(
        stack, view.carrier, tracking_body(view.tracking_number, "DELIVERED", at=now)
    )
    assert delivered.status_code == 200, delivered.text
    await wait_for_status(stack.pool, order.order_id, "DELIVERED", "COMPLETED")
    return order.order_id, sku


async def _requested(stack: Stack, order_id: str, sku: str) -> Any:
    response = await stack.http(
        "POST",
        f"/orders/{order_id}/returns",
        json={"lines": [{"sku": sku, "quantity": 1}], "reason": "changed my mind"},
    )
    assert response.status_code == 202, response.text
    return await _status(stack, response.json()["return_id"], "LABEL_SENT")


async def _status(stack: Stack, return_id: str, status: str) -> Any:
    async def check() -> Any:
        row = await stack.pool.fetchrow("SELECT * FROM returns WHERE return_id = $1", return_id)
        return row if row is not None and row["status"] == status else None

    return await wait_until(check, what=f"return {return_id} {status}")


async def _quiet() -> None:
    await asyncio.sleep(0.5)


async def test_a_parcel_not_sent_back_in_time_closes_the_return_unrefunded(
    timed: tuple[Stack, WorkflowEnvironment],
) -> None:
    stack, env = timed
    order_id, sku = await _delivered(stack)
    row = await _requested(stack, order_id, sku)

    await env.sleep(RETURNS.send_back_within - timedelta(hours=1))
    await _quiet()
    assert (
        await stack.pool.fetchval(
            "SELECT status FROM returns WHERE return_id = $1", row["return_id"]
        )
        == "LABEL_SENT"
    )
    await env.sleep(timedelta(hours=2))
    closed = await _status(stack, row["return_id"], "CLOSED")
    assert closed["refund_amount"] == 0
    assert len(await notifications_of(stack, order_id, "return_closed")) == 1
    refunds = await stack.pool.fetchval(
        "SELECT count(*) FROM payment_operations WHERE order_id = $1 AND kind = 'refund'", order_id
    )
    assert refunds == 0


async def test_a_parcel_left_uninspected_tells_the_warehouse_lead_once(
    timed: tuple[Stack, WorkflowEnvironment],
) -> None:
    stack, env = timed
    order_id, sku = await _delivered(stack)
    row = await _requested(stack, order_id, sku)
    carrier, parcel = row["carrier"], row["tracking_number"]
    for status in ("IN_TRANSIT", "DELIVERED"):
        now = datetime.now(UTC).isoformat()
        answer = await post_tracking(stack, carrier, tracking_body(parcel, status, at=now))
        assert answer.json()["outcome"] == "return_parcel", answer.text
    await _status(stack, row["return_id"], "ARRIVED")

    await env.sleep(RETURNS.inspection_sla - timedelta(hours=1))
    await _quiet()
    assert await notifications_of(stack, order_id, "return_inspection_overdue") == []
    await env.sleep(timedelta(hours=2))
    notices = await wait_until(
        lambda: notifications_of(stack, order_id, "return_inspection_overdue"), what="overdue"
    )
    assert [n["recipient"] for n in notices] == ["warehouse-lead@shop.example"]
    await env.sleep(timedelta(days=1))
    await _quiet()
    assert len(await notifications_of(stack, order_id, "return_inspection_overdue")) == 1

    inspected = await stack.http(
        "POST",
        f"/warehouse/returns/{row['return_id']}/inspection",
        role="warehouse",
        json={"lines": [{"sku": sku, "outcome": "restock", "note": "as new"}]},
    )
    assert inspected.status_code == 200, inspected.text
    refunded = await _status(stack, row["return_id"], "REFUNDED")
    assert refunded["refund_amount"] > 0
