"""The path every other test leaves somewhere: an order that needs nobody runs each step
once, in the order of the process, and ends after its review window (production waits)."""

from __future__ import annotations

from orderflow.models import Awaiting, OrderStatus
from orderflow.models.activity_names import ActivityName
from orderflow.models.messages import ProductReview
from tests.fast.harness import PRODUCTION, Harness


async def test_automatic_path_runs_each_step_once_in_process_order(harness: Harness) -> None:
    shop = harness.shop
    order = await harness.place(policy=PRODUCTION)
    oid = order.order_id
    await harness.until(oid, lambda v: v.awaiting == Awaiting.DELIVERY, "shipment")
    await harness.track(oid, "IN_TRANSIT")
    await harness.track(oid, "DELIVERED")
    # Not a query while the delivery is being recorded: the time-skipping server answers a
    # query inside a workflow task of its own, which would split the history there in a way
    # the replay check at the end does not replay (a real server adds no such task).
    await harness.called(ActivityName.RECORD_TRACKING, times=2)
    await harness.until(oid, lambda v: v.awaiting == Awaiting.RECEIPT_CONFIRMATION, "delivery")

    # The customer confirms: completion comes at once, not after the 3-day quiet period.
    view = await harness.storefront.confirm_receipt(oid)
    assert view.status == OrderStatus.COMPLETED and view.awaiting == Awaiting.REVIEW
    receipt = await harness.storefront.submit_review(oid, ProductReview(rating=5, comment="ok"))
    assert receipt.rating == 5
    final = await harness.result(oid)

    assert shop.names() == [
        ActivityName.RECORD_ORDER,
        ActivityName.CLASSIFY_ORDER,
        ActivityName.ASSESS_RISK,
        ActivityName.RESERVE_STOCK,
        ActivityName.OPEN_PICK_TASK,
        ActivityName.RECORD_PICKED,
        ActivityName.RECORD_PACKED,
        ActivityName.BOOK_SHIPMENT,
        ActivityName.RECORD_TRACKING,
        ActivityName.RECORD_TRACKING,
        ActivityName.COMPLETE_ORDER,
        ActivityName.RECORD_PRODUCT_REVIEW,
    ]
    (completed,) = shop.inputs(ActivityName.COMPLETE_ORDER)
    assert completed.how == "confirmed_by_customer"
    assert final.status == OrderStatus.COMPLETED and final.awaiting is None
    assert [e.status for e in final.timeline if "note" not in e.details] == [
        OrderStatus.RECEIVED,
        OrderStatus.CLASSIFIED,
        OrderStatus.APPROVED,
        OrderStatus.RESERVED,
        OrderStatus.PICKING,
        OrderStatus.PACKED,
        OrderStatus.SHIPPED,
        OrderStatus.IN_TRANSIT,
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
    ]
    assert shop.refunds == [] and shop.collisions == []
