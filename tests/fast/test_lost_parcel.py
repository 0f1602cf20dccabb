"""Step 7: a parcel lost (reported by the carrier, or silent past its follow-ups at the
production durations) waits for logistics, who reship it (its own replacement number and
booking) or refund it (the order ends CANCELLED); one found after all completes the order."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from orderflow.models import Awaiting, Order, OrderStatus, OrderView, TrackingUpdate
from orderflow.models.activity_names import ActivityName
from orderflow.models.messages import LostParcelOutcome, LostParcelResolution
from tests.fast.harness import INSTANT, PRODUCTION, Harness
from tests.fast.shop import tracking_number

# Workflow time runs on in real time between sleeps: a timer fires at most this late.
SLACK = timedelta(minutes=1)


async def _lost(harness: Harness) -> Order:
    """An order whose parcel the carrier has reported lost, awaiting logistics."""
    order = await harness.place(policy=INSTANT)
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.DELIVERY, "shipment")
    await harness.track(order.order_id, "LOST")
    await harness.until(
        order.order_id, lambda v: v.awaiting == Awaiting.LOST_PARCEL_RESOLUTION, "a lost case"
    )
    return order


def _follow_ups(view: OrderView) -> list[datetime]:
    return [e.at for e in view.timeline if e.details.get("note") == "delivery follow-up"]


async def test_lost_parcel_reshipped_gets_its_own_booking_and_is_delivered(
    harness: Harness,
) -> None:
    shop = harness.shop
    order = await _lost(harness)
    oid = order.order_id
    (case,) = shop.inputs(ActivityName.OPEN_LOST_PARCEL_CASE)
    assert (case.case_no, case.carrier, case.tracking_number) == (1, "dhl", tracking_number(oid))
    assert case.reason == "the carrier reports the parcel lost"

    outcome = await harness.storefront.resolve_lost_parcel(
        oid, LostParcelResolution(action="reship", by="lou")
    )
    assert outcome == LostParcelOutcome(
        order_id=oid,
        action="reship",
        status=OrderStatus.SHIPPED,
        carrier="dhl",
        tracking_number=tracking_number(oid, 1),
    )
    (taken,) = shop.inputs(ActivityName.TAKE_REPLACEMENT_STOCK)
    assert (taken.case_no, taken.reship_no) == (1, 1)
    assert [b.reship_no for b in shop.inputs(ActivityName.BOOK_SHIPMENT)] == [0, 1]
    view = await harness.view(oid)
    assert view.status == OrderStatus.SHIPPED and view.tracking_number == tracking_number(oid, 1)
    assert view.timeline[-1].details["reship"] == 1 and view.timeline[-1].actor == "lou"

    # The lost parcel turning up later is another parcel now: noted, not recorded.
    await harness.track(oid, "DELIVERED", reship_no=0)
    await harness.until(
        oid,
        lambda v: v.timeline[-1].details.get("note") == "ignored tracking event for another parcel",
        "the old parcel's event ignored",
    )
    delivered = await harness.track(oid, "DELIVERED", reship_no=1)
    final = await harness.result(oid)
    assert final.status == OrderStatus.COMPLETED
    recorded: list[TrackingUpdate] = [t.update for t in shop.inputs(ActivityName.RECORD_TRACKING)]
    assert [u.status for u in recorded] == ["LOST", "DELIVERED"]
    assert recorded[-1] == delivered
    assert shop.count(ActivityName.REFUND_LOST_PARCEL) == 0 and shop.refunds == []


async def test_lost_parcel_refunded_closes_the_order_cancelled(harness: Harness) -> None:
    shop = harness.shop
    order = await _lost(harness)
    outcome = await harness.storefront.resolve_lost_parcel(
        order.order_id, LostParcelResolution(action="refund", by="lou", note="customer prefers")
    )
    assert outcome == LostParcelOutcome(
        order_id=order.order_id,
        action="refund",
        status=OrderStatus.CANCELLED,
        refunded=order.total,
    )
    final = await harness.result(order.order_id)
    assert final.status == OrderStatus.CANCELLED
    last = final.timeline[-1]
    assert last.actor == "lou" and last.details["resolution"] == "refund"
    (refund,) = shop.inputs(ActivityName.REFUND_LOST_PARCEL)
    assert refund.case_no == 1
    assert shop.refunds == ["parcel lost in transit"]
    assert shop.count(ActivityName.COMPLETE_ORDER) == 0
    assert shop.count(ActivityName.CANCEL_ORDER) == 0


async def test_reship_without_stock_is_refused_and_the_case_stays_open(harness: Harness) -> None:
    shop = harness.shop
    order = await _lost(harness)
    shop.replacement_shortages = {"SKU-RED-MUG": 1}
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await harness.storefront.resolve_lost_parcel(
            order.order_id, LostParcelResolution(action="reship")
        )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "WrongState"
    assert "SKU-RED-MUG short by 1" in cause.message
    view = await harness.view(order.order_id)
    assert view.awaiting == Awaiting.LOST_PARCEL_RESOLUTION
    assert shop.count(ActivityName.BOOK_SHIPMENT) == 1

    # Stock came in: the same case can now be reshipped.
    shop.replacement_shortages = {}
    outcome = await harness.storefront.resolve_lost_parcel(
        order.order_id, LostParcelResolution(action="reship")
    )
    assert outcome.tracking_number == tracking_number(order.order_id, 1)
    assert [t.reship_no for t in shop.inputs(ActivityName.TAKE_REPLACEMENT_STOCK)] == [1, 1]
    assert shop.count(ActivityName.OPEN_LOST_PARCEL_CASE) == 1


async def test_lost_parcel_found_after_all_completes_the_order(harness: Harness) -> None:
    order = await _lost(harness)
    await harness.track(order.order_id, "DELIVERED")
    final = await harness.result(order.order_id)
    assert final.status == OrderStatus.COMPLETED
    assert harness.shop.count(ActivityName.TAKE_REPLACEMENT_STOCK) == 0
    assert harness.shop.count(ActivityName.REFUND_LOST_PARCEL) == 0


async def test_silent_parcel_is_followed_up_daily_then_declared_lost(harness: Harness) -> None:
    # Production: expected in 2 days (the fake carrier), 1 day's grace, a follow-up a day,
    # escalated from the 3rd, lost after the 6th.
    shop = harness.shop
    order = await harness.place(policy=PRODUCTION)
    oid = order.order_id
    await harness.until(oid, lambda v: v.awaiting == Awaiting.DELIVERY, "shipment")
    # Expected delivery is counted from the hand-over the booking was asked for.
    handed_over = shop.inputs(ActivityName.BOOK_SHIPMENT)[0].requested_at

    await harness.sleep(timedelta(days=3) - timedelta(minutes=10))
    assert shop.count(ActivityName.FOLLOW_UP_DELIVERY) == 0, "followed up within the grace"
    await harness.sleep(timedelta(minutes=20))
    await harness.called(ActivityName.FOLLOW_UP_DELIVERY)
    await harness.sleep(timedelta(days=5))
    await harness.called(ActivityName.OPEN_LOST_PARCEL_CASE)

    follow_ups = shop.inputs(ActivityName.FOLLOW_UP_DELIVERY)
    assert [(f.attempt, f.escalate) for f in follow_ups] == [
        (1, False),
        (2, False),
        (3, True),
        (4, True),
        (5, True),
        (6, True),
    ]
    (case,) = shop.inputs(ActivityName.OPEN_LOST_PARCEL_CASE)
    assert case.reason == "not delivered after 6 follow-ups"
    view = await harness.until(
        oid, lambda v: v.awaiting == Awaiting.LOST_PARCEL_RESOLUTION, "the lost case"
    )
    times = _follow_ups(view)
    assert timedelta(days=3) <= times[0] - handed_over < timedelta(days=3) + SLACK
    for earlier, later in itertools.pairwise(times):
        assert timedelta(days=1) <= later - earlier < timedelta(days=1) + SLACK


async def test_carrier_answering_lost_at_a_follow_up_opens_a_case(harness: Harness) -> None:
    shop = harness.shop
    shop.carrier_status = "LOST"
    order = await harness.place(policy=PRODUCTION)
    oid = order.order_id
    await harness.until(oid, lambda v: v.awaiting == Awaiting.DELIVERY, "shipment")
    # An event the webhook never delivered comes with the carrier's answer and is applied.
    shop.carrier_events = [
        TrackingUpdate(
            event_id="missed-1",
            tracking_number=tracking_number(oid),
            status="IN_TRANSIT",
            at=await harness.now(),
        )
    ]
    await harness.sleep(timedelta(days=3, minutes=5))
    (case,) = await harness.called(ActivityName.OPEN_LOST_PARCEL_CASE)
    assert case.reason == "the carrier reports the parcel lost"
    assert shop.count(ActivityName.FOLLOW_UP_DELIVERY) == 1
    (recorded,) = shop.inputs(ActivityName.RECORD_TRACKING)
    assert recorded.update.event_id == "missed-1"
    view = await harness.until(
        oid, lambda v: v.awaiting == Awaiting.LOST_PARCEL_RESOLUTION, "the lost case"
    )
    assert view.status == OrderStatus.IN_TRANSIT
