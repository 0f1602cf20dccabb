"""The warehouse's queue of pick tasks."""

from __future__ import annotations

import asyncpg


async def open_tasks(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    """Tasks still to pick or pack, oldest first, with lines and bin locations."""
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
           ORDER BY t.opened_at, t.order_id"""
    )


async def goods_weight(conn: asyncpg.Connection | asyncpg.Pool, order_id: str) -> float | None:
    weight = await conn.fetchval(
        """SELECT sum(p.weight_kg * l.quantity) FROM order_lines l
           JOIN products p ON p.sku = l.sku WHERE l.order_id = $1""",
        order_id,
    )
    return None if weight is None else float(weight)
