"""The payment through the PSP, as the order workflow drives it: an authorised payment is
captured before the parcel is handed over (a refusal holds it at PACKED for finance), renewed
while the order waits at production durations, voided when the order closes uncaptured, and
refunded when money was captured."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from orderflow.models import Awaiting, Order, OrderStatus, OrderView, ReviewDecision
from orderflow.models.activity_names import ActivityName
from orderflow.models.messages import CaptureRetry, StockReceived
from tests.fast.harness import INSTANT, PRODUCTION, Harness
from tests.helpers import order_json
from workflows.order import OrderWorkflow

# The authorisation lasts a week at checkout; the policy renews it a day before it lapses.
AUTHORISED_FOR = timedelta(days=7)
MARGIN = PRODUCTION.authorization_renewal_margin
SLACK = timedelta(minutes=5)


async def _delivered(harness: Harness, order_id: str) -> OrderView:
    """Let the parcel under way arrive; the order's end."""
    await harness.until(order_id, lambda v: v.awaiting == Awaiting.DELIVERY, "the parcel")
    await harness.track(order_id, "DELIVERED")
    return await harness.result(order_id)


async def _authorised(harness: Harness, lasts: timedelta = AUTHORISED_FOR) -> Order:
    body = order_json()
    body["payment"] |= {
        "status": "authorized",
        "authorization_expires_at": (await harness.now() + lasts).isoformat(),
    }
    return Order.model_validate(body)


async def test_an_authorised_order_is_captured_once_for_the_amount_shipped_before_booking(
    harness: Harness,
) -> None:
    order = await harness.place(await _authorised(harness), policy=INSTANT)
    final = await _delivered(harness, order.order_id)
    assert final.status == OrderStatus.COMPLETED
    shop = harness.shop
    (capture,) = shop.inputs(ActivityName.CAPTURE_PAYMENT)
    assert (capture.amount, capture.sequence) == (order.total, 1)
    names = shop.names()
    assert names.index(ActivityName.CAPTURE_PAYMENT) < names.index(ActivityName.BOOK_SHIPMENT)
    for never in (
        ActivityName.VOID_PAYMENT,
        ActivityName.REFUND_PAYMENT,
        ActivityName.REAUTHORIZE_PAYMENT,
    ):
        assert shop.count(never) == 0, names
    assert "payment captured" in [e.details.get("note") for e in final.timeline]


async def test_a_payment_captured_at_checkout_is_not_captured_again(harness: Harness) -> None:
    order = await harness.place(policy=INSTANT)
    assert (await _delivered(harness, order.order_id)).status == OrderStatus.COMPLETED
    assert harness.shop.count(ActivityName.CAPTURE_PAYMENT) == 0


async def test_a_refused_capture_holds_the_parcel_at_packed_until_finance_retries(
    harness: Harness,
) -> None:
    shop = harness.shop
    shop.refuse_captures = 1
    order = await harness.place(await _authorised(harness), policy=INSTANT)
    oid = order.order_id
    view = await harness.until(oid, lambda v: v.awaiting == Awaiting.PAYMENT_CAPTURE, "the hold")
    assert view.status == OrderStatus.PACKED
    assert shop.count(ActivityName.BOOK_SHIPMENT) == 0, "never ships unpaid"
    assert "payment capture refused: the parcel waits for finance" in [
        e.details.get("note") for e in view.timeline
    ]
    # Finance retries once the PSP takes it: a new capture, under a new key, then the parcel.
    after = await harness.storefront.retry_capture(oid, CaptureRetry(by="fay", note="card ok"))
    assert after.awaiting != Awaiting.PAYMENT_CAPTURE
    assert [c.sequence for c in shop.inputs(ActivityName.CAPTURE_PAYMENT)] == [1, 2]
    # Nothing is awaited any more: a second retry is refused by the validator.
    with pytest.raises(WorkflowUpdateFailedError):
        await harness.storefront.retry_capture(oid)
    final = await _delivered(harness, oid)
    assert final.status == OrderStatus.COMPLETED
    assert shop.count(ActivityName.BOOK_SHIPMENT) == 1


async def test_a_retry_is_refused_while_no_capture_is_held(harness: Harness) -> None:
    harness.shop.flagged = True
    order = await harness.place(await _authorised(harness), policy=INSTANT)
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.REVIEW_DECISION, "review")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await harness.storefront.retry_capture(order.order_id)
    assert "is not waiting for its payment to be captured" in str(refused.value.cause)


async def test_finance_cancels_a_held_capture_and_the_authorisation_is_voided(
    harness: Harness,
) -> None:
    shop = harness.shop
    shop.refuse_captures = 1
    order = await harness.place(await _authorised(harness), policy=INSTANT)
    oid = order.order_id
    await harness.until(oid, lambda v: v.awaiting == Awaiting.PAYMENT_CAPTURE, "the hold")
    await harness.storefront.cancel(oid, "card declined", requested_by="fay")
    final = await harness.result(oid)
    assert final.status == OrderStatus.CANCELLED
    assert shop.count(ActivityName.VOID_PAYMENT) == 1
    assert shop.count(ActivityName.REFUND_PAYMENT) == 0
    assert shop.count(ActivityName.BOOK_SHIPMENT) == 0


