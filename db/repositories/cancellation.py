"""What a cancellation undoes outside the stock: the pick task and the review task."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from db.repositories import events, refunds


async def lock_order(conn: asyncpg.Connection, order_id: str) -> None:
    """Take the order's row lock first, the lock order every stock change of an order keeps."""
    await conn.execute("SELECT 1 FROM orders WHERE order_id = $1 FOR UPDATE", order_id)


async def cancel_pick_task(conn: asyncpg.Connection, order_id: str) -> str | None:
    """Take the order's task off the warehouse's list; the status it had, or None."""
    was: str | None = await conn.fetchval(
        "SELECT status FROM warehouse_tasks WHERE order_id = $1 FOR UPDATE", order_id
    )
    if was is None or was == "cancelled":
        return None
    await conn.execute(
        "UPDATE warehouse_tasks SET status = 'cancelled' WHERE order_id = $1", order_id
    )
    return was


async def waiting_shares(conn: asyncpg.Connection, order_id: str) -> list[asyncpg.Record]:
    """The order's places in the backorder queues, with its share of each purchase request."""
    return await conn.fetch(
        """SELECT sku, request_id, shortfall FROM backorders
           WHERE order_id = $1 AND status = 'waiting' ORDER BY sku""",
        order_id,
    )


async def cancel_review_task(conn: asyncpg.Connection, order_id: str) -> bool:
    updated = await conn.fetchval(
        """UPDATE review_tasks SET status = 'cancelled'
           WHERE order_id = $1 AND status IN ('open', 'escalated') RETURNING 1""",
        order_id,
    )
    return bool(updated)


async def released_lines(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM reservations WHERE order_id = $1 AND status = 'released'",
            order_id,
        )
    )


async def current_step(conn: asyncpg.Connection, order_id: str) -> int:
    """The step a cancellation undoes from: the latest the order's timeline reached."""
    return await events.current_step(conn, order_id)


async def cancelled_before(conn: asyncpg.Connection, order_id: str) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT 1 FROM order_events
               WHERE order_id = $1 AND event_key = 'cancellation.cancelled'""",
            order_id,
        )
    )


async def refunded_amount(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> Decimal:
    """What the cancel refunded (0 when nothing), as the refunds ledger says."""
    return await refunds.refunded(conn, order_id)
