"""The warehouse's queue of pick tasks: opened, picked and packed."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg


async def open_tasks(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """Tasks still to pick or pack, oldest first, with lines and bin locations: those after
    `after` (opened_at, order_id), at most `limit` (None: all)."""
    since, order_id = after or (None, None)
    return await conn.fetch(
        """SELECT t.order_id, t.status, t.opened_at, t.due_at, t.due_at < now() AS overdue,
                  o.service_level,
                  (SELECT jsonb_agg(jsonb_build_object('sku', l.sku, 'name', p.name,
                              'quantity', l.quantity, 'bin_location', p.bin_location)
                          ORDER BY p.bin_location)
                   FROM order_lines l JOIN products p ON p.sku = l.sku
                   WHERE l.order_id = t.order_id) AS lines
           FROM warehouse_tasks t JOIN orders o ON o.order_id = t.order_id
           WHERE t.status IN ('open', 'picked')
             AND ($1::timestamptz IS NULL OR (t.opened_at, t.order_id) > ($1, $2::text))
           ORDER BY t.opened_at, t.order_id
           LIMIT $3""",
        since,
        order_id,
        limit,
    )


async def goods_weight(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> float | None:
    weight = await conn.fetchval(
        """SELECT sum(p.weight_kg * l.quantity) FROM order_lines l
           JOIN products p ON p.sku = l.sku WHERE l.order_id = $1""",
        order_id,
    )
    return None if weight is None else float(weight)


async def add_task(
    conn: asyncpg.Connection, order_id: str, *, opened_at: datetime, pick_sla: timedelta
) -> None:
    """Put the order on the warehouse's list, due `pick_sla` after it opened (once per order)."""
    await conn.execute(
        """INSERT INTO warehouse_tasks (order_id, opened_at, due_at)
           VALUES ($1, $2::timestamptz, $2::timestamptz + $3::interval) ON CONFLICT (order_id) DO NOTHING""",
        order_id,
        opened_at,
        pick_sla,
    )


async def mark_picked(conn: asyncpg.Connection, order_id: str, *, at: datetime, by: str) -> None:
    await conn.execute(
        """UPDATE warehouse_tasks SET status = 'picked', picked_at = $2, picked_by = $3
           WHERE order_id = $1""",
        order_id,
        at,
        by,
    )


async def packed_weight(conn: asyncpg.Connection, order_id: str) -> Decimal | None:
    """The parcel's weight as recorded when the order was packed; None before it is packed."""
    weight: Decimal | None = await conn.fetchval(
        "SELECT weight_kg FROM warehouse_tasks WHERE order_id = $1 AND status = 'packed'",
        order_id,
    )
    return weight


async def mark_packed(
    conn: asyncpg.Connection, order_id: str, *, at: datetime, by: str, weight_kg: Decimal
) -> None:
    await conn.execute(
        """UPDATE warehouse_tasks SET status = 'packed', packed_at = $2, packed_by = $3,
               weight_kg = $4 WHERE order_id = $1""",
        order_id,
        at,
        by,
        weight_kg,
    )
