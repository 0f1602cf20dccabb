"""Steps 5, 7 and 8 in the database: pick and pack, tracking events, feedback tickets,
completion and reviews.

Each activity writes its effect, the order's new status and its event in one transaction,
keyed so that a retried activity changes nothing the second time. They touch only
PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.repositories import catalogue, delivery, events, feedback, notifications
from orderflow.models import (
    OrderStatus,
    Step,
    TrackingUpdate,
)
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
from orderflow.settings import Settings
from policies.feedback_routing import department_for

# Packaging added to the goods' catalogue weight when the warehouse weighs automatically.
_PACKAGING_KG = Decimal("0.300")


class FulfilmentActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    # Step 5 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.OPEN_PICK_TASK)
    async def open_pick_task(self, data: PickTaskInput) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key="picking.task_opened",
                step=Step.PICKING_PACKING,
                kind="pick_task_opened",
                status=OrderStatus.PICKING,
            )
            if recorded is not None:
                await conn.execute(
                    """INSERT INTO warehouse_tasks (order_id, opened_at, due_at)
                       VALUES ($1, $2::timestamptz, $2::timestamptz + $3::interval) ON CONFLICT (order_id) DO NOTHING""",
                    data.order_id,
                    recorded,
                    data.pick_sla,
                )

    @activity.defn(name=ActivityName.NOTIFY_PICK_OVERDUE)
    async def notify_pick_overdue(self, ref: OrderRef) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=ref.order_id,
                event_key="picking.overdue",
                step=Step.PICKING_PACKING,
                kind="pick_task_overdue",
            )
            if recorded is not None:
                await notifications.notify_department(
                    conn,
                    department="warehouse",
                    key=f"{ref.order_id}:pick_overdue",
                    order_id=ref.order_id,
                    kind="pick_task_overdue",
                )

    @activity.defn(name=ActivityName.RECORD_PICKED)
    async def record_picked(self, data: WarehouseReportInput) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key="picking.picked",
                step=Step.PICKING_PACKING,
                kind="picked",
                actor=data.by,
            )
            if recorded is not None:
                await conn.execute(
                    """UPDATE warehouse_tasks SET status = 'picked', picked_at = $2, picked_by = $3
                       WHERE order_id = $1""",
                    data.order_id,
                    recorded,
                    data.by,
                )

    @activity.defn(name=ActivityName.RECORD_PACKED)
    async def record_packed(self, data: WarehouseReportInput) -> float:
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchval(
                "SELECT weight_kg FROM warehouse_tasks WHERE order_id = $1 AND status = 'packed'",
                data.order_id,
            )
            if stored is not None:
                return float(stored)
            if data.weight_kg is not None:
                weight = Decimal(str(data.weight_kg))
            else:
                lines = await conn.fetch(
                    "SELECT sku, quantity FROM order_lines WHERE order_id = $1", data.order_id
                )
                goods = await catalogue.parcel_weight(
                    conn, [(r["sku"], r["quantity"]) for r in lines]
                )
                weight = goods + _PACKAGING_KG
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key="picking.packed",
                step=Step.PICKING_PACKING,
                kind="packed",
                status=OrderStatus.PACKED,
                actor=data.by,
                details={"weight_kg": str(weight)},
            )
            if recorded is not None:
                await conn.execute(
                    """UPDATE warehouse_tasks SET status = 'packed', packed_at = $2, packed_by = $3,
                           weight_kg = $4 WHERE order_id = $1""",
                    data.order_id,
                    recorded,
                    data.by,
                    weight,
                )
            return float(weight)

    # Step 7 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.RECORD_TRACKING)
    async def record_tracking(self, data: TrackingInput) -> None:
        update: TrackingUpdate = data.update
        status = update.status if update.status in OrderStatus.__members__ else None
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key=f"tracking.{update.event_id}",
                step=Step.TRACKING,
                kind=f"tracking_{update.status.lower()}",
                status=status,
                actor="carrier",
                details={
                    "tracking_number": update.tracking_number,
                    "at": update.at.isoformat(),
                    "details": update.details,
                },
            )
            if recorded is None:
                return
            await conn.execute(
                """UPDATE shipments SET status = $2, last_event_at = $3,
                       delivered_at = CASE WHEN $2 = 'DELIVERED' THEN $3 ELSE delivered_at END
                   WHERE order_id = $1""",
                data.order_id,
                update.status,
                update.at,
            )
            if update.status == "DELIVERED":
                # Whatever logistics was chasing has arrived.
                await delivery.resolve_follow_ups(conn, data.order_id, "delivered")
                await delivery.mark_found(conn, data.order_id)
                await notifications.email_customer(
                    conn,
                    self._settings,
                    key=f"{data.order_id}:delivered",
                    order_id=data.order_id,
                    kind="delivered",
                )

    # Step 8 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.COMPLETE_ORDER)
    async def complete_order(self, data: CompleteInput) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key="completion.completed",
                step=Step.COMPLETION,
                kind="order_completed",
                status=OrderStatus.COMPLETED,
                details={"how": data.how},
            )
            if recorded is None:
                return
            await notifications.email_customer(
                conn,
                self._settings,
                key=f"{data.order_id}:review_invitation",
                order_id=data.order_id,
                kind="review_invitation",
            )

    @activity.defn(name=ActivityName.RECORD_PRODUCT_REVIEW)
    async def record_product_review(self, data: ProductReviewInput) -> ReviewReceipt:
        review = data.review
        async with self._pool.acquire() as conn, conn.transaction():
            stored_at = await feedback.store_review(
                conn, data.order_id, rating=review.rating, comment=review.comment, by=review.by
            )
            await events.record_event(
                conn,
                order_id=data.order_id,
                event_key="completion.reviewed",
                step=Step.COMPLETION,
                kind="review_received",
                actor=review.by,
                details={"rating": review.rating},
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
            step = await conn.fetchval(
                "SELECT coalesce(max(step), 1) FROM order_events WHERE order_id = $1",
                data.order_id,
            )
            await events.record_event(
                conn,
                order_id=data.order_id,
                event_key=f"feedback.{receipt.ticket_id}",
                step=step,
                kind="feedback_received",
                actor=request.by,
                details={
                    "ticket_id": receipt.ticket_id,
                    "category": receipt.category,
                    "department": department,
                    "holds_completion": receipt.holds_completion,
                },
            )
            ticket_facts = {
                "ticket_id": receipt.ticket_id,
                "message": request.message,
                "holds_completion": receipt.holds_completion,
            }
            await notifications.notify_department(
                conn,
                department=department,
                key=f"{data.order_id}:feedback:{receipt.ticket_id}:department",
                order_id=data.order_id,
                kind="feedback_ticket",
                context={**ticket_facts, "category": receipt.category},
            )
            await notifications.email_customer(
                conn,
                self._settings,
                key=f"{data.order_id}:feedback:{receipt.ticket_id}:customer",
                order_id=data.order_id,
                kind="feedback_acknowledged",
                context={**ticket_facts, "department": department},
            )
        return receipt
