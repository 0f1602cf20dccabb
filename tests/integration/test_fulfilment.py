"""Steps 5 and 6 on the real stack: the warehouse's pick list and reports through the HTTP
API, the automatic warehouse, and booking the parcel with a carrier that fails or is slow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.helpers import events_of, order_json, wait_for_status
from tests.integration.fulfilment_support import (
    add_product,
    carrier_control,
    notifications_of,
    on_hand,
    place,
    simulator_shipments,
    wait_awaiting,
    wait_until,
)
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

MANUAL = OrderPolicy.instant(auto_warehouse=False)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=MANUAL) as running:
        yield running


async def test_pick_list_is_oldest_first_with_lines_and_bins(stack: Stack) -> None:
    mug = await add_product(stack, bin_location="A-07-1")
    tin = await add_product(stack, bin_location="A-03-2")
    first = order_json(items=[(mug, 2), (tin, 1)])
    second = order_json(items=[(tin, 3)])
    for body in (first, second):
        assert (await stack.http("POST", "/orders", json=body)).status_code == 202
        await wait_awaiting(stack, body["order_id"], "picked")

    response = await stack.http("GET", "/warehouse/tasks", role="warehouse")
    assert response.status_code == 200
    tasks = response.json()
    opened = [t["opened_at"] for t in tasks]
    assert opened == sorted(opened), "oldest task first"
    ids = [t["order_id"] for t in tasks]
    assert ids.index(first["order_id"]) < ids.index(second["order_id"])
    task = next(t for t in tasks if t["order_id"] == first["order_id"])
    assert task["status"] == "open" and task["overdue"] is False
    # Lines in walking order through the bins.
    assert [(line["sku"], line["quantity"], line["bin_location"]) for line in task["lines"]] == [
        (tin, 1, "A-03-2"),
        (mug, 2, "A-07-1"),
    ]
    assert all(line["name"] for line in task["lines"])

    assert (await stack.http("GET", "/warehouse/tasks", role="reviewer")).status_code == 403
    assert (await stack.http("GET", "/warehouse/tasks", role=None)).status_code == 401
    for body in (first, second):
        await stack.storefront.cancel(body["order_id"], "test over")


async def test_manual_pick_and_pack_through_the_api(stack: Stack) -> None:
    sku = await add_product(stack, weight_kg="0.400")
    body = order_json(items=[(sku, 3)])
    order_id = body["order_id"]
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_awaiting(stack, order_id, "picked")
    base = f"/warehouse/tasks/{order_id}"

    early = await stack.http("POST", f"{base}/packed", role="warehouse", json={"weight_kg": 1.5})
    assert early.status_code == 409 and "not been picked" in early.json()["detail"]
    wrong_role = await stack.http("POST", f"{base}/picked", role="storefront")
    assert wrong_role.status_code == 403

    picked = await stack.http("POST", f"{base}/picked", role="warehouse")
    assert picked.status_code == 200, picked.text
    again = await stack.http("POST", f"{base}/picked", role="warehouse")
    assert again.status_code == 409
    await wait_awaiting(stack, order_id, "packed")

    # Goods weigh 1.2 kg: nothing, a feather or a piano is refused before the workflow hears of it.
    for weight, code in ((0, 422), (-1, 422), (0.2, 422), (60, 422), (1001, 422)):
        response = await stack.http(
            "POST", f"{base}/packed", role="warehouse", json={"weight_kg": weight}
        )
        assert response.status_code == code, (weight, response.text)
        assert response.json()["detail"]
    packed = await stack.http("POST", f"{base}/packed", role="warehouse", json={"weight_kg": 1.55})
    assert packed.status_code == 200, packed.text
    assert packed.json()["status"] in ("PACKED", "SHIPPED")
    second = await stack.http("POST", f"{base}/packed", role="warehouse", json={"weight_kg": 1.55})
    assert second.status_code == 409

    await wait_for_status(stack.pool, order_id, "COMPLETED")
    task = await stack.pool.fetchrow(
        "SELECT status, picked_by, packed_by, weight_kg FROM warehouse_tasks WHERE order_id = $1",
        order_id,
    )
    assert dict(task) == {
        "status": "packed",
        "picked_by": "warehouse",
        "packed_by": "warehouse",
        "weight_kg": Decimal("1.550"),
    }
    shipment = await stack.pool.fetchrow(
        "SELECT weight_kg FROM shipments WHERE order_id = $1", order_id
    )
    assert shipment["weight_kg"] == Decimal("1.550")
    kinds = [e["kind"] for e in await events_of(stack.pool, order_id)]
    assert kinds.count("picked") == 1 and kinds.count("packed") == 1
    remaining = (await stack.http("GET", "/warehouse/tasks", role="warehouse")).json()
    assert order_id not in [t["order_id"] for t in remaining], "a packed task leaves the list"
    # The process has ended: a late report is a 409, not a 500.
    late = await stack.http("POST", f"{base}/picked", role="warehouse")
    assert late.status_code == 409
    assert (
        await stack.http("POST", "/warehouse/tasks/NO-SUCH/picked", role="warehouse")
    ).status_code == 404


async def test_pick_sla_notifies_the_warehouse_lead_once(stack: Stack) -> None:
    sku = await add_product(stack)
    policy = MANUAL.model_copy(update={"pick_sla": timedelta(seconds=1)})
    order, _ = await place(stack, policy, [(sku, 1)])
    await wait_until(
        lambda: notifications_of(stack, order.order_id, "pick_task_overdue"), what="overdue notice"
    )
    view = await stack.storefront.get_status(order.order_id)
    assert view.status == "PICKING" and view.awaiting == "picked", "still waits for the picker"
    task = await stack.http("GET", "/warehouse/tasks", role="warehouse")
    mine = next(t for t in task.json() if t["order_id"] == order.order_id)
    assert mine["overdue"] is True
    notices = await notifications_of(stack, order.order_id, "pick_task_overdue")
    assert [n["recipient"] for n in notices] == ["warehouse-lead@shop.example"]
    await stack.storefront.cancel(order.order_id, "test over")


async def test_automatic_warehouse_waits_its_delays_and_weighs_from_the_catalogue(
    stack: Stack,
) -> None:
    sku = await add_product(stack, weight_kg="0.800")
    policy = OrderPolicy.instant(auto_warehouse=True).model_copy(
        update={"auto_pick_delay": timedelta(seconds=1), "auto_pack_delay": timedelta(seconds=2)}
    )
    order, _ = await place(stack, policy, [(sku, 3)])
    await wait_for_status(stack.pool, order.order_id, "COMPLETED")

    task = await stack.pool.fetchrow(
        "SELECT picked_by, packed_by, weight_kg FROM warehouse_tasks WHERE order_id = $1",
        order.order_id,
    )
    # 3 x 0.8 kg of goods and 0.3 kg of packaging.
    assert dict(task) == {
        "picked_by": "auto-warehouse",
        "packed_by": "auto-warehouse",
        "weight_kg": Decimal("2.700"),
    }
    history = await stack.storefront.handle(order.order_id).fetch_history()
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    # The warehouse's two delays come first; the delivery follow-up timers follow.
    assert timers[:2] == [timedelta(seconds=1), timedelta(seconds=2)]
    assert all(t > timedelta(days=1) for t in timers[2:])


async def test_shipping_records_the_choice_tells_the_customer_and_consumes_stock(
    stack: Stack,
) -> None:
    sku = await add_product(stack, on_hand=10)
    order, _ = await place(stack, OrderPolicy.instant(), [(sku, 4)])
    await wait_for_status(stack.pool, order.order_id, "COMPLETED")
    shipment = await stack.pool.fetchrow(
        """SELECT s.carrier, c.name AS carrier_name, s.tracking_number, s.delivery_note,
                  s.choice_reason
           FROM shipments s JOIN carriers c ON c.code = s.carrier WHERE s.order_id = $1""",
        order.order_id,
    )
    assert shipment["choice_reason"] and shipment["delivery_note"]
    notices = await notifications_of(stack, order.order_id, "shipping_confirmation")
    assert len(notices) == 1
    # The customer reads the carrier's name ("DHL Paket"), not its code.
    assert shipment["carrier_name"] in notices[0]["body"]
    assert shipment["tracking_number"] in notices[0]["body"]
    assert await on_hand(stack, sku) == (6, 0)
    reservation = await stack.pool.fetchval(
        "SELECT status FROM reservations WHERE order_id = $1", order.order_id
    )
    assert reservation == "consumed"


async def _booking_attempts(stack: Stack, order_id: str) -> list[int]:
    history = await stack.storefront.handle(order_id).fetch_history()
    return [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]


async def test_a_failing_carrier_is_retried_with_backoff_and_books_once(stack: Stack) -> None:
    sku = await add_product(stack)
    await carrier_control(stack, mode="fail", fail_times=2)
    try:
        before = await simulator_shipments(stack)
        order, _ = await place(stack, OrderPolicy.instant(), [(sku, 1)])
        await wait_for_status(stack.pool, order.order_id, "SHIPPED", "IN_TRANSIT", "COMPLETED")
        assert await simulator_shipments(stack) == before + 1, "one parcel at the carrier"
    finally:
        await carrier_control(stack, reset=True)
    # Two 503s, then the third attempt booked (the last attempt is what the history keeps).
    assert await _booking_attempts(stack, order.order_id) == [3]
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM shipments WHERE order_id = $1", order.order_id
        )
        == 1
    )


async def test_a_slow_carrier_times_out_and_the_retry_books_once(stack: Stack) -> None:
    sku = await add_product(stack)
    # The worker shares this settings object: the booking's HTTP timeout drops below the
    # carrier's delay, so the first attempt times out while the carrier is still booking.
    original = stack.settings.carrier_http_timeout_seconds
    stack.settings.carrier_http_timeout_seconds = 0.5
    await carrier_control(stack, mode="slow", slow_seconds=1.5)
    try:
        before = await simulator_shipments(stack)
        order, _ = await place(stack, OrderPolicy.instant(), [(sku, 1)])
        await wait_for_status(stack.pool, order.order_id, "SHIPPED", "IN_TRANSIT", "COMPLETED")
        assert await simulator_shipments(stack) == before + 1, "one parcel at the carrier"
    finally:
        stack.settings.carrier_http_timeout_seconds = original
        await carrier_control(stack, reset=True)
    attempts = await _booking_attempts(stack, order.order_id)
    assert attempts and attempts[0] >= 2, "the first attempt timed out"
