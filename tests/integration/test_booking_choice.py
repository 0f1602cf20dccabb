"""A booking's carrier is chosen once per attempt and recorded before the carrier is called:
a retried booking goes to the same carrier, under the same idempotency key, whatever the
carrier choice would say by then."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.shipping import ShippingActivities
from db.repositories import catalogue, delivery, orders
from orderflow.models import OrderPolicy
from orderflow.models.carrier import Carrier
from orderflow.models.steps import BookShipmentInput
from policies.carrier_choice import choose_carrier
from tests.integration.inventory_support import make_order, new_sku
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


async def test_a_retried_booking_keeps_the_carrier_recorded_first(stack: Stack) -> None:
    sku = await new_sku(stack.pool, on_hand=5)
    order = make_order([(sku, 1)])
    requested_at = datetime.now(UTC)
    async with stack.pool.acquire() as conn, conn.transaction():
        await orders.insert_order(
            conn,
            order,
            workflow_id=f"order-{order.order_id}",
            placed_at=requested_at,
            status="PACKED",
        )
    carriers = [Carrier(**dict(r)) for r in await catalogue.carriers(stack.pool)]
    best = choose_carrier(
        carriers,
        country=order.shipping_address.country,
        weight_kg=1.0,
        service_level=order.service_level,
        shipped_at=requested_at,
    ).carrier
    # What an earlier attempt chose (the rates have changed since): not today's best.
    earlier = next(c.code for c in carriers if c.code != best and c.active)
    await delivery.choose_carrier_once(
        stack.pool, order.order_id, 0, requested_at, carrier=earlier, reason="chosen first"
    )

    async with httpx.AsyncClient() as http:
        shipping = ShippingActivities(stack.pool, stack.settings, http)
        booking = await ActivityEnvironment().run(
            shipping.book_shipment,
            BookShipmentInput(order=order, weight_kg=1.0, requested_at=requested_at),
        )
    assert (booking.carrier, booking.choice_reason) == (earlier, "chosen first")
    shipment = await delivery.shipment_of(stack.pool, order.order_id)
    assert shipment is not None and shipment["carrier"] == earlier


async def test_the_first_choice_of_an_attempt_is_recorded_and_kept(stack: Stack) -> None:
    sku = await new_sku(stack.pool, on_hand=5)
    order = make_order([(sku, 1)])
    at = datetime.now(UTC)
    async with stack.pool.acquire() as conn, conn.transaction():
        await orders.insert_order(
            conn, order, workflow_id=f"order-{order.order_id}", placed_at=at, status="PACKED"
        )
    first = await delivery.choose_carrier_once(
        stack.pool, order.order_id, 0, at, carrier="dhl", reason="cheapest"
    )
    again = await delivery.choose_carrier_once(
        stack.pool, order.order_id, 0, at, carrier="ups", reason="cheapest by then"
    )
    assert first == again == ("dhl", "cheapest")
    assert await delivery.carrier_choice(stack.pool, order.order_id, 0, at) == ("dhl", "cheapest")
    # Another attempt (logistics asked again after a refusal) chooses afresh.
    later = await delivery.choose_carrier_once(
        stack.pool, order.order_id, 0, datetime.now(UTC), carrier="ups", reason="after refusal"
    )
    assert later == ("ups", "after refusal")
