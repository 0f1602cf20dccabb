"""Step 4: stock reserved all-or-nothing, or the order backordered with its share of a
purchase request, and reminders while it waits.

Each activity writes its effect once, with its event (`activities/effects.py`). They touch
only PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

from temporalio import activity

from activities.effects import OrderActivities, OrderEvent
from db.repositories import inventory, orders
from orderflow.models import Order, OrderStatus, ReservationOutcome, Step
from orderflow.models.activity_names import ActivityName
from orderflow.models.steps import BackorderReminderInput


def _lines(order: Order) -> list[tuple[str, int]]:
    return [(item.sku, item.quantity) for item in order.items]


class InventoryActivities(OrderActivities):
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
                # Held now or before (an earlier attempt, stock received while it waited):
                # the event is recorded once either way.
                await self._effects.claim_in(
                    conn,
                    OrderEvent(
                        order.order_id,
                        "inventory.reserved",
                        Step.INVENTORY,
                        "stock_reserved",
                        status=OrderStatus.RESERVED,
                        details={"lines": len(lines)},
                    ),
                )
                return ReservationOutcome(reserved=True)
            # Its place in the queue: when the shop received it, not the storefront's clock.
            received_at = await orders.received_at(conn, order.order_id)
            await inventory.open_backorder(
                conn, order.order_id, received_at, lines, attempt.shortages
            )
            claimed = await self._effects.claim_in(
                conn,
                OrderEvent(
                    order.order_id,
                    "inventory.backordered",
                    Step.INVENTORY,
                    "backordered",
                    status=OrderStatus.BACKORDERED,
                    details={"shortages": attempt.shortages},
                ),
            )
            if claimed:
                await claimed.email_customer(
                    key=f"{order.order_id}:backordered",
                    kind="backorder_notice",
                    context={"shortages": attempt.shortages},
                )
            return ReservationOutcome(reserved=False, shortages=attempt.shortages)

    @activity.defn(name=ActivityName.REMIND_BACKORDER)
    async def remind_backorder(self, data: BackorderReminderInput) -> None:
        event = OrderEvent(
            data.order_id,
            f"inventory.reminder.{data.reminder_no}",
            Step.INVENTORY,
            "backorder_reminder",
            details={
                "reminder_no": data.reminder_no,
                "cancellation_offered": data.offer_cancellation,
            },
        )
        async with self._effects.claim(event) as claimed:
            if claimed:
                await claimed.email_customer(
                    key=f"{data.order_id}:backorder_reminder:{data.reminder_no}",
                    kind="backorder_reminder",
                    context={
                        "reminder_no": data.reminder_no,
                        "offer_cancellation": data.offer_cancellation,
                    },
                )
