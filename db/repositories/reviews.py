"""The risk team's queue of review tasks: opened, escalated, decided."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg


async def pending(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """Open and escalated review tasks, oldest first: those after `after` (opened_at,
    order_id), at most `limit` (None: all)."""
    since, order_id = after or (None, None)
    return await conn.fetch(
        """SELECT t.order_id, t.status AS task_status, t.score, t.reasons, t.opened_at, t.due_at,
                  t.deadline_at, o.customer_id, o.total, o.currency
           FROM review_tasks t JOIN orders o ON o.order_id = t.order_id
           WHERE t.status IN ('open', 'escalated')
             AND ($1::timestamptz IS NULL OR (t.opened_at, t.order_id) > ($1, $2::text))
           ORDER BY t.opened_at, t.order_id
           LIMIT $3""",
        since,
        order_id,
        limit,
    )


async def open_task(
    conn: asyncpg.Connection,
    order_id: str,
    *,
    score: float,
    reasons: list[dict[str, Any]],
    opened_at: datetime,
    sla: timedelta,
    deadline: timedelta,
) -> None:
    """A review task for a flagged order (once per order): due `sla` after it opened, expired
    `deadline` after it opened if nobody decides."""
    await conn.execute(
        """INSERT INTO review_tasks (order_id, score, reasons, opened_at, due_at, deadline_at)
           VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz + $5::interval,
                   $4::timestamptz + $6::interval)
           ON CONFLICT (order_id) DO NOTHING""",
        order_id,
        score,
        reasons,
        opened_at,
        sla,
        deadline,
    )


async def escalate(conn: asyncpg.Connection, order_id: str, *, at: datetime) -> None:
    """An open task goes to the supervisor (a task decided meanwhile stays as it is)."""
    await conn.execute(
        """UPDATE review_tasks SET status = 'escalated', escalated_at = $2
           WHERE order_id = $1 AND status = 'open'""",
        order_id,
        at,
    )


async def decide(
    conn: asyncpg.Connection,
    order_id: str,
    *,
    status: str,
    at: datetime,
    by: str,
    decision: str,
    note: str | None,
) -> None:
    """Close the task as `status` (approved, rejected, expired) with the reviewer's decision."""
    await conn.execute(
        """UPDATE review_tasks SET status = $2, decided_at = $3, decided_by = $4,
               decision = $5, note = $6 WHERE order_id = $1""",
        order_id,
        status,
        at,
        by,
        decision,
        note,
    )