async def test_a_cancelled_authorised_order_is_voided_not_refunded(harness: Harness) -> None:
    harness.shop.flagged = True
    order = await harness.place(await _authorised(harness), policy=INSTANT)
    oid = order.order_id
    await harness.until(oid, lambda v: v.awaiting == Awaiting.REVIEW_DECISION, "review")
    await harness.storefront.cancel(oid, "changed my mind")
    assert (await harness.result(oid)).status == OrderStatus.CANCELLED
    shop = harness.shop
    assert shop.inputs(ActivityName.VOID_PAYMENT) == [oid]
    assert shop.count(ActivityName.REFUND_PAYMENT) == 0
    assert shop.count(ActivityName.CAPTURE_PAYMENT) == 0


async def test_a_captured_order_rejected_in_review_is_refunded_once(harness: Harness) -> None:
    harness.shop.flagged = True
    order = await harness.place(policy=INSTANT)
    oid = order.order_id
    await harness.until(oid, lambda v: v.awaiting == Awaiting.REVIEW_DECISION, "review")
    await harness.storefront.decide_review(
        oid, ReviewDecision(decision="reject", reviewer="rita", note="stolen card")
    )
    assert (await harness.result(oid)).status == OrderStatus.REJECTED
    (refund,) = harness.shop.inputs(ActivityName.REFUND_PAYMENT)
    assert (refund.amount, refund.reason) == (None, "rejected: stolen card")
    assert harness.shop.count(ActivityName.VOID_PAYMENT) == 0


async def _backordered(harness: Harness, lasts: timedelta = AUTHORISED_FOR) -> Order:
    harness.shop.shortages = {"SKU-RED-MUG": 2}
    order = await harness.place(await _authorised(harness, lasts), policy=PRODUCTION)
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.STOCK, "backorder")
    return order


async def _stock_arrives(harness: Harness, order_id: str) -> None:
    harness.shop.shortages = {}
    await harness.handle(order_id).signal(
        OrderWorkflow.stock_received, StockReceived(sku="SKU-RED-MUG", quantity=2)
    )


async def test_a_backordered_authorisation_is_renewed_a_day_before_it_lapses(
    harness: Harness,
) -> None:
    shop = harness.shop
    order = await _backordered(harness)
    oid = order.order_id
    await harness.sleep(AUTHORISED_FOR - MARGIN - SLACK)
    await harness.settle(oid)
    assert shop.count(ActivityName.REAUTHORIZE_PAYMENT) == 0, "not before the margin"
    await harness.sleep(2 * SLACK)
    await harness.called(ActivityName.REAUTHORIZE_PAYMENT)
    await harness.settle(oid)
    view = await harness.view(oid)
    assert view.status == OrderStatus.BACKORDERED and view.awaiting == Awaiting.STOCK
    renewed = [e for e in view.timeline if e.details.get("note") == "payment authorisation renewed"]
    assert len(renewed) == 1

    # Renewed for another week from then: the next renewal is six days later, not sooner
    # (the test's clock stands a slack past the first renewal now).
    await harness.sleep(AUTHORISED_FOR - MARGIN - 2 * SLACK)
    await harness.settle(oid)
    assert shop.count(ActivityName.REAUTHORIZE_PAYMENT) == 1
    await harness.sleep(2 * SLACK)
    await harness.called(ActivityName.REAUTHORIZE_PAYMENT, times=2)

    await _stock_arrives(harness, oid)
    final = await _delivered(harness, oid)
    assert final.status == OrderStatus.COMPLETED
    assert shop.count(ActivityName.CAPTURE_PAYMENT) == 1
    assert shop.count(ActivityName.REAUTHORIZE_PAYMENT) == 2


async def test_an_authorisation_the_psp_will_not_renew_cancels_the_waiting_order(
    harness: Harness,
) -> None:
    shop = harness.shop
    shop.refuse_renewals = True
    # Two hours more than a week keep the renewal off the instant of the second three-day
    # backorder reminder: the refusal cancels that reminder, and the time-skipping server
    # strands a workflow task that cancels a timer which fired while the task was out.
    lasts = AUTHORISED_FOR + timedelta(hours=2)
    order = await _backordered(harness, lasts)
    oid = order.order_id
    await harness.sleep(lasts - MARGIN + SLACK)
    final = await harness.result(oid)
    assert final.status == OrderStatus.CANCELLED
    (cancel,) = shop.inputs(ActivityName.CANCEL_ORDER)
    assert cancel.request.requested_by == "system"
    assert cancel.request.reason == "the payment authorisation expired and could not be renewed"
    assert shop.count(ActivityName.REAUTHORIZE_PAYMENT) == 1
    assert shop.count(ActivityName.VOID_PAYMENT) == 1
    assert shop.count(ActivityName.CAPTURE_PAYMENT) == 0


async def test_a_captured_order_is_never_renewed(harness: Harness) -> None:
    harness.shop.shortages = {"SKU-RED-MUG": 2}
    order = await harness.place(policy=PRODUCTION)
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.STOCK, "backorder")
    await harness.sleep(timedelta(days=30))
    await harness.settle(order.order_id)
    assert harness.shop.count(ActivityName.REAUTHORIZE_PAYMENT) == 0
