"""Stock, reservations, backorders and purchase requests: exact under any concurrency.

Every function that changes stock locks the SKUs' inventory rows in SKU order first, so two
orders can never deadlock, and the table's CHECKs make a negative or oversold count fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

Lines = Sequence[tuple[str, int]]


@dataclass
class ReservationAttempt:
    reserved: bool
    already: bool = False
    shortages: dict[str, int] = field(default_factory=dict)


async def _lock_skus(conn: asyncpg.Connection, skus: Sequence[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        """SELECT i.sku, i.on_hand, i.reserved, i.reorder_point,
                  coalesce((SELECT sum(b.quantity) FROM backorders b
                            WHERE b.sku = i.sku AND b.status = 'waiting'), 0)::int AS waiting
           FROM inventory i WHERE i.sku = ANY($1::text[]) ORDER BY i.sku FOR UPDATE OF i""",
        sorted(set(skus)),
    )
    return {r["sku"]: r for r in rows}


async def held_lines(conn: asyncpg.Connection, order_id: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM reservations WHERE order_id = $1 AND status = 'held'", order_id
        )
    )


async def try_reserve(
    conn: asyncpg.Connection, order_id: str, lines: Lines, *, queue_position_ok: bool
) -> ReservationAttempt:
    """Reserve every line or none. Call inside a transaction.

    A new order queues behind orders already waiting for a SKU (`queue_position_ok=False`
    counts their demand as taken), so nobody who waited is skipped; an order being served
    from the queue passes True.
    """
    if await held_lines(conn, order_id) == len(lines):
        return ReservationAttempt(reserved=True, already=True)
    stock = await _lock_skus(conn, [sku for sku, _ in lines])
    shortages: dict[str, int] = {}
    for sku, qty in lines:
        row = stock[sku]
        available = row["on_hand"] - row["reserved"]
        if not queue_position_ok:
            available -= row["waiting"]
        if qty > available:
            shortages[sku] = qty - max(available, 0)
    if shortages:
        return ReservationAttempt(reserved=False, shortages=shortages)
    await conn.execute(
        """UPDATE inventory i SET reserved = i.reserved + l.qty, updated_at = now()
           FROM unnest($1::text[], $2::int[]) AS l(sku, qty) WHERE i.sku = l.sku""",
        [s for s, _ in lines],
        [q for _, q in lines],
    )
    await conn.executemany(
        """INSERT INTO reservations (order_id, sku, quantity) VALUES ($1, $2, $3)
           ON CONFLICT (order_id, sku) DO UPDATE SET status = 'held', quantity = EXCLUDED.quantity,
               reserved_at = now(), closed_at = NULL""",
        [(order_id, s, q) for s, q in lines],
    )
    await conn.execute(
        """UPDATE backorders SET status = 'served', closed_at = now()
           WHERE order_id = $1 AND status = 'waiting'""",
        order_id,
    )
    return ReservationAttempt(reserved=True)


async def open_backorder(
    conn: asyncpg.Connection,
    order_id: str,
    placed_at: datetime,
    lines: Lines,
    shortages: dict[str, int],
) -> None:
    """Queue the order for its short SKUs and add each shortfall to that SKU's open purchase
    request (one open request per SKU, created on the first shortage). Idempotent per line."""
    for sku, qty in sorted(lines):
        if sku not in shortages:
            continue
        exists = await conn.fetchval(
            "SELECT 1 FROM backorders WHERE order_id = $1 AND sku = $2", order_id, sku
        )
        if exists:
            continue
        request_id = await add_to_open_request(conn, sku, shortages[sku], reason="shortage")
        await conn.execute(
            """INSERT INTO backorders (order_id, sku, request_id, quantity, shortfall, placed_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            order_id,
            sku,
            request_id,
            qty,
            shortages[sku],
            placed_at,
        )


async def add_to_open_request(
    conn: asyncpg.Connection, sku: str, quantity: int, *, reason: str
) -> int:
    request_id: int = await conn.fetchval(
        """INSERT INTO purchase_requests (sku, quantity, reason) VALUES ($1, $2, $3)
           ON CONFLICT (sku) WHERE status = 'open'
           DO UPDATE SET quantity = purchase_requests.quantity + EXCLUDED.quantity, updated_at = now()
           RETURNING id""",
        sku,
        quantity,
        reason,
    )
    return request_id


async def release(conn: asyncpg.Connection, order_id: str) -> int:
    """Give back an order's held stock and withdraw its share of purchase requests, once."""
    held = await conn.fetch(
        "SELECT sku, quantity FROM reservations WHERE order_id = $1 AND status = 'held' ORDER BY sku",
        order_id,
    )
    if held:
        await _lock_skus(conn, [r["sku"] for r in held])
        await conn.execute(
            """UPDATE inventory i SET reserved = i.reserved - r.quantity, updated_at = now()
               FROM reservations r
               WHERE r.order_id = $1 AND r.status = 'held' AND i.sku = r.sku""",
            order_id,
        )
        await conn.execute(
            """UPDATE reservations SET status = 'released', closed_at = now()
               WHERE order_id = $1 AND status = 'held'""",
            order_id,
        )
    waiting = await conn.fetch(
        """UPDATE backorders SET status = 'withdrawn', closed_at = now()
           WHERE order_id = $1 AND status = 'waiting' RETURNING request_id, shortfall""",
        order_id,
    )
    for row in waiting:
        await conn.execute(
            """UPDATE purchase_requests
               SET quantity = greatest(quantity - $2, 0), updated_at = now(),
                   status = CASE WHEN quantity - $2 <= 0 THEN 'cancelled' ELSE status END
               WHERE id = $1 AND status = 'open'""",
            row["request_id"],
            row["shortfall"],
        )
    return len(held)


