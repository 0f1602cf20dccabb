"""Pre-orders waiting for their products' release (db/migrations/017_pre_orders.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def release_of(conn: Conn, skus: Sequence[str]) -> tuple[list[str], datetime | None]:
    """The order's SKUs not yet released and when the last of them is (None: all are)."""
    rows = await conn.fetch(
        """SELECT sku, release_at FROM products
           WHERE sku = ANY($1::text[]) AND pre_sale AND release_at IS NOT NULL
           ORDER BY sku""",
        list(skus),
    )
    if not rows:
        return [], None
    return [r["sku"] for r in rows], max(r["release_at"] for r in rows)


async def hold(
    conn: Conn, order_id: str, skus: Sequence[str], release_at: datetime
) -> asyncpg.Record:
    """The order's pre-order row, written once."""
    row = await conn.fetchrow(
        """INSERT INTO pre_orders (order_id, skus, release_at) VALUES ($1, $2, $3)
           ON CONFLICT (order_id) DO NOTHING RETURNING *""",
        order_id,
        list(skus),
        release_at,
    )
    if row is None:
        row = await conn.fetchrow("SELECT * FROM pre_orders WHERE order_id = $1", order_id)
    assert row is not None
    return row


async def move(conn: Conn, order_id: str, release_at: datetime) -> None:
    await conn.execute(
        """UPDATE pre_orders SET release_at = $2, moves = moves + 1
           WHERE order_id = $1 AND status = 'waiting'""",
        order_id,
        release_at,
    )


async def released(conn: Conn, order_id: str, at: datetime) -> None:
    await conn.execute(
        """UPDATE pre_orders SET status = 'released', released_at = $2
           WHERE order_id = $1 AND status = 'waiting'""",
        order_id,
        at,
    )


async def set_release(conn: Conn, sku: str, release_at: datetime | None) -> bool:
    """Set when a pre-sale product is released; False when there is no such product."""
    done = await conn.execute(
        "UPDATE products SET release_at = $2, pre_sale = true WHERE sku = $1", sku, release_at
    )
    return done != "UPDATE 0"


async def waiting_for(conn: Conn, sku: str) -> list[str]:
    """Orders still waiting for `sku`'s release (not cancelled or rejected meanwhile)."""
    rows = await conn.fetch(
        """SELECT p.order_id FROM pre_orders p JOIN orders o ON o.order_id = p.order_id
           WHERE p.status = 'waiting' AND $1 = ANY(p.skus)
             AND o.status NOT IN ('CANCELLED', 'REJECTED')
           ORDER BY p.created_at, p.order_id""",
        sku,
    )
    return [r["order_id"] for r in rows]
