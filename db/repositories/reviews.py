"""The risk team's queue of review tasks."""

from __future__ import annotations

import asyncpg


async def pending(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    """Open and escalated review tasks, oldest first."""
    return await conn.fetch(
        """SELECT t.order_id, t.status AS task_status, t.score, t.reasons, t.opened_at, t.due_at,
                  t.deadline_at, o.customer_id, o.total, o.currency
           FROM review_tasks t JOIN orders o ON o.order_id = t.order_id
           WHERE t.status IN ('open', 'escalated')
           ORDER BY t.opened_at, t.order_id"""
    )