async def consume(conn: asyncpg.Connection, order_id: str) -> int:
    """The parcel left: on hand and reserved both go down by what the order held."""
    held = await conn.fetch(
        "SELECT sku FROM reservations WHERE order_id = $1 AND status = 'held' ORDER BY sku",
        order_id,
    )
    if not held:
        return 0
    await _lock_skus(conn, [r["sku"] for r in held])
    await conn.execute(
        """UPDATE inventory i SET on_hand = i.on_hand - r.quantity,
               reserved = i.reserved - r.quantity, updated_at = now()
           FROM reservations r WHERE r.order_id = $1 AND r.status = 'held' AND i.sku = r.sku""",
        order_id,
    )
    await conn.execute(
        """UPDATE reservations SET status = 'consumed', closed_at = now()
           WHERE order_id = $1 AND status = 'held'""",
        order_id,
    )
    return len(held)


@dataclass
class Receipt:
    receipt_id: int
    sku: str
    quantity: int
    on_hand: int
    served_orders: list[str]
    already: bool = False


async def receive_stock(
    conn: asyncpg.Connection, *, sku: str, quantity: int, receipt_key: str, received_by: str
) -> Receipt:
    """Goods in: stock up, the open request reduced, and waiting orders served oldest first.

    Serving stops at the first waiting order that still cannot be served, so a later order
    never overtakes an earlier one. Call inside a transaction.
    """
    receipt_id = await conn.fetchval(
        """INSERT INTO stock_receipts (receipt_key, sku, quantity, received_by)
           VALUES ($1, $2, $3, $4) ON CONFLICT (receipt_key) DO NOTHING RETURNING id""",
        receipt_key,
        sku,
        quantity,
        received_by,
    )
    if receipt_id is None:
        row = await conn.fetchrow(
            "SELECT id, sku, quantity FROM stock_receipts WHERE receipt_key = $1", receipt_key
        )
        on_hand = await conn.fetchval("SELECT on_hand FROM inventory WHERE sku = $1", row["sku"])
        return Receipt(row["id"], row["sku"], row["quantity"], on_hand, [], already=True)
    await _lock_skus(conn, [sku])
    on_hand = await conn.fetchval(
        "UPDATE inventory SET on_hand = on_hand + $2, updated_at = now() WHERE sku = $1 RETURNING on_hand",
        sku,
        quantity,
    )
    await conn.execute(
        """UPDATE purchase_requests
           SET quantity = greatest(quantity - $2, 0), updated_at = now(),
               status = CASE WHEN quantity - $2 <= 0 THEN 'fulfilled' ELSE status END,
               fulfilled_at = CASE WHEN quantity - $2 <= 0 THEN now() ELSE fulfilled_at END
           WHERE sku = $1 AND status = 'open'""",
        sku,
        quantity,
    )
    served: list[str] = []
    waiting = await conn.fetch(
        """SELECT DISTINCT b.order_id, b.placed_at FROM backorders b
           WHERE b.sku = $1 AND b.status = 'waiting' ORDER BY b.placed_at, b.order_id""",
        sku,
    )
    for row in waiting:
        lines = [
            (r["sku"], r["quantity"])
            for r in await conn.fetch(
                "SELECT sku, quantity FROM order_lines WHERE order_id = $1 ORDER BY sku",
                row["order_id"],
            )
        ]
        attempt = await try_reserve(conn, row["order_id"], lines, queue_position_ok=True)
        if not attempt.reserved:
            break
        served.append(row["order_id"])
    return Receipt(receipt_id, sku, quantity, on_hand, served)


async def open_purchase_requests(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT p.id, p.sku, p.quantity, p.reason, p.created_at, p.updated_at,
                  count(b.order_id) FILTER (WHERE b.status = 'waiting') AS waiting_orders
           FROM purchase_requests p LEFT JOIN backorders b ON b.request_id = p.id
           WHERE p.status = 'open' GROUP BY p.id ORDER BY p.created_at"""
    )


async def stock_levels(
    conn: asyncpg.Connection | asyncpg.Pool, sku: str | None = None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT p.sku, p.name, p.unit_price, p.currency, p.weight_kg, p.bin_location,
                  i.on_hand, i.reserved, i.on_hand - i.reserved AS available, i.reorder_point,
                  i.order_up_to,
                  (SELECT r.quantity FROM purchase_requests r
                   WHERE r.sku = p.sku AND r.status = 'open') AS open_request_quantity
           FROM products p JOIN inventory i ON i.sku = p.sku
           WHERE $1::text IS NULL OR p.sku = $1 ORDER BY p.sku""",
        sku,
    )


async def invariant_violations(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    """SKUs whose counters disagree with the reservation rows (empty when all is well)."""
    return await conn.fetch(
        """SELECT i.sku, i.on_hand, i.reserved,
                  coalesce(sum(r.quantity) FILTER (WHERE r.status = 'held'), 0)::int AS held
           FROM inventory i LEFT JOIN reservations r ON r.sku = i.sku
           GROUP BY i.sku, i.on_hand, i.reserved
           HAVING i.reserved <> coalesce(sum(r.quantity) FILTER (WHERE r.status = 'held'), 0)
               OR i.on_hand < 0 OR i.reserved < 0 OR i.reserved > i.on_hand"""
    )
