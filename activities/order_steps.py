"""The order's database steps: each writes its effect, the new status and its event in one
transaction, keyed so that a retried activity changes nothing the second time.

They are short and touch only PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.names import ActivityName
from db.repositories import catalogue, events, inventory, notifications, orders
from db.repositories.risk_history import load_risk_history
from orderflow.models import (
    CancelResult,
    Classification,
    Order,
    OrderStatus,
    OrderWorkflowInput,
    ReservationOutcome,
    RiskAssessment,
    Step,
    TrackingUpdate,
)
from orderflow.models.risk import RiskConfig
from orderflow.models.steps import (
    AssessRiskInput,
    BackorderReminderInput,
    CancelInput,
    CompleteInput,
    OrderRef,
    PickTaskInput,
    ReviewOutcomeInput,
    TrackingInput,
    WarehouseReportInput,
)
from orderflow.settings import Settings
from policies.classification import ClassificationThresholds, classify, order_facts
from policies.risk import score_order

# Packaging added to the goods' catalogue weight when the warehouse weighs automatically.
_PACKAGING_KG = Decimal("0.300")


def _lines(order: Order) -> list[tuple[str, int]]:
    return [(item.sku, item.quantity) for item in order.items]


class OrderStepActivities:
    """Activities of steps 1–5, 7 and 8 and of cancellation, sharing one pool."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._risk_config = RiskConfig.from_settings(settings)

    # Step 1 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.RECORD_ORDER)
    async def record_order(self, data: OrderWorkflowInput) -> None:
        order = data.order
        placed_at = order.placed_at or data.received_at
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await orders.insert_order(
                conn,
                order,
                workflow_id=activity.info().workflow_id or f"order-{order.order_id}",
                placed_at=placed_at,
                status=OrderStatus.RECEIVED,
            )
            if not inserted:
                return
            await events.record_event(
                conn,
                order_id=order.order_id,
                event_key="generation.received",
                step=Step.GENERATION,
                kind="order_received",
                status=OrderStatus.RECEIVED,
                actor=f"storefront:{order.channel}",
                details={"total": str(order.total), "currency": order.currency, "lines": len(order.items)},
            )
            await notifications.enqueue(
                conn,
                key=f"{order.order_id}:confirmation",
                order_id=order.order_id,
                kind="order_confirmation",
                channel="email",
                recipient=str(order.customer.email),
                subject=f"Your order {order.order_id} is confirmed",
                body=f"Thank you, {order.customer.name}. We received your order of "
                f"{order.total} {order.currency} and will keep you posted.",
            )

    # Step 2 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.CLASSIFY_ORDER)
    async def classify_order(self, order: Order) -> Classification:
        async with self._pool.acquire() as conn, conn.transaction():
            products = await catalogue.products_by_sku(conn, [i.sku for i in order.items])
            facts = order_facts(
                order,
                pre_sale_skus={sku for sku, p in products.items() if p["pre_sale"]},
                shop_country=self._settings.shop_country,
            )
            result = classify(
                facts,
                ClassificationThresholds(
                    bulk_quantity=self._settings.bulk_quantity_threshold,
                    bulk_value=Decimal(self._settings.bulk_value_threshold),
                ),
            )
            recorded = await events.record_event(
                conn,
                order_id=order.order_id,
                event_key="classification.classified",
                step=Step.CLASSIFICATION,
                kind="order_classified",
                status=OrderStatus.CLASSIFIED,
                details=result.model_dump(),
            )
            if recorded is not None:
                await orders.set_classification(conn, order.order_id, result.order_type, result.department)
                await notifications.enqueue(
                    conn,
                    key=f"{order.order_id}:assigned",
                    order_id=order.order_id,
                    kind="department_assignment",
                    channel="department",
                    recipient=await notifications.department_lead(conn, result.department),
                    subject=f"Order {order.order_id} ({result.order_type}) assigned to {result.department}",
                    body=f"Rule: {result.rule}.",
                )
        return result

    # Step 3 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.ASSESS_RISK)
    async def assess_risk(self, data: AssessRiskInput) -> RiskAssessment:
        order = data.order
        async with self._pool.acquire() as conn:
            stored = await conn.fetchrow(
                "SELECT risk_score, risk_reasons, flagged, placed_at FROM orders WHERE order_id = $1",
                order.order_id,
            )
            if stored is None:
                raise ApplicationError(f"order {order.order_id} is not recorded", non_retryable=True)
            if stored["risk_score"] is not None:
                # Scored before (a retry): the first verdict stands, history has moved on since.
                return RiskAssessment(
                    score=float(stored["risk_score"]),
                    flagged=stored["flagged"],
                    reasons=stored["risk_reasons"],
                )
            history = await load_risk_history(conn, order, stored["placed_at"])
            assessment = score_order(order, history, self._risk_config)
            async with conn.transaction():
                status = OrderStatus.PENDING_REVIEW if assessment.flagged else OrderStatus.APPROVED
                recorded = await events.record_event(
                    conn,
                    order_id=order.order_id,
                    event_key="review.assessed",
                    step=Step.REVIEW,
                    kind="review_flagged" if assessment.flagged else "auto_approved",
                    status=status,
                    details=assessment.model_dump(mode="json"),
                )
                if recorded is None:
                    return assessment
                await orders.set_risk(
                    conn,
                    order.order_id,
                    assessment.score,
                    [r.model_dump(mode="json") for r in assessment.reasons],
                    assessment.flagged,
                )
                if assessment.flagged:
                    await conn.execute(
                        """INSERT INTO review_tasks (order_id, score, reasons, opened_at, due_at, deadline_at)
                           VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz + $5::interval,
                                   $4::timestamptz + $6::interval)
                           ON CONFLICT (order_id) DO NOTHING""",
                        order.order_id,
                        assessment.score,
                        [r.model_dump(mode="json") for r in assessment.reasons],
                        recorded,
                        data.review_sla,
                        data.review_deadline,
                    )
                    await notifications.enqueue(
                        conn,
                        key=f"{order.order_id}:review_opened",
                        order_id=order.order_id,
                        kind="review_task_opened",
                        channel="department",
                        recipient=await notifications.department_lead(conn, "risk"),
                        subject=f"Order {order.order_id} needs a review (risk {assessment.score:.0f})",
                        body="; ".join(r.message for r in assessment.reasons),
                    )
        return assessment

    @activity.defn(name=ActivityName.ESCALATE_REVIEW)
    async def escalate_review(self, ref: OrderRef) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=ref.order_id,
                event_key="review.escalated",
                step=Step.REVIEW,
                kind="review_escalated",
                details={"reason": "review SLA passed"},
            )
            if recorded is None:
                return
            await conn.execute(
                """UPDATE review_tasks SET status = 'escalated', escalated_at = $2
                   WHERE order_id = $1 AND status = 'open'""",
                ref.order_id,
                recorded,
            )
            await notifications.enqueue(
                conn,
                key=f"{ref.order_id}:review_escalated",
                order_id=ref.order_id,
                kind="review_escalated",
                channel="department",
                recipient=await notifications.department_lead(conn, "risk_supervisor"),
                subject=f"Review of order {ref.order_id} is overdue",
                body="The review SLA has passed without a decision.",
            )

    @activity.defn(name=ActivityName.RECORD_REVIEW_DECISION)
    async def record_review_decision(self, data: ReviewOutcomeInput) -> None:
        decision = data.decision
        approved = decision.decision == "approve"
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key="review.decided",
                step=Step.REVIEW,
                kind="review_timeout" if data.timed_out else f"review_{decision.decision}d",
                status=OrderStatus.APPROVED if approved else OrderStatus.REJECTED,
                actor=decision.reviewer,
                details={"decision": decision.decision, "note": decision.note, "timed_out": data.timed_out},
            )
            if recorded is None:
                return
            task_status = "approved" if approved else ("expired" if data.timed_out else "rejected")
            await conn.execute(
                """UPDATE review_tasks SET status = $2, decided_at = $3, decided_by = $4,
                       decision = $5, note = $6 WHERE order_id = $1""",
                data.order_id,
                task_status,
                recorded,
                decision.reviewer,
                decision.decision,
                decision.note,
            )
            if not approved:
                await self._refund_and_tell(conn, data.order_id, reason=decision.note or "rejected")

    # Step 4 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.RESERVE_STOCK)
    async def reserve_stock(self, order: Order) -> ReservationOutcome:
        lines = _lines(order)
        async with self._pool.acquire() as conn, conn.transaction():
            attempt = await inventory.try_reserve(conn, order.order_id, lines, queue_position_ok=False)
            if attempt.reserved:
                await events.record_event(
                    conn,
                    order_id=order.order_id,
                    event_key="inventory.reserved",
                    step=Step.INVENTORY,
                    kind="stock_reserved",
                    status=OrderStatus.RESERVED,
                    details={"lines": len(lines)},
                )
                return ReservationOutcome(reserved=True)
            placed_at = await conn.fetchval(
                "SELECT placed_at FROM orders WHERE order_id = $1", order.order_id
            )
            await inventory.open_backorder(conn, order.order_id, placed_at, lines, attempt.shortages)
            recorded = await events.record_event(
                conn,
                order_id=order.order_id,
                event_key="inventory.backordered",
                step=Step.INVENTORY,
                kind="backordered",
                status=OrderStatus.BACKORDERED,
                details={"shortages": attempt.shortages},
            )
            if recorded is not None:
                await notifications.enqueue(
                    conn,
                    key=f"{order.order_id}:backordered",
                    order_id=order.order_id,
                    kind="backorder_notice",
                    channel="email",
                    recipient=str(order.customer.email),
                    subject=f"Order {order.order_id}: some items are on their way to us",
                    body="We have ordered more stock and will ship as soon as it arrives.",
                )
            return ReservationOutcome(reserved=False, shortages=attempt.shortages)

    @activity.defn(name=ActivityName.REMIND_BACKORDER)
    async def remind_backorder(self, data: BackorderReminderInput) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key=f"inventory.reminder.{data.reminder_no}",
                step=Step.INVENTORY,
                kind="backorder_reminder",
                details={"reminder_no": data.reminder_no, "cancellation_offered": data.offer_cancellation},
            )
            if recorded is None:
                return
            email = await conn.fetchval("SELECT customer_email FROM orders WHERE order_id = $1", data.order_id)
            offer = " If you prefer, you can cancel the order at no cost." if data.offer_cancellation else ""
            await notifications.enqueue(
                conn,
                key=f"{data.order_id}:backorder_reminder:{data.reminder_no}",
                order_id=data.order_id,
                kind="backorder_reminder",
                channel="email",
                recipient=email,
                subject=f"Order {data.order_id}: still waiting for stock",
                body="Your order is waiting for goods from our supplier." + offer,
            )

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
                await notifications.enqueue(
                    conn,
                    key=f"{ref.order_id}:pick_overdue",
                    order_id=ref.order_id,
                    kind="pick_task_overdue",
                    channel="department",
                    recipient=await notifications.department_lead(conn, "warehouse"),
                    subject=f"Pick task for order {ref.order_id} is overdue",
                    body="The task has waited longer than its SLA.",
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
                goods = await catalogue.parcel_weight(conn, [(r["sku"], r["quantity"]) for r in lines])
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
                details={"tracking_number": update.tracking_number, "at": update.at.isoformat(),
                         "details": update.details},
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
                email = await conn.fetchval(
                    "SELECT customer_email FROM orders WHERE order_id = $1", data.order_id
                )
                await notifications.enqueue(
                    conn,
                    key=f"{data.order_id}:delivered",
                    order_id=data.order_id,
                    kind="delivered",
                    channel="email",
                    recipient=email,
                    subject=f"Order {data.order_id} was delivered",
                    body="Your parcel was delivered. Tell us if anything is wrong.",
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
            email = await conn.fetchval("SELECT customer_email FROM orders WHERE order_id = $1", data.order_id)
            await notifications.enqueue(
                conn,
                key=f"{data.order_id}:review_invitation",
                order_id=data.order_id,
                kind="review_invitation",
                channel="email",
                recipient=email,
                subject=f"How was your order {data.order_id}?",
                body="We would love to hear what you think: rate your order from 1 to 5.",
            )

    # Cancellation ---------------------------------------------------------------------
    @activity.defn(name=ActivityName.CANCEL_ORDER)
    async def cancel_order(self, data: CancelInput) -> CancelResult:
        async with self._pool.acquire() as conn, conn.transaction():
            step = await conn.fetchval(
                "SELECT coalesce(max(step), 1) FROM order_events WHERE order_id = $1", data.order_id
            )
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key="cancellation.cancelled",
                step=step,
                kind="order_cancelled",
                status=OrderStatus.CANCELLED,
                actor=data.request.requested_by,
                details={"reason": data.request.reason},
            )
            if recorded is not None:
                # Undo in reverse order of the steps that did it.
                await conn.execute(
                    "UPDATE warehouse_tasks SET status = 'cancelled' WHERE order_id = $1 AND status <> 'packed'",
                    data.order_id,
                )
                released = await inventory.release(conn, data.order_id)
                await conn.execute(
                    """UPDATE review_tasks SET status = 'cancelled'
                       WHERE order_id = $1 AND status IN ('open', 'escalated')""",
                    data.order_id,
                )
                await self._refund_and_tell(conn, data.order_id, reason=f"cancelled: {data.request.reason}")
            else:
                released = int(
                    await conn.fetchval(
                        "SELECT count(*) FROM reservations WHERE order_id = $1 AND status = 'released'",
                        data.order_id,
                    )
                )
            refunded = await conn.fetchval("SELECT amount FROM refunds WHERE order_id = $1", data.order_id)
        return CancelResult(
            order_id=data.order_id,
            status=OrderStatus.CANCELLED,
            refunded=refunded or Decimal("0"),
            released_lines=released,
        )

    async def _refund_and_tell(self, conn: asyncpg.Connection, order_id: str, *, reason: str) -> None:
        await orders.record_refund(conn, order_id, reason)
        row = await conn.fetchrow(
            "SELECT customer_email, status FROM orders WHERE order_id = $1", order_id
        )
        await notifications.enqueue(
            conn,
            key=f"{order_id}:closed",
            order_id=order_id,
            kind=f"order_{row['status'].lower()}",
            channel="email",
            recipient=row["customer_email"],
            subject=f"Order {order_id} is {row['status'].lower()}",
            body=f"Your payment is refunded in full. Reason: {reason}.",
        )

