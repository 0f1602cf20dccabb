"""Cancellation: undo, in reverse, what the steps did, each effect once.

Each activity writes its effect, the order's new status and its event in one transaction,
keyed so that a retried activity changes nothing the second time. They touch only
PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
from temporalio import activity

from activities.names import ActivityName
from activities.payments import refund_and_tell
from db.repositories import events, inventory
from orderflow.models import (
    CancelResult,
    OrderStatus,
)
from orderflow.models.steps import (
    CancelInput,
)
from orderflow.settings import Settings


class CancellationActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

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
                await refund_and_tell(
                    conn, data.order_id, reason=f"cancelled: {data.request.reason}"
                )
            else:
                released = int(
                    await conn.fetchval(
                        "SELECT count(*) FROM reservations WHERE order_id = $1 AND status = 'released'",
                        data.order_id,
                    )
                )
            refunded = await conn.fetchval(
                "SELECT amount FROM refunds WHERE order_id = $1", data.order_id
            )
        return CancelResult(
            order_id=data.order_id,
            status=OrderStatus.CANCELLED,
            refunded=refunded or Decimal("0"),
            released_lines=released,
        )
