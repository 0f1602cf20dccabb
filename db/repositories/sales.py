"""Sales history per SKU and day (orders plus imported history), and the replenishment
plans decided from it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta

import asyncpg


async def daily_sales(
    conn: asyncpg.Connection | asyncpg.Pool, skus: Sequence[str], start: date, end: date
) -> dict[str, list[int]]:
    """Units sold per day from `start` up to (not including) `end`, zero-filled, per SKU."""
    days = (end - start).days
    series = {sku: [0] * max(days, 0) for sku in skus}
    rows = await conn.fetch(
        """SELECT sku, day, sum(quantity)::int AS quantity FROM daily_sales
           WHERE sku = ANY($1::text[]) AND day >= $2 AND day < $3
           GROUP BY sku, day""",
        list(skus),
        start,
        end,
    )
    for r in rows:
        series[r["sku"]][(r["day"] - start).days] = r["quantity"]
    return series


async def record_history(conn: asyncpg.Connection, rows: Iterable[tuple[str, date, int]]) -> int:
    """Import (sku, day, quantity) rows; a day imported again takes the new quantity."""
    batch = list(rows)
    await conn.executemany(
        """INSERT INTO sales_history (sku, day, quantity) VALUES ($1, $2, $3)
           ON CONFLICT (sku, day) DO UPDATE SET quantity = EXCLUDED.quantity""",
        batch,
    )
    return len(batch)


async def replenishable_skus(conn: asyncpg.Connection | asyncpg.Pool) -> list[str]:
    """Active products with a stock row, pre-sale items excluded (they sell what is coming)."""
    rows = await conn.fetch(
        """SELECT p.sku FROM products p JOIN inventory i ON i.sku = p.sku
           WHERE p.active AND NOT p.pre_sale ORDER BY p.sku"""
    )
    return [r["sku"] for r in rows]


async def stock_positions(
    conn: asyncpg.Connection | asyncpg.Pool, skus: Sequence[str]
) -> dict[str, asyncpg.Record]:
    """On hand, committed (reserved plus queued for waiting orders) and on order per SKU."""
    rows = await conn.fetch(
        """SELECT i.sku, i.on_hand,
                  i.reserved + (SELECT coalesce(sum(b.quantity), 0) FROM backorders b
                                WHERE b.sku = i.sku AND b.status = 'waiting')::int AS committed,
                  coalesce((SELECT r.quantity FROM purchase_requests r
                            WHERE r.sku = i.sku AND r.status = 'open'), 0) AS on_order
           FROM inventory i WHERE i.sku = ANY($1::text[])""",
        list(skus),
    )
    return {r["sku"]: r for r in rows}


async def recorded_plan(conn: asyncpg.Connection, run_key: str, sku: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT ordered, request_id FROM replenishment_plans WHERE run_key = $1 AND sku = $2",
        run_key,
        sku,
    )


async def record_plan(
    conn: asyncpg.Connection,
    *,
    run_key: str,
    sku: str,
    as_of: date,
    method: str,
    mean_daily_demand: float,
    sigma: float,
    safety_stock: int,
    reorder_point: int,
    order_up_to: int,
    inventory_position: int,
    ordered: int,
    request_id: int | None,
) -> None:
    await conn.execute(
        """INSERT INTO replenishment_plans (run_key, sku, as_of, method, mean_daily_demand, sigma,
               safety_stock, reorder_point, order_up_to, inventory_position, ordered, request_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
        run_key,
        sku,
        as_of,
        method,
        mean_daily_demand,
        sigma,
        safety_stock,
        reorder_point,
        order_up_to,
        inventory_position,
        ordered,
        request_id,
    )


def history_window(as_of: date, history_days: int) -> tuple[date, date]:
    """The days a plan made on `as_of` learns from: `history_days` whole days up to yesterday."""
    return as_of - timedelta(days=history_days), as_of
