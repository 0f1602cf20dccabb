"""An authorised payment lapsing while its order waits, at production durations: the real
order workflow, activities, PostgreSQL, API and PSP simulator on the time-skipping server.

The order is backordered with an authorisation that lapses in seven days. Nothing is asked
of the PSP until a day before; then it is asked to renew, refuses, and the order is
cancelled: its place in the backorder queue withdrawn, the authorisation voided, the
customer told why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from orderflow.models import Order, OrderPolicy
from tests.helpers import wait_for_status
from tests.integration.inventory_support import assert_consistent, make_order, new_sku
from tests.servers import Stack, running_stack

POLICY = OrderPolicy.instant()
MARGIN = POLICY.authorization_renewal_margin
AUTHORISED_FOR = timedelta(days=7)
SLACK = timedelta(minutes=10)


@pytest.fixture(scope="module")
async def stack(time_skipping_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(time_skipping_env, database_url, policy=POLICY) as running:
        yield running


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _operations(stack: Stack, order_id: str) -> list[tuple[str, str]]:
    rows = await stack.pool.fetch(
        "SELECT kind, status FROM payment_operations WHERE order_id = $1 ORDER BY id", order_id
    )
    return [(r["kind"], r["status"]) for r in rows]


async def test_an_authorisation_the_psp_will_not_renew_cancels_the_backordered_order(
    stack: Stack, time_skipping_env: WorkflowEnvironment
) -> None:
    assert MARGIN == timedelta(days=1)
    env = time_skipping_env
    sku = await new_sku(stack.pool, on_hand=0, prefix="AUTH")
    made = make_order([(sku, 2)])
    # The expiry on the server's clock, which the skipped days move on.
    expires = await env.get_current_time() + AUTHORISED_FOR
    order = Order.model_validate(
        made.model_dump(mode="json")
        | {
            "payment": made.payment.model_dump(mode="json")
            | {"status": "authorized", "authorization_expires_at": expires.isoformat()}
        }
    )
    order_id = order.order_id
    await stack.storefront.place_order(order)
    await wait_for_status(stack.pool, order_id, "BACKORDERED")
    await stack.psp.control(mode="refuse")

    await env.sleep(AUTHORISED_FOR - MARGIN - SLACK)
    assert await _operations(stack, order_id) == [], "nothing asked before the margin"

    await env.sleep(2 * SLACK)
    await wait_for_status(stack.pool, order_id, "CANCELLED")
    final = await stack.storefront.handle(order_id).result()
    assert final.status == "CANCELLED"
    cancelled = final.timeline[-1]
    assert cancelled.actor == "system"
    assert cancelled.details["reason"] == (
        "the payment authorisation expired and could not be renewed"
    )

    async def voided() -> bool:
        return ("void", "refused") in await _operations(stack, order_id) or (
            "void",
            "succeeded",
        ) in await _operations(stack, order_id)

    await _eventually(voided, "the void")
    operations = await _operations(stack, order_id)
    assert operations[0] == ("reauthorization", "refused")
    assert [kind for kind, _ in operations] == ["reauthorization", "void"]
    waiting = await stack.pool.fetchval(
        "SELECT count(*) FROM backorders WHERE order_id = $1 AND status = 'waiting'", order_id
    )
    assert waiting == 0
    told = await stack.pool.fetch(
        "SELECT kind, body FROM notifications WHERE order_id = $1 AND kind = 'order_cancelled'",
        order_id,
    )
    assert len(told) == 1
    assert "authorisation expired" in told[0]["body"]
    await stack.psp.control(reset=True)
    await assert_consistent(stack.pool)
