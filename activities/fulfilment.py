"""Steps 5, 7 and 8 in the database: pick and pack, tracking events, feedback tickets,
completion and reviews.

Each activity writes its effect once, with its event (`activities/effects.py`). They touch
only PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

from decimal import Decimal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.effects import OrderActivities, OrderEvent
from db.repositories import catalogue, delivery, events, feedback, orders, warehouse
from orderflow.models import OrderStatus, Step, TrackingUpdate
from orderflow.models.activity_names import ActivityName
from orderflow.models.messages import FeedbackReceipt, ReviewReceipt
from orderflow.models.steps import (
    CompleteInput,
    FeedbackInput,
    OrderRef,
    PickTaskInput,
    ProductReviewInput,
    TrackingInput,
    WarehouseReportInput,
)
from policies.feedback_routing import department_for

# Packaging added to the goods' catalogue weight when the warehouse weighs automatically.
_PACKAGING_KG = Decimal("0.300")


class FulfilmentActivities(OrderActivities):
    # Step 5 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.OPEN_PICK_TASK)
    async def open_pick_task(self, data: PickTaskInput) -> None:
        event = OrderEvent(
            data.order_id,
            "picking.task_opened",
            Step.PICKING_PACKING,
            "pick_task_opened",
            status=OrderStatus.PICKING,
        )
        async with self._effects.claim(event) as claimed:
            if claimed:
                await warehouse.add_task(
                    claimed.conn, data.order_id, opened_at=claimed.at, pick_sla=data.pick_sla
                )

    @activity.defn(name=ActivityName.NOTIFY_PICK_OVERDUE)
    async def notify_pick_overdue(self, ref: OrderRef) -> None:
        event = OrderEvent(
            ref.order_id, "picking.overdue", Step.PICKING_PACKING, "pick_task_overdue"
        )
        async with self._effects.claim(event) as claimed:
            if claimed:
                await claimed.notify_department(
                    department="warehouse",
                    key=f"{ref.order_id}:pick_overdue",
                    kind="pick_task_overdue",
                )

    @activity.defn(name=ActivityName.RECORD_PICKED)
    async def record_picked(self, data: WarehouseReportInput) -> None:
        event = OrderEvent(
            data.order_id, "picking.picked", Step.PICKING_PACKING, "picked", actor=data.by
        )
        async with self._effects.claim(event) as claimed:
            if claimed:
                await warehouse.mark_picked(claimed.conn, data.order_id, at=claimed.at, by=data.by)

    @activity.defn(name=ActivityName.RECORD_PACKED)
    async def record_packed(self, data: WarehouseReportInput) -> float:
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await warehouse.packed_weight(conn, data.order_id)
            if stored is not None:
                return float(stored)
            if data.weight_kg is not None:
                weight = Decimal(str(data.weight_kg))
            else:
                goods = await catalogue.parcel_weight(
                    conn, await orders.lines_of(conn, data.order_id)
                )
                weight = goods + _PACKAGING_KG
            claimed = await self._effects.claim_in(
                conn,
                OrderEvent(
                    data.order_id,
                    "picking.packed",
                    Step.PICKING_PACKING,
                    "packed",
                    status=OrderStatus.PACKED,
                    actor=data.by,
                    details={"weight_kg": str(weight)},
                ),
            )
            if claimed:
                await warehouse.mark_packed(
                    conn, data.order_id, at=claimed.at, by=data.by, weight_kg=weight
                )
            return float(weight)

    # Step 7 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.RECORD_TRACKING)
    async def record_tracking(self, data: TrackingInput) -> None:
        update: TrackingUpdate = data.update
        event = OrderEvent(
            data.order_id,
            f"tracking.{update.event_id}",
            Step.TRACKING,
            f"tracking_{update.status.lower()}",
            status=update.status if update.status in OrderStatus.__members__ else None,
            actor="carrier",
            details={
                "tracking_number": update.tracking_number,
                "at": update.at.isoformat(),
                "details": update.details,
            },
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await delivery.set_carrier_status(claimed.conn, data.order_id, update.status, update.at)
            if update.status == "DELIVERED":
                # Whatever logistics was chasing has arrived.
                await delivery.resolve_follow_ups(claimed.conn, data.order_id, "delivered")
                await delivery.mark_found(claimed.conn, data.order_id)
                await claimed.email_customer(key=f"{data.order_id}:delivered", kind="delivered")

    # Step 8 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.COMPLETE_ORDER)
    async def complete_order(self, data: CompleteInput) -> None:
        event = OrderEvent(
            data.order_id,
            "completion.completed",
            Step.COMPLETION,
            "order_completed",
            status=OrderStatus.COMPLETED,
            details={"how": data.how},
        )
        async with self._effects.claim(event) as claimed:
            if claimed:
                await claimed.email_customer(
                    key=f"{data.order_id}:review_invitation", kind="review_invitation"
                )

    @activity.defn(name=ActivityName.RECORD_PRODUCT_REVIEW)
    async def record_product_review(self, data: ProductReviewInput) -> ReviewReceipt:
        review = data.review
        async with self._pool.acquire() as conn, conn.transaction():
            # Stored once per order (a retry reads the first back); the event has no effect of
            # its own to apply, so whether this call claimed it does not matter.
            stored_at = await feedback.store_review(
                conn, data.order_id, rating=review.rating, comment=review.comment, by=review.by
            )
            await self._effects.claim_in(
                conn,
                OrderEvent(
                    data.order_id,
                    "completion.reviewed",
                    Step.COMPLETION,
                    "review_received",
                    actor=review.by,
                    details={"rating": review.rating},
                ),
            )
        return ReviewReceipt(order_id=data.order_id, rating=review.rating, stored_at=stored_at)

    # Feedback (any step) ------------------------------------------------------------------
    @activity.defn(name=ActivityName.RECORD_FEEDBACK)
    async def record_feedback(self, data: FeedbackInput) -> FeedbackReceipt:
        request = data.request
        department = department_for(request.category)
        async with self._pool.acquire() as conn, conn.transaction():
            ticket, created = await feedback.open_ticket(
                conn,
                ticket_id=data.ticket_id,
                order_id=data.order_id,
                request_key=request.request_key,
                category=request.category,
                department=department,
                message=request.message,
                requested_by=request.by,
                holds_completion=data.holds_completion,
            )
            if ticket["order_id"] != data.order_id:
                raise ApplicationError(
                    f"request key {request.request_key!r} belongs to another order's ticket",
                    type="InvalidInput",
                    non_retryable=True,
                )
            receipt = FeedbackReceipt(
                ticket_id=ticket["ticket_id"],
                order_id=data.order_id,
                category=ticket["category"],
                department=ticket["department"],
                holds_completion=ticket["holds_completion"],
                created=created,
            )
            if not created:
                return receipt
            # The ticket is new, so is its event (both are written only here, together).
            claimed = await self._effects.claim_in(
                conn,
                OrderEvent(
                    data.order_id,
                    f"feedback.{receipt.ticket_id}",
                    await events.current_step(conn, data.order_id),
                    "feedback_received",
                    actor=request.by,
                    details={
                        "ticket_id": receipt.ticket_id,
                        "category": receipt.category,
                        "department": department,
                        "holds_completion": receipt.holds_completion,
                    },
                ),
            )
            assert claimed is not None
            ticket_facts = {
                "ticket_id": receipt.ticket_id,
                "message": request.message,
                "holds_completion": receipt.holds_completion,
            }
            await claimed.notify_department(
                department=department,
                key=f"{data.order_id}:feedback:{receipt.ticket_id}:department",
                kind="feedback_ticket",
                context={**ticket_facts, "category": receipt.category},
            )
            await claimed.email_customer(
                key=f"{data.order_id}:feedback:{receipt.ticket_id}:customer",
                kind="feedback_acknowledged",
                context={**ticket_facts, "department": department},
            )
        return receipt
