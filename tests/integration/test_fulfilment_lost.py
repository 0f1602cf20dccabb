"""Lost parcels on the real stack: a carrier's LOST ends in a case logistics resolves through
the API, by reshipping (replacement goods, a new booking under a new idempotency key) or
refunding (the order closes CANCELLED); and a history that grows long continues as new."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy, TrackingUpdate
from orderflow.search_attributes import ORDER_STATUS
from tests.helpers import events_of, wait_for_status
from tests.integration.fulfilment_support import (
    PRICE,
    add_product,
    carrier_control,
    notifications_of,
    on_hand,
    place,
    post_tracking,
    simulator_shipments,
    tracking_body,
    wait_awaiting,
    wait_until,
)
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

POLICY = OrderPolicy.instant()


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=POLICY) as running:
        # The carrier books but stays silent: the tests post its events themselves.
        await carrier_control(running, mode="normal", event_interval_seconds=3600)
        yield running


async def _lost(
    stack: Stack, *, on_hand_units: int = 20, quantity: int = 2
) -> tuple[str, str, str, str]:
    """An order whose parcel the carrier reports lost: (order, sku, carrier, tracking)."""
    sku = await add_product(stack, on_hand=on_hand_units)
    order, _ = await place(stack, POLICY, [(sku, quantity)])
    view = await wait_awaiting(stack, order.order_id, "delivery")
    assert view.carrier and view.tracking_number
    carrier, parcel = view.carrier, view.tracking_number
    for status in ("IN_TRANSIT", "LOST"):
        response = await post_tracking(stack, carrier, tracking_body(parcel, status))
        assert response.json()["outcome"] == "applied"
    await wait_awaiting(stack, order.order_id, "lost_parcel_resolution")
    return order.order_id, sku, carrier, parcel


async def test_a_lost_parcel_is_reshipped_with_a_new_booking(stack: Stack) -> None:
    order_id, sku, carrier, parcel = await _lost(stack)
    assert await on_hand(stack, sku) == (18, 0)
    case = await stack.pool.fetchrow(
        "SELECT status, reason, tracking_number FROM lost_parcels WHERE order_id = $1", order_id
    )
    assert dict(case) == {
        "status": "open",
        "reason": "the carrier reports the parcel lost",
        "tracking_number": parcel,
    }
    notices = await notifications_of(stack, order_id, "parcel_lost")
    assert sorted(n["recipient"] for n in notices) == sorted(
        ["logistics-lead@shop.example", f"{(await _email(stack, order_id))}"]
    )
    queue = await stack.http("GET", "/logistics/lost-parcels", role="logistics")
    assert order_id in [c["order_id"] for c in queue.json()]
    assert (await stack.http("GET", "/logistics/lost-parcels", role="warehouse")).status_code == 403

    path = f"/logistics/{order_id}/resolution"
    wrong_role = await stack.http("POST", path, role="storefront", json={"action": "reship"})
    assert wrong_role.status_code == 403
    booked_before = await simulator_shipments(stack)
    reshipped = await stack.http(
        "POST", path, role="logistics", json={"action": "reship", "note": "send another"}
    )
    assert reshipped.status_code == 200, reshipped.text
    outcome = reshipped.json()
    assert outcome["action"] == "reship" and outcome["status"] == "SHIPPED"
    new_parcel = outcome["tracking_number"]
    assert new_parcel and new_parcel != parcel
    assert await simulator_shipments(stack) == booked_before + 1
    # The replacement's goods left the shelf; nothing is reserved for it.
    assert await on_hand(stack, sku) == (16, 0)
    shipment = await stack.pool.fetchrow(
        "SELECT tracking_number, booking_no, status FROM shipments WHERE order_id = $1", order_id
    )
    assert dict(shipment) == {"tracking_number": new_parcel, "booking_no": 1, "status": "BOOKED"}
    replacement = await notifications_of(stack, order_id, "replacement_shipped")
    assert len(replacement) == 1 and new_parcel in replacement[0]["body"]
    again = await stack.http("POST", path, role="logistics", json={"action": "refund"})
    assert again.status_code == 409, "the case is resolved"

    # The lost parcel's number is kept on record but no longer moves the order.
    stray = await post_tracking(stack, carrier, tracking_body(parcel, "DELIVERED"))
    assert stray.status_code == 200 and stray.json()["outcome"] == "superseded_parcel"
    view = await stack.storefront.get_status(order_id)
    assert view.status == "SHIPPED" and view.tracking_number == new_parcel

    assert view.carrier
    arrived = await post_tracking(stack, view.carrier, tracking_body(new_parcel, "DELIVERED"))
    assert arrived.json()["outcome"] == "applied"
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    case = await stack.pool.fetchrow(
        "SELECT status, replacement_no, replacement_tracking_number, resolved_by FROM lost_parcels WHERE order_id = $1",
        order_id,
    )
    assert dict(case) == {
        "status": "reshipped",
        "replacement_no": 1,
        "replacement_tracking_number": new_parcel,
        "resolved_by": "logistics",
    }
    kinds = [e["kind"] for e in await events_of(stack.pool, order_id)]
    assert kinds.count("parcel_lost") == 1 and kinds.count("reshipped") == 1
    assert kinds.count("replacement_stock_taken") == 1


async def test_a_lost_parcel_refunded_closes_the_order_cancelled(stack: Stack) -> None:
    order_id, _, _, _ = await _lost(stack, quantity=3)
    refunded = await stack.http(
        "POST", f"/logistics/{order_id}/resolution", role="logistics", json={"action": "refund"}
    )
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "CANCELLED"
    assert Decimal(refunded.json()["refunded"]) == Decimal(PRICE) * 3
    final = await stack.storefront.handle(order_id).result()
    assert final.status == "CANCELLED"
    assert final.timeline[-1].details["resolution"] == "refund"
    refunds = await stack.pool.fetch(
        "SELECT amount, reason FROM refunds WHERE order_id = $1", order_id
    )
    assert [(r["amount"], r["reason"]) for r in refunds] == [
        (Decimal(PRICE) * 3, "parcel lost in transit")
    ]
    assert (
        await stack.pool.fetchval("SELECT status FROM lost_parcels WHERE order_id = $1", order_id)
        == "refunded"
    )
    assert len(await notifications_of(stack, order_id, "order_cancelled")) == 1
    late = await stack.http(
        "POST", f"/logistics/{order_id}/resolution", role="logistics", json={"action": "reship"}
    )
    assert late.status_code == 409


async def test_a_reship_without_stock_is_refused_and_the_case_stays_open(stack: Stack) -> None:
    order_id, sku, _, _ = await _lost(stack, on_hand_units=2, quantity=2)
    assert await on_hand(stack, sku) == (0, 0)
    refused = await stack.http(
        "POST", f"/logistics/{order_id}/resolution", role="logistics", json={"action": "reship"}
    )
    assert refused.status_code == 409
    assert f"{sku} short by 2" in refused.json()["detail"]
    view = await stack.storefront.get_status(order_id)
    assert view.awaiting == "lost_parcel_resolution"
    refunded = await stack.http(
        "POST", f"/logistics/{order_id}/resolution", role="admin", json={"action": "refund"}
    )
    assert refunded.status_code == 200
    assert (await stack.storefront.handle(order_id).result()).status == "CANCELLED"


async def test_a_lost_parcel_that_turns_up_completes_the_order(stack: Stack) -> None:
    order_id, _, carrier, parcel = await _lost(stack)
    found = await post_tracking(stack, carrier, tracking_body(parcel, "DELIVERED"))
    assert found.json()["outcome"] == "applied"
    await wait_for_status(stack.pool, order_id, "COMPLETED")
    assert (
        await stack.pool.fetchval("SELECT status FROM lost_parcels WHERE order_id = $1", order_id)
        == "found"
    )


async def test_a_long_tracking_history_continues_as_new_and_loses_nothing(stack: Stack) -> None:
    sku = await add_product(stack)
    policy = POLICY.model_copy(update={"continue_as_new_history_length": 60})
    order, _ = await place(stack, policy, [(sku, 1)])
    view = await wait_awaiting(stack, order.order_id, "delivery")
    assert view.tracking_number
    first_run = (await stack.storefront.handle(order.order_id).describe()).run_id

    # Thirty scans straight to the workflow, each twice: every one applied exactly once.
    updates = [
        TrackingUpdate(
            event_id=f"{view.tracking_number}-scan-{n}",
            tracking_number=view.tracking_number,
            status="IN_TRANSIT" if n % 2 else "EXCEPTION",
            at=datetime.now(UTC),
        )
        for n in range(30)
    ]
    for update in updates:
        await stack.storefront.tracking_event(order.order_id, update)
        await stack.storefront.tracking_event(order.order_id, update)

    async def continued() -> bool:
        applied = await stack.pool.fetchval(
            "SELECT count(*) FROM order_events WHERE order_id = $1 AND step = 7", order.order_id
        )
        run = (await stack.storefront.handle(order.order_id).describe()).run_id
        return applied == 30 and run != first_run

    await wait_until(continued, what="all scans applied and a new run")
    # Scans seen by the first run are still known to the next: replays change nothing.
    for update in updates[:5]:
        await stack.storefront.tracking_event(order.order_id, update)
    delivered = TrackingUpdate(
        event_id=f"{view.tracking_number}-done",
        tracking_number=view.tracking_number,
        status="DELIVERED",
        at=datetime.now(UTC),
    )
    await stack.storefront.tracking_event(order.order_id, delivered)
    final = await stack.storefront.handle(order.order_id).result()
    assert final.status == "COMPLETED"

    first = await stack.client.get_workflow_handle(
        f"order-{order.order_id}", run_id=first_run
    ).fetch_history()
    assert first.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    # The last run still knows the whole story, and the shop's log has each scan once.
    assert [t.status for t in final.timeline[:3]] == ["RECEIVED", "CLASSIFIED", "APPROVED"]
    kinds = [e["kind"] for e in await events_of(stack.pool, order.order_id)]
    assert kinds.count("tracking_in_transit") == 15
    assert kinds.count("tracking_exception") == 15
    assert kinds.count("tracking_delivered") == 1
    described = await stack.storefront.handle(order.order_id).describe()
    assert described.typed_search_attributes.get(ORDER_STATUS) == "COMPLETED"


async def _email(stack: Stack, order_id: str) -> str:
    email: str = await stack.pool.fetchval(
        "SELECT customer_email FROM orders WHERE order_id = $1", order_id
    )
    return email


async def test_a_replacement_lost_too_is_a_second_case(stack: Stack) -> None:
    order_id, _, _, _ = await _lost(stack)
    path = f"/logistics/{order_id}/resolution"
    first = await stack.http("POST", path, role="logistics", json={"action": "reship"})
    assert first.status_code == 200, first.text
    replacement = first.json()
    lost_again = await post_tracking(
        stack, replacement["carrier"], tracking_body(replacement["tracking_number"], "LOST")
    )
    assert lost_again.json()["outcome"] == "applied"
    await wait_awaiting(stack, order_id, "lost_parcel_resolution")
    cases = await stack.pool.fetch(
        "SELECT case_no, status, tracking_number FROM lost_parcels WHERE order_id = $1 ORDER BY case_no",
        order_id,
    )
    assert [(c["case_no"], c["status"]) for c in cases] == [(1, "reshipped"), (2, "open")]
    assert cases[1]["tracking_number"] == replacement["tracking_number"]
    # The first case's reship does not resolve the second: logistics decides again.
    assert (await stack.storefront.get_status(order_id)).awaiting == "lost_parcel_resolution"
    refunded = await stack.http("POST", path, role="logistics", json={"action": "refund"})
    assert refunded.status_code == 200
    assert (await stack.storefront.handle(order_id).result()).status == "CANCELLED"
