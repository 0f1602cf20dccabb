"""Cancellation: undo, in reverse, what the steps did, each effect once.

Undone in one transaction, latest step first: the pick task comes off the warehouse's list,
the reserved stock goes back, the order's places in the backorder queues and its shares of
the purchase requests are withdrawn, an open review task is closed, the payment is refunded
(`db/repositories/refunds.py`), and the customer is told. Each undo leaves its own event, so
the timeline shows what was undone. The order's row is locked first (the lock order of every
stock change), so a goods receipt serving the order and its cancel never interleave; a retried
or repeated cancel finds `cancellation.cancelled` recorded and changes nothing.
"""

from __future__ import annotations

from temporalio import activity

from activities.effects import OrderActivities, OrderEvent
from db.repositories import cancellation, inventory, orders, refunds, unprocessable
from orderflow.models import CancelResult, OrderStatus
from orderflow.models.activity_names import ActivityName
from orderflow.models.steps import CancelInput, UnprocessableInput


class CancellationActivities(OrderActivities):
    @activity.defn(name=ActivityName.CANCEL_ORDER)
    async def cancel_order(self, data: CancelInput) -> CancelResult:
        order_id = data.order_id
        request = data.request
        async with self._pool.acquire() as conn, conn.transaction():
            await cancellation.lock_order(conn, order_id)
            step = await cancellation.current_step(conn, order_id)
            if await cancellation.cancelled_before(conn, order_id):
                return CancelResult(
                    order_id=order_id,
                    status=OrderStatus.CANCELLED,
                    refunded=await refunds.refunded(conn, order_id),
                    released_lines=await cancellation.released_lines(conn, order_id),
                )

            # Each undo leaves an event of its own kind, keyed `cancellation.<kind>`.
            async def undone(kind: str, **details: object) -> None:
                await self._effects.claim_in(
                    conn,
                    OrderEvent(
                        order_id,
                        f"cancellation.{kind}",
                        step,
                        kind,
                        actor=request.requested_by,
                        details=details,
                    ),
                )

            task_was = await cancellation.cancel_pick_task(conn, order_id)
            if task_was is not None:
                await undone("pick_task_cancelled", task_was=task_was)
            shares = await cancellation.waiting_shares(conn, order_id)
            released = await inventory.release(conn, order_id)
            if released or shares:
                await undone(
                    "stock_released",
                    lines=released,
                    withdrawn_shares=[
                        {"sku": s["sku"], "request_id": s["request_id"], "quantity": s["shortfall"]}
                        for s in shares
                    ],
                )
            if await cancellation.cancel_review_task(conn, order_id):
                await undone("review_task_closed")
            reason = f"cancelled: {request.reason}"
            receipt = await refunds.refund(
                conn, refunds.RefundRequest(order_id=order_id, reason=reason)
            )
            await undone(
                "payment_refunded",
                amount=str(receipt.amount),
                idempotency_key=receipt.idempotency_key,
            )
            await self._effects.claim_in(
                conn,
                OrderEvent(
                    order_id,
                    "cancellation.cancelled",
                    step,
                    "order_cancelled",
                    status=OrderStatus.CANCELLED,
                    actor=request.requested_by,
                    details={"reason": request.reason},
                ),
            )
            await refunds.tell_customer_closed(
                conn, self._settings, order_id, cause="request", reason=request.reason
            )
        return CancelResult(
            order_id=order_id,
            status=OrderStatus.CANCELLED,
            refunded=receipt.amount,
            released_lines=released,
        )

    @activity.defn(name=ActivityName.REJECT_UNPROCESSABLE)
    async def reject_unprocessable(self, data: UnprocessableInput) -> None:
        """End an order a step can never process: REJECTED with the reason, what the steps
        did undone as a cancel undoes it, and a task in customer service's queue. Written
        also when the order's own row could not be (step 1 failed): the task is then all
        there is of it."""
        order_id = data.order_id
        workflow_id = activity.info().workflow_id or f"order-{order_id}"
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await orders.order_status(conn, order_id) is not None
            refunded = False
            if recorded:
                await cancellation.lock_order(conn, order_id)
                claimed = await self._effects.claim_in(
                    conn,
                    OrderEvent(
                        order_id,
                        "unprocessable.rejected",
                        data.step,
                        "order_unprocessable",
                        status=OrderStatus.REJECTED,
                        details={"reason": data.reason, "activity": data.activity},
                    ),
                )
                if claimed is None:
                    return
                await cancellation.cancel_pick_task(conn, order_id)
                await inventory.release(conn, order_id)
                await cancellation.cancel_review_task(conn, order_id)
                # In a savepoint: the data that broke the step may break the refund too;
                # the order is rejected all the same, and the task says to refund by hand.
                try:
                    async with conn.transaction():
                        await refunds.refund(
                            conn, refunds.RefundRequest(order_id=order_id, reason=data.reason)
                        )
                        await refunds.tell_customer_closed(
                            conn, self._settings, order_id, cause="review"
                        )
                    refunded = True
                except Exception as exc:  # any failure: a person refunds by hand
                    activity.logger.warning(
                        "order %s rejected as unprocessable, not refunded: %s",
                        order_id,
                        type(exc).__name__,
                    )
            await unprocessable.record(
                conn,
                order_id=order_id,
                workflow_id=workflow_id,
                step=data.step,
                activity=data.activity,
                reason=data.reason,
                refunded=refunded,
            )
