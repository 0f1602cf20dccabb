"""Cancellation at every step before shipment, and its refusal from the hand-over on.

The workflow undoes an order with one activity (`cancel_order`), which undoes in one
transaction, latest step first, whatever the steps did. So what the workflow owes is: take
the cancel wherever the order waits, stop the steps there, call the undo exactly once as
the last thing it does, and refuse a cancel once the parcel is being handed to the carrier.
The fake's `undone` list shows which steps had been carried out when the undo ran, in the
order the real undo reverses them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from orderflow.models import (
    Awaiting,
    CancelRequest,
    CancelResult,
    Order,
    OrderStatus,
    PickedReport,
    Step,
)
from orderflow.models.activity_names import ActivityName
from starter.order_client import workflow_id_for
from tests.fast.harness import INSTANT, MANUAL_WAREHOUSE, PRODUCTION, Harness
from tests.fast.shop import (
    BACKORDER_WITHDRAWN,
    PAYMENT_REFUNDED,
    PICK_TASK_CANCELLED,
    REVIEW_TASK_CLOSED,
    STOCK_RELEASED,
)
from workflows.order import OrderWorkflow

TWO_LINES = [("SKU-RED-MUG", 2), ("SKU-TEA-TIN", 1)]


async def _cancelled_once(
    harness: Harness,
    order: Order,
    result: CancelResult,
    *,
    undone: list[str],
    step: Step,
    released_lines: int = 0,
    by: str = "customer",
) -> None:
    """The order ended CANCELLED at `step`, with one undo, the last thing it did."""
    final = await harness.result(order.order_id)
    shop = harness.shop
    assert result == CancelResult(
        order_id=order.order_id,
        status=OrderStatus.CANCELLED,
        refunded=order.total,
        released_lines=released_lines,
    )
    assert shop.count(ActivityName.CANCEL_ORDER) == 1, shop.names()
    # After the undo only the money goes back: the payment (captured at checkout) once.
    assert shop.names()[-2:] == [ActivityName.CANCEL_ORDER, ActivityName.REFUND_PAYMENT], (
        "no step may run after the undo"
    )
    (refund,) = shop.inputs(ActivityName.REFUND_PAYMENT)
    assert refund.amount is None and refund.reason.startswith("cancelled: ")
    assert shop.undone == undone
    (request,) = [data.request for data in shop.inputs(ActivityName.CANCEL_ORDER)]
    assert request.requested_by == by
    assert final.status == OrderStatus.CANCELLED and final.awaiting is None
    last = final.timeline[-1]
    assert (last.status, last.step, last.actor) == (OrderStatus.CANCELLED, step, by)


async def test_cancel_with_the_first_task_stops_the_order_at_classified(idle: Harness) -> None:
    # Update-with-start puts the cancel into the order's first workflow task: it is taken
    # before step 1 runs and acted on at the first check, right after classification.
    order = idle.order()
    data = await idle.input_for(order, INSTANT)
    start = WithStartWorkflowOperation(
        OrderWorkflow.run,
        data,
        id=workflow_id_for(order.order_id),
        task_queue=idle.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    async with idle.worker():
        result = await idle.client.execute_update_with_start_workflow(
            OrderWorkflow.cancel,
            CancelRequest(reason="ordered twice"),
            start_workflow_operation=start,
        )
        run_id = (await start.workflow_handle()).result_run_id
        assert run_id is not None
        idle.remember(order.order_id, run_id)
        await _cancelled_once(
            idle, order, result, undone=[PAYMENT_REFUNDED], step=Step.CLASSIFICATION
        )
    assert idle.shop.names() == [
        ActivityName.RECORD_ORDER,
        ActivityName.CLASSIFY_ORDER,
        ActivityName.CANCEL_ORDER,
        ActivityName.REFUND_PAYMENT,
    ]


async def test_cancel_left_before_step_1_is_carried_out_once_when_a_worker_runs(
    idle: Harness,
) -> None:
    # The API's "202 pending": no worker answered, so the cancel was left as a signal. It is
    # durable in history before the first workflow task, and sent twice (a retried request).
    order = await idle.place(idle.order(items=TWO_LINES), policy=INSTANT)
    left = CancelRequest(reason="found it cheaper", requested_by="api")
    await idle.storefront.request_cancel(order.order_id, left)
    await idle.storefront.request_cancel(order.order_id, left)
    async with idle.worker():
        final = await idle.result(order.order_id)
    shop = idle.shop
    assert shop.names() == [
        ActivityName.RECORD_ORDER,
        ActivityName.CLASSIFY_ORDER,
        ActivityName.CANCEL_ORDER,
        ActivityName.REFUND_PAYMENT,
    ]
    assert shop.undone == [PAYMENT_REFUNDED]
    assert shop.inputs(ActivityName.CANCEL_ORDER)[0].request == left
    assert final.status == OrderStatus.CANCELLED
    assert [e.status for e in final.timeline] == [
        OrderStatus.RECEIVED,
        OrderStatus.CLASSIFIED,
        OrderStatus.CANCELLED,
    ]
    assert final.timeline[-1].details == {"reason": "found it cheaper"}


async def test_cancel_while_pending_review_closes_the_review_task(harness: Harness) -> None:
    harness.shop.flagged = True
    order = await harness.place(policy=PRODUCTION)
    view = await harness.until(
        order.order_id, lambda v: v.awaiting == Awaiting.REVIEW_DECISION, "the review"
    )
    assert view.status == OrderStatus.PENDING_REVIEW
    result = await harness.storefront.cancel(order.order_id, "changed my mind")
    await _cancelled_once(
        harness, order, result, undone=[REVIEW_TASK_CLOSED, PAYMENT_REFUNDED], step=Step.REVIEW
    )
    assert harness.shop.count(ActivityName.RECORD_REVIEW_DECISION) == 0
    assert harness.shop.count(ActivityName.ESCALATE_REVIEW) == 0


async def test_cancel_while_backordered_withdraws_the_backorder(harness: Harness) -> None:
    harness.shop.shortages = {"SKU-RED-MUG": 2}
    order = await harness.place(policy=PRODUCTION)
    view = await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.STOCK, "stock")
    assert view.status == OrderStatus.BACKORDERED
    result = await harness.storefront.cancel(order.order_id, "too slow")
    await _cancelled_once(
        harness, order, result, undone=[BACKORDER_WITHDRAWN, PAYMENT_REFUNDED], step=Step.INVENTORY
    )
    assert harness.shop.count(ActivityName.RESERVE_STOCK) == 1
    assert harness.shop.count(ActivityName.OPEN_PICK_TASK) == 0


@pytest.mark.parametrize("picked", [False, True], ids=["awaiting-picked", "awaiting-packed"])
async def test_cancel_while_picking_cancels_the_task_and_releases_the_stock(
    harness: Harness, picked: bool
) -> None:
    order = await harness.place(harness.order(items=TWO_LINES), policy=MANUAL_WAREHOUSE)
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.PICKED, "picking")
    if picked:
        await harness.storefront.report_picked(order.order_id, PickedReport(by="pia"))
    view = await harness.until(
        order.order_id,
        lambda v: v.awaiting == (Awaiting.PACKED if picked else Awaiting.PICKED),
        "the warehouse",
    )
    assert view.status == OrderStatus.PICKING
    result = await harness.storefront.cancel(order.order_id, "wrong size")
    await _cancelled_once(
        harness,
        order,
        result,
        undone=[PICK_TASK_CANCELLED, STOCK_RELEASED, PAYMENT_REFUNDED],
        step=Step.PICKING_PACKING,
        released_lines=2,
    )
    assert harness.shop.count(ActivityName.RECORD_PICKED) == (1 if picked else 0)
    assert harness.shop.count(ActivityName.RECORD_PACKED) == 0


async def test_cancel_while_packed_and_no_carrier_takes_the_parcel(harness: Harness) -> None:
    # Nothing is with a carrier while the booking is held: the cancel is taken again.
    harness.shop.refuse_bookings = 1
    order = await harness.place(harness.order(items=TWO_LINES), policy=PRODUCTION)
    view = await harness.until(
        order.order_id, lambda v: v.awaiting == Awaiting.CARRIER_BOOKING, "the booking hold"
    )
    assert view.status == OrderStatus.PACKED
    result = await harness.storefront.cancel(order.order_id, "no longer needed", requested_by="ops")
    await _cancelled_once(
        harness,
        order,
        result,
        undone=[PICK_TASK_CANCELLED, STOCK_RELEASED, PAYMENT_REFUNDED],
        step=Step.PICKING_PACKING,
        released_lines=2,
        by="ops",
    )
    assert harness.shop.count(ActivityName.BOOK_SHIPMENT) == 1


async def test_repeated_cancels_while_the_undo_runs_are_answered_alike_and_undone_once(
    harness: Harness,
) -> None:
    # The undo is held, and the short workflow task timeout lets the task holding it hand
    # over: the second cancel and the signal reach the order while the first is undoing.
    gate = harness.shop.gate(ActivityName.CANCEL_ORDER)
    order = await harness.place(policy=MANUAL_WAREHOUSE, task_timeout=timedelta(seconds=1))
    await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.PICKED, "picking")
    handle = harness.handle(order.order_id)
    first = asyncio.create_task(harness.storefront.cancel(order.order_id, "first"))
    await asyncio.wait_for(gate.entered.wait(), timeout=10)
    second = await handle.start_update(
        OrderWorkflow.cancel,
        CancelRequest(reason="second"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await harness.storefront.request_cancel(order.order_id, CancelRequest(reason="third"))
    # Let go of the undo only once a workflow task has taken the signal: a message still
    # waiting when it finishes would make the server refuse that task, and the undo would
    # run again on replay (a local activity is at least once; the real undo is idempotent).
    await harness.signal_taken(order.order_id)
    gate.open()
    results = [await first, await second.result()]
    assert results[0] == results[1]
    await _cancelled_once(
        harness,
        order,
        results[0],
        undone=[PICK_TASK_CANCELLED, STOCK_RELEASED, PAYMENT_REFUNDED],
        step=Step.PICKING_PACKING,
        released_lines=1,
    )
    assert harness.shop.inputs(ActivityName.CANCEL_ORDER)[0].request.reason == "first"


def _refused(failed: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str:
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "WrongState", cause
    return cause.message


async def test_cancel_is_refused_from_the_hand_over_to_the_carrier_on(harness: Harness) -> None:
    gate = harness.shop.gate(ActivityName.BOOK_SHIPMENT)
    order = await harness.place(policy=INSTANT)
    await asyncio.wait_for(gate.entered.wait(), timeout=10)
    # The booking is under way (status still PACKED): the parcel is with the carrier.
    with pytest.raises(WorkflowUpdateFailedError) as during_booking:
        await harness.storefront.cancel(order.order_id, "too late")
    assert "already shipped" in _refused(during_booking)

    gate.open()
    view = await harness.until(order.order_id, lambda v: v.awaiting == Awaiting.DELIVERY, "transit")
    assert view.status == OrderStatus.SHIPPED
    with pytest.raises(WorkflowUpdateFailedError) as after_shipment:
        await harness.storefront.cancel(order.order_id, "too late")
    assert "already shipped" in _refused(after_shipment)
    # A cancel left with the order that comes too late is noted, not carried out.
    await harness.storefront.request_cancel(
        order.order_id, CancelRequest(reason="too late", requested_by="api")
    )
    view = await harness.until(
        order.order_id,
        lambda v: v.timeline[-1].details.get("note") == "cancel refused",
        "the refusal noted",
    )
    assert view.timeline[-1].actor == "api"

    await harness.track(order.order_id, "DELIVERED")
    final = await harness.result(order.order_id)
    assert final.status == OrderStatus.COMPLETED
    assert harness.shop.count(ActivityName.CANCEL_ORDER) == 0
    assert harness.shop.undone == []
