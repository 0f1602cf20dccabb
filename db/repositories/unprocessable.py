"""Orders a step could never process: one row each, in customer service's queue."""

from __future__ import annotations

import asyncpg


async def record(
    conn: asyncpg.Connection,
    *,
    order_id: str,
    workflow_id: str,
    step: int,
    activity: str,
    reason: str,
    refunded: bool,
) -> bool:
    """Put the order in the queue; False when it is there already (a retry)."""
    inserted = await conn.fetchval(
        """INSERT INTO unprocessable_orders (order_id, workflow_id, step, activity, reason,
                                             refunded)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (order_id) DO NOTHING
           RETURNING order_id""",
        order_id,
        workflow_id,
        step,
        activity,
        reason,
        refunded,
    )
    return inserted is not None


async def of_order(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM unprocessable_orders WHERE order_id = $1", order_id)
