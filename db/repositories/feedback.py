"""Customers' feedback tickets (routed to a department) and their product reviews."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def open_ticket(
    conn: asyncpg.Connection,
    *,
    ticket_id: str,
    order_id: str,
    request_key: str,
    category: str,
    department: str,
    message: str,
    requested_by: str,
    holds_completion: bool,
) -> tuple[asyncpg.Record, bool]:
    """The ticket of `request_key`, opened now unless it exists; (ticket, created now)."""
    inserted = await conn.fetchrow(
        """INSERT INTO feedback_tickets (ticket_id, order_id, request_key, category, department,
               message, requested_by, holds_completion)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (request_key) DO NOTHING
           RETURNING ticket_id, order_id, category, department, holds_completion, status""",
        ticket_id,
        order_id,
        request_key,
        category,
        department,
        message,
        requested_by,
        holds_completion,
    )
    if inserted is not None:
        return inserted, True
    existing = await conn.fetchrow(
        """SELECT ticket_id, order_id, category, department, holds_completion, status
           FROM feedback_tickets WHERE request_key = $1""",
        request_key,
    )
    return existing, False


async def ticket(conn: asyncpg.Connection | asyncpg.Pool, ticket_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT t.ticket_id, t.order_id, t.category, t.department, t.message, t.status,
                  t.holds_completion, t.created_at, t.resolved_at, t.resolved_by, t.resolution,
                  o.customer_email
           FROM feedback_tickets t JOIN orders o ON o.order_id = t.order_id
           WHERE t.ticket_id = $1""",
        ticket_id,
    )


async def resolve_ticket(
    conn: asyncpg.Connection, ticket_id: str, *, by: str, resolution: str | None
) -> bool:
    """Resolve an open ticket; False when it was resolved before (nothing changes)."""
    updated = await conn.fetchval(
        """UPDATE feedback_tickets SET status = 'resolved', resolved_at = now(), resolved_by = $2,
               resolution = $3
           WHERE ticket_id = $1 AND status = 'open' RETURNING 1""",
        ticket_id,
        by,
        resolution,
    )
    return bool(updated)


async def tickets_of(
    conn: asyncpg.Connection | asyncpg.Pool,
    order_id: str,
    *,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """The order's tickets, oldest first: those after `after` (created_at, ticket_id), at
    most `limit` (None: all)."""
    since, ticket_id = after or (None, None)
    return await conn.fetch(
        """SELECT ticket_id, category, department, status, holds_completion, created_at
           FROM feedback_tickets
           WHERE order_id = $1
             AND ($2::timestamptz IS NULL OR (created_at, ticket_id) > ($2, $3::text))
           ORDER BY created_at, ticket_id
           LIMIT $4""",
        order_id,
        since,
        ticket_id,
        limit,
    )


async def ticket_cap_state(
    conn: asyncpg.Connection | asyncpg.Pool, order_id: str, request_key: str
) -> tuple[int, bool]:
    """(tickets the order has, whether one of them has `request_key`)."""
    row = await conn.fetchrow(
        """SELECT count(*) AS n, coalesce(bool_or(request_key = $2), false) AS known
           FROM feedback_tickets WHERE order_id = $1""",
        order_id,
        request_key,
    )
    assert row is not None
    return int(row["n"]), bool(row["known"])


async def store_review(
    conn: asyncpg.Connection, order_id: str, *, rating: int, comment: str, by: str
) -> datetime:
    """Store the order's review once; the time it was stored (the first one's on a retry)."""
    stored: datetime | None = await conn.fetchval(
        """INSERT INTO product_reviews (order_id, rating, comment, reviewed_by)
           VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO NOTHING RETURNING created_at""",
        order_id,
        rating,
        comment,
        by,
    )
    if stored is None:
        stored = await conn.fetchval(
            "SELECT created_at FROM product_reviews WHERE order_id = $1", order_id
        )
    assert stored is not None
    return stored
