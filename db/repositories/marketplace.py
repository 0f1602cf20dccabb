"""Orders from marketplaces and where each marketplace's feed stands
(db/migrations/016_marketplace.sql)."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def take_feed_order(
    conn: Conn,
    *,
    marketplace: str,
    external_order_id: str,
    raw: dict[str, Any],
    order_id: str | None,
    problem: str | None,
) -> asyncpg.Record:
    """The feed order's row, written the first time it is seen: `mapped` with the shop's
    order id, or an `exception` with the problem. A row that exists is returned as it is
    (a re-read page, a retried activity): what was decided then stands."""
    row = await conn.fetchrow(
        """INSERT INTO marketplace_orders
               (marketplace, external_order_id, order_id, status, problem, raw)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (marketplace, external_order_id) DO NOTHING
           RETURNING *""",
        marketplace,
        external_order_id,
        order_id,
        "mapped" if problem is None else "exception",
        problem,
        raw,
    )
    if row is None:
        row = await feed_order(conn, marketplace, external_order_id)
    assert row is not None
    return row


async def feed_order(conn: Conn, marketplace: str, external_order_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM marketplace_orders WHERE marketplace = $1 AND external_order_id = $2",
        marketplace,
        external_order_id,
    )


async def acknowledged(conn: Conn, marketplace: str, external_order_id: str) -> None:
    await conn.execute(
        """UPDATE marketplace_orders SET acknowledged_at = coalesce(acknowledged_at, now())
           WHERE marketplace = $1 AND external_order_id = $2""",
        marketplace,
        external_order_id,
    )


async def reject(
    conn: Conn, marketplace: str, external_order_id: str, *, by: str, note: str
) -> asyncpg.Record | None:
    """An exception (or an order cancelled before it was placed) nobody will place."""
    return await conn.fetchrow(
        """UPDATE marketplace_orders
           SET status = 'rejected', resolved_by = $3, resolved_at = now(), resolution_note = $4
           WHERE marketplace = $1 AND external_order_id = $2 AND status = 'exception'
           RETURNING *""",
        marketplace,
        external_order_id,
        by,
        note,
    )


async def resolve_as_placed(
    conn: Conn,
    marketplace: str,
    external_order_id: str,
    *,
    order_id: str,
    raw: dict[str, Any],
    by: str,
    note: str,
) -> asyncpg.Record | None:
    """A person fixed the exception: the corrected payload is placed as `order_id`."""
    return await conn.fetchrow(
        """UPDATE marketplace_orders
           SET status = 'mapped', order_id = $3, raw = $4, problem = NULL,
               resolved_by = $5, resolved_at = now(), resolution_note = $6
           WHERE marketplace = $1 AND external_order_id = $2 AND status = 'exception'
           RETURNING *""",
        marketplace,
        external_order_id,
        order_id,
        raw,
        by,
        note,
    )


async def exceptions(conn: Conn, *, limit: int = 200) -> list[asyncpg.Record]:
    """Feed orders waiting for customer service, oldest first."""
    return await conn.fetch(
        """SELECT * FROM marketplace_orders WHERE status = 'exception'
           ORDER BY received_at, marketplace, external_order_id LIMIT $1""",
        limit,
    )


async def record_poll(
    conn: Conn, marketplace: str, *, cursor: str | None, orders_seen: int, error: str | None
) -> None:
    await conn.execute(
        """INSERT INTO marketplace_feeds (marketplace, cursor, polled_at, orders_seen,
                                          last_error, last_error_at, read_at)
           VALUES ($1, $2, now(), $3, $4, CASE WHEN $4::text IS NULL THEN NULL ELSE now() END,
                   CASE WHEN $4::text IS NULL THEN now() END)
           ON CONFLICT (marketplace) DO UPDATE
           SET cursor = coalesce(EXCLUDED.cursor, marketplace_feeds.cursor),
               polled_at = now(),
               read_at = coalesce(EXCLUDED.read_at, marketplace_feeds.read_at),
               orders_seen = marketplace_feeds.orders_seen + EXCLUDED.orders_seen,
               last_error = EXCLUDED.last_error,
               last_error_at = coalesce(EXCLUDED.last_error_at, marketplace_feeds.last_error_at)""",
        marketplace,
        cursor,
        orders_seen,
        error,
    )


async def feeds(conn: Conn) -> list[asyncpg.Record]:
    """Every marketplace's feed with its counts of orders by state."""
    return await conn.fetch(
        """SELECT f.marketplace, f.cursor, f.polled_at, f.orders_seen, f.last_error,
                  f.last_error_at, f.read_at,
                  -- A read committed just after this statement's now() would be negative.
                  greatest(extract(epoch FROM now() - f.read_at), 0)::float8 AS lag_seconds,
                  count(o.*) FILTER (WHERE o.status = 'mapped') AS placed,
                  count(o.*) FILTER (WHERE o.status = 'mapped' AND o.acknowledged_at IS NULL)
                      AS unacknowledged,
                  count(o.*) FILTER (WHERE o.status = 'exception') AS exceptions,
                  count(o.*) FILTER (WHERE o.status = 'rejected') AS rejected
           FROM marketplace_feeds f
           LEFT JOIN marketplace_orders o ON o.marketplace = f.marketplace
           GROUP BY f.marketplace, f.cursor, f.polled_at, f.orders_seen, f.last_error,
                    f.last_error_at, f.read_at
           ORDER BY f.marketplace"""
    )
