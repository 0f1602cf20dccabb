"""Step 4: stock reserved all-or-nothing, or the order backordered with its share of a
purchase request, and reminders while it waits.

Each activity writes its effect, the order's new status and its event in one transaction,
keyed so that a retried activity changes nothing the second time. They touch only
PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from db.repositories import events, inventory, notifications
from orderflow.models import (
    Order,
    OrderStatus,
    ReservationOutcome,
    Step,
)
from orderflow.models.activity_names import ActivityName
from orderflow.models.steps import (
    BackorderReminderInput,
)
from orderflow.settings import Settings


def _lines(order: Order) -> list[tuple[str, int]]:
    return [(item.sku, item.quantity) for item in order.items]


class InventoryActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    # Step 4 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.RESERVE_STOCK)
    async def reserve_stock(self, order: Order) -> ReservationOutcome:
        lines = _lines(order)
        async with self._pool.acquire() as conn, conn.transaction():
            attempt = await inventory.try_reserve(conn, order.order_id, lines)
            if attempt.closed:
                # Cancelled or rejected meanwhile: the workflow's own cancel path undoes it.
                return ReservationOutcome(reserved=False)
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
            await inventory.open_backorder(
                conn, order.order_id, placed_at, lines, attempt.shortages
            )
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
                await notifications.email_customer(
                    conn,
                    self._settings,
                    key=f"{order.order_id}:backordered",
                    order_id=order.order_id,
                    kind="backorder_notice",
                    context={"shortages": attempt.shortages},
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
                details={
                    "reminder_no": data.reminder_no,
                    "cancellation_offered": data.offer_cancellation,
                },
            )
            if recorded is None:
                return
            await notifications.email_customer(
                conn,
                self._settings,
                key=f"{data.order_id}:backorder_reminder:{data.reminder_no}",
                order_id=data.order_id,
                kind="backorder_reminder",
                context={
                    "reminder_no": data.reminder_no,
                    "offer_cancellation": data.offer_cancellation,
                },
            )
