"""An order whose data a step can never store, on the real stack: not retried forever at
RECEIVED, but REJECTED with the reason, readable through the API, and waiting in customer
service's queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import Order, OrderPolicy
from tests.helpers import order_json
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


async def test_an_order_step_1_can_never_record_is_rejected_with_the_reason(stack: Stack) -> None:
    # Placed past the API's checks (an older storefront client, a script): a time before
    # year 1 in UTC, which PostgreSQL cannot store.
    order = Order.model_validate(
        order_json(placed_at=datetime.fromisoformat("0001-01-01T00:00:00+01:00"))
    )
    await stack.storefront.place_order(order)
    # Before, step 1 was retried forever: the order never ended.
    final = await asyncio.wait_for(stack.storefront.handle(order.order_id).result(), 60)

    assert final.status == "REJECTED"
    reason = final.timeline[-1].details["reason"]
    assert reason.startswith("cannot be processed: ")
    assert "@" not in reason, "no customer address in the reason"

    row = await stack.pool.fetchrow(
        "SELECT step, activity, reason FROM unprocessable_orders WHERE order_id = $1",
        order.order_id,
    )
    assert row is not None
    assert (row["step"], row["activity"], row["reason"]) == (1, "record_order", reason)

    seen = await stack.http("GET", f"/orders/{order.order_id}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["status"] == "REJECTED"
    assert seen.json()["timeline"][-1]["details"]["reason"] == reason

    queue = await stack.http("GET", "/departments/customer_service/queue", role="admin")
    assert queue.status_code == 200, queue.text
    items = [i for i in queue.json()["items"] if i["order_id"] == order.order_id]
    assert [i["kind"] for i in items] == ["unprocessable_order"]
    assert items[0]["details"]["reason"] == reason
