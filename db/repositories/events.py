"""The order event log and the order's current status, always written together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


async def record_event(
    conn: asyncpg.Connection,
    *,
    order_id: str,
    event_key: str,
    step: int,
    kind: str,
    actor: str = "system",
    status: str | None = None,
    details: dict[str, Any] | None = None,
) -> datetime | None:
    """Append an event (and move the order's status) unless `event_key` was recorded before.

    Returns the event time when this call recorded it, None when it already existed: the
    caller then skips its effect, which is what makes a retried activity change nothing.
    Call inside the transaction of the effect.
    """
    occurred_at: datetime | None = await conn.fetchval(
        """INSERT INTO order_events (order_id, event_key, step, status, kind, actor, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (order_id, event_key) DO NOTHING
           RETURNING occurred_at""",
        order_id,
        event_key,
        step,
        status,
        kind,
        actor,
        details or {},
    )
    if occurred_at is not None and status is not None:
        await conn.execute(
            "UPDATE orders SET status = $2, status_changed_at = $3 WHERE order_id = $1",
            order_id,
            status,
            occurred_at,
        )
    return occurred_at


async def timeline(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT step, status, kind, actor, details, occurred_at
           FROM order_events WHERE order_id = $1 ORDER BY id""",
        order_id,
    )


async def current_step(conn: asyncpg.Connection, order_id: str) -> int:
    """The latest step the order's timeline reached (1 before any event)."""
    return int(
        await conn.fetchval(
            "SELECT coalesce(max(step), 1) FROM order_events WHERE order_id = $1", order_id
        )
    )
