"""Step 6: a booking no carrier takes holds the parcel at PACKED, tells logistics once per
refusal under its own key, and books when logistics asks again (`retry_booking`)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from orderflow.models import Awaiting, OrderStatus
from orderflow.models.activity_names import ActivityName
from orderflow.models.messages import RebookRequest
from tests.fast.harness import PRODUCTION, Harness
from tests.fast.shop import tracking_number


async def test_refused_booking_holds_at_packed_until_logistics_retries(harness: Harness) -> None:
    shop = harness.shop
    shop.refuse_bookings = 2
    order = await harness.place(policy=PRODUCTION)
    oid = order.order_id

    view = await harness.until(oid, lambda v: v.awaiting == Awaiting.CARRIER_BOOKING, "a hold")
    assert view.status == OrderStatus.PACKED and view.tracking_number is None
    assert view.timeline[-1].details == {
        "note": "booking refused",
        "reason": "no carrier takes the parcel",
    }
    # Logistics asks again and is refused again: a second hold, under its own attempt number.
    view = await harness.storefront.retry_booking(oid, RebookRequest(by="lou"))
    assert view.status == OrderStatus.PACKED and view.awaiting == Awaiting.CARRIER_BOOKING
    view = await harness.storefront.retry_booking(oid, RebookRequest(by="lou"))
    assert view.status == OrderStatus.SHIPPED and view.tracking_number == tracking_number(oid)

    assert [h.attempt for h in shop.inputs(ActivityName.HOLD_SHIPMENT)] == [1, 2]
    assert shop.told == [
        "logistics: booking refused (attempt 1)",
        "logistics: booking refused (attempt 2)",
    ]
    assert shop.collisions == []
    bookings = shop.inputs(ActivityName.BOOK_SHIPMENT)
    assert [(b.reship_no, b.weight_kg) for b in bookings] == [(0, shop.packed_weight_kg)] * 3
    retried = [e for e in view.timeline if e.details.get("note") == "booking retried"]
    assert [e.actor for e in retried] == ["lou", "lou"]

    await harness.track(oid, "DELIVERED")
    assert (await harness.result(oid)).status == OrderStatus.COMPLETED
    assert shop.count(ActivityName.CANCEL_ORDER) == 0


async def test_booking_retried_with_a_note_keeps_the_retry_label_on_the_timeline(
    harness: Harness,
) -> None:
    # Logistics' note must ride along with the "booking retried" label, not replace it:
    # `_note(what, note=...)` lets the caller's `note` overwrite the label (details["note"]).
    harness.shop.refuse_bookings = 1
    order = await harness.place(policy=PRODUCTION)
    oid = order.order_id
    await harness.until(oid, lambda v: v.awaiting == Awaiting.CARRIER_BOOKING, "a hold")
    view = await harness.storefront.retry_booking(oid, RebookRequest(by="lou", note="try UPS"))
    (retried,) = [e for e in view.timeline if e.actor == "lou"]
    assert retried.details.get("note") == "booking retried", retried.details
    assert "try UPS" in retried.details.values()


async def test_retry_booking_is_refused_while_no_booking_is_held(harness: Harness) -> None:
    order = await harness.place(policy=PRODUCTION)
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.DELIVERY, "shipment")
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await harness.storefront.retry_booking(order.order_id)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "WrongState"
    assert harness.shop.count(ActivityName.BOOK_SHIPMENT) == 1
