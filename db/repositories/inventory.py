"""Stock, reservations, backorders and purchase requests: exact under any concurrency.

Locks are always taken in one order: the order's row first (when an order is involved), then
the SKUs' inventory rows sorted by SKU. So two transactions never deadlock, a cancel and a
reservation of the same order never interleave, and the table's CHECKs make a negative or
oversold count fail even for a buggy caller.

Waiting orders form one first-come queue per SKU, ordered by (received_at, order_id): the
time the shop accepted each order, never the storefront's `placed_at`, which a client could
set to jump the queue. A new
order counts the whole queue's demand as taken; a waiting order counts only the demand queued
ahead of it. So stock freed or received goes to the queue in order, nobody is overtaken, and
each SKU's one open purchase request covers exactly what the queue is short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from db.repositories import notifications

Lines = Sequence[tuple[str, int]]

# An order in one of these has nothing to reserve and nothing to wait for.
CLOSED_STATUSES = ("CANCELLED", "REJECTED")


@dataclass
class ReservationAttempt:
    reserved: bool
    already: bool = False
    # the order was cancelled or rejected meanwhile: nothing reserved, nothing queued
    closed: bool = False
    shortages: dict[str, int] = field(default_factory=dict)


@dataclass
class StockRow:
    sku: str
    on_hand: int
    reserved: int
    reorder_point: int
    order_up_to: int
    waiting_total: int
    waiting_ahead: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


async def _lock_order(conn: asyncpg.Connection, order_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT status, received_at FROM orders WHERE order_id = $1 FOR UPDATE", order_id
    )
    if row is None:
        raise LookupError(f"unknown order {order_id}")
    return row


async def _lock_skus(
    conn: asyncpg.Connection,
    skus: Sequence[str],
    *,
    order_id: str | None = None,
    received_at: datetime | None = None,
) -> dict[str, StockRow]:
    """Lock the SKUs' stock rows in SKU order (creating empty ones for products without any).

    `waiting_ahead` is the queued demand of other orders received before (`received_at`,
    `order_id`); without them it is the whole queue.
    """
    wanted = sorted(set(skus))
    found = await _select_for_update(conn, wanted, order_id, received_at)
    if len(found) < len(wanted):
        await conn.execute(
            """INSERT INTO inventory (sku, on_hand)
               SELECT p.sku, 0 FROM products p WHERE p.sku = ANY($1::text[]) ORDER BY p.sku
               ON CONFLICT (sku) DO NOTHING""",
            sorted(set(wanted) - set(found)),
        )
        # Only for products never stocked before; the rows already locked stay locked.
        found = await _select_for_update(conn, wanted, order_id, received_at)
    missing = set(wanted) - set(found)
    if missing:
        raise LookupError(f"unknown SKU(s): {', '.join(sorted(missing))}")
    return found


async def _select_for_update(
    conn: asyncpg.Connection,
    skus: list[str],
    order_id: str | None,
    received_at: datetime | None,
) -> dict[str, StockRow]:
    rows = await conn.fetch(
        """SELECT i.sku, i.on_hand, i.reserved, i.reorder_point, i.order_up_to,
                  coalesce((SELECT sum(b.quantity) FROM backorders b
                            WHERE b.sku = i.sku AND b.status = 'waiting'), 0)::int AS waiting_total,
                  coalesce((SELECT sum(b.quantity) FROM backorders b
                            WHERE b.sku = i.sku AND b.status = 'waiting'
                              AND b.order_id IS DISTINCT FROM $2
                              AND ($3::timestamptz IS NULL
                                   OR (b.received_at, b.order_id) < ($3::timestamptz, $2::text))),
                           0)::int AS waiting_ahead
           FROM inventory i WHERE i.sku = ANY($1::text[]) ORDER BY i.sku FOR UPDATE OF i""",
        skus,
        order_id,
        received_at,
    )
    return {r["sku"]: StockRow(**dict(r)) for r in rows}


async def held_lines(conn: asyncpg.Connection, order_id: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM reservations WHERE order_id = $1 AND status = 'held'", order_id
        )
    )


async def _is_queued(conn: asyncpg.Connection, order_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM backorders WHERE order_id = $1 AND status = 'waiting')",
            order_id,
        )
    )


async def try_reserve(conn: asyncpg.Connection, order_id: str, lines: Lines) -> ReservationAttempt:
    """Reserve every line of the order or none. Call inside a transaction.

    Idempotent per order and line: an order that holds its lines gets `already`. A new order
    queues behind everybody waiting; an order already waiting only behind those placed before
    it. On success the order leaves the queue and low stock raises a replenishment request.
    """
    order = await _lock_order(conn, order_id)
    if order["status"] in CLOSED_STATUSES:
        return ReservationAttempt(reserved=False, closed=True)
    if await held_lines(conn, order_id) == len(lines):
        return ReservationAttempt(reserved=True, already=True)
    queued = await _is_queued(conn, order_id)
    stock = await _lock_skus(
        conn,
        [sku for sku, _ in lines],
        order_id=order_id,
        received_at=order["received_at"] if queued else None,
    )
    shortages: dict[str, int] = {}
    for sku, qty in lines:
        row = stock[sku]
        free = row.available - row.waiting_ahead
        if qty > free:
            shortages[sku] = qty - max(free, 0)
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
    for sku in sorted(stock):
        await replenish_if_low(conn, sku, reason="reorder_point")
    return ReservationAttempt(reserved=True)


async def open_backorder(
    conn: asyncpg.Connection,
    order_id: str,
    received_at: datetime,
    lines: Lines,
    shortages: dict[str, int],
) -> None:
    """Queue the order with all its lines and make each short SKU's open purchase request
    cover the queue's shortfall. Call in the transaction of the failed `try_reserve` (its
    locks held). Idempotent: a second call adds only what became short since."""
    await conn.executemany(
        """INSERT INTO backorders (order_id, sku, quantity, shortfall, placed_at, received_at)
           SELECT $1, $2, $3, 0, o.placed_at, $4 FROM orders o WHERE o.order_id = $1
           ON CONFLICT (order_id, sku) DO NOTHING""",
        [(order_id, sku, qty, received_at) for sku, qty in sorted(lines)],
    )
    for sku in sorted(shortages):
        added, request_id = await cover_shortage(conn, sku)
        if added:
            await conn.execute(
                """UPDATE backorders SET shortfall = shortfall + $3, request_id = $4
                   WHERE order_id = $1 AND sku = $2""",
                order_id,
                sku,
                added,
                request_id,
            )
        await replenish_if_low(conn, sku, reason="reorder_point")


async def cover_shortage(conn: asyncpg.Connection, sku: str) -> tuple[int, int | None]:
    """Top the SKU's open request up to what its queue lacks (queued demand - available);
    returns (units added, open request id). Call with the SKU locked."""
    deficit = await conn.fetchval(
        """SELECT (SELECT coalesce(sum(b.quantity), 0) FROM backorders b
                   WHERE b.sku = i.sku AND b.status = 'waiting')
                  - (i.on_hand - i.reserved)
                  - coalesce((SELECT r.quantity FROM purchase_requests r
                              WHERE r.sku = i.sku AND r.status = 'open'), 0)
           FROM inventory i WHERE i.sku = $1""",
        sku,
    )
    if deficit is None or deficit <= 0:
        return 0, None
    return int(deficit), await add_to_open_request(conn, sku, int(deficit), reason="shortage")


async def _position(conn: asyncpg.Connection, sku: str) -> asyncpg.Record | None:
    """The SKU's levels and stock position: available - queued demand + open request."""
    return await conn.fetchrow(
        """SELECT i.reorder_point, i.order_up_to,
                  i.on_hand - i.reserved
                  - (SELECT coalesce(sum(b.quantity), 0) FROM backorders b
                     WHERE b.sku = i.sku AND b.status = 'waiting')::int
                  + coalesce((SELECT r.quantity FROM purchase_requests r
                              WHERE r.sku = i.sku AND r.status = 'open'), 0) AS position
           FROM inventory i WHERE i.sku = $1""",
        sku,
    )


async def replenish_if_low(conn: asyncpg.Connection, sku: str, *, reason: str) -> int:
    """At or below the reorder point, order up to the order-up-to level: the stock position
    (available - queued demand + open request) is raised to `order_up_to` through the SKU's
    one open request. Returns the units added (0 when the position is high enough). Call
    with the SKU locked."""
    row = await _position(conn, sku)
    if row is None or row["order_up_to"] <= 0 or row["position"] > row["reorder_point"]:
        return 0
    quantity = int(row["order_up_to"] - row["position"])
    if quantity <= 0:
        return 0
    request_id = await add_to_open_request(conn, sku, quantity, reason=reason)
    await notifications.notify_department(
        conn,
        department="purchasing",
        key=f"purchase_request:{request_id}:{reason}",
        order_id=None,
        kind="low_stock_alert" if reason == "reorder_point" else "replenishment_request",
        context={
            "sku": sku,
            "position": row["position"],
            "reorder_point": row["reorder_point"],
            "order_up_to": row["order_up_to"],
            "request_id": request_id,
            "quantity": quantity,
            "reason": reason,
        },
    )
    return quantity


@dataclass
class LevelsApplied:
    position: int
    ordered: int
    request_id: int | None


async def set_levels_and_replenish(
    conn: asyncpg.Connection, sku: str, *, reorder_point: int, order_up_to: int, reason: str
) -> LevelsApplied:
    """Set a SKU's reorder point and order-up-to level, then order up to it if its stock
    position is at or below the new reorder point. Call inside a transaction."""
    await _lock_skus(conn, [sku])
    await conn.execute(
        """UPDATE inventory SET reorder_point = $2, order_up_to = $3, updated_at = now()
           WHERE sku = $1""",
        sku,
        reorder_point,
        order_up_to,
    )
    row = await _position(conn, sku)
    assert row is not None
    ordered = await replenish_if_low(conn, sku, reason=reason)
    request_id = (
        await conn.fetchval(
            "SELECT id FROM purchase_requests WHERE sku = $1 AND status = 'open'", sku
        )
        if ordered
        else None
    )
    return LevelsApplied(position=int(row["position"]), ordered=ordered, request_id=request_id)


async def add_to_open_request(
    conn: asyncpg.Connection, sku: str, quantity: int, *, reason: str
) -> int:
    """Add to the SKU's one open request (opened with `reason` if there is none); its id."""
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
    """Give back an order's held stock and withdraw its place in the queues and its share of
    the purchase requests. Releases once: a second call finds nothing held. Returns the
    number of lines released. Call inside a transaction."""
    await _lock_order(conn, order_id)
    skus = [
        r["sku"]
        for r in await conn.fetch(
            """SELECT sku FROM reservations WHERE order_id = $1 AND status = 'held'
               UNION SELECT sku FROM backorders WHERE order_id = $1 AND status = 'waiting'""",
            order_id,
        )
    ]
    if not skus:
        return 0
    await _lock_skus(conn, skus)
    held = await conn.fetch(
        """UPDATE reservations SET status = 'released', closed_at = now()
           WHERE order_id = $1 AND status = 'held' RETURNING sku, quantity""",
        order_id,
    )
    await conn.execute(
        """UPDATE inventory i SET reserved = i.reserved - h.qty, updated_at = now()
           FROM unnest($1::text[], $2::int[]) AS h(sku, qty) WHERE i.sku = h.sku""",
        [r["sku"] for r in held],
        [r["quantity"] for r in held],
    )
    withdrawn = await conn.fetch(
        """UPDATE backorders SET status = 'withdrawn', closed_at = now()
           WHERE order_id = $1 AND status = 'waiting' RETURNING request_id, shortfall""",
        order_id,
    )
    for row in withdrawn:
        if row["request_id"] is None or row["shortfall"] <= 0:
            continue
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
    """The parcel left: on hand and reserved both go down by what the order held, once.
    Call inside a transaction."""
    held = await conn.fetch(
        "SELECT sku FROM reservations WHERE order_id = $1 AND status = 'held' ORDER BY sku",
        order_id,
    )
    if not held:
        return 0
    await _lock_order(conn, order_id)
    await _lock_skus(conn, [r["sku"] for r in held])
    taken = await conn.fetch(
        """UPDATE reservations SET status = 'consumed', closed_at = now()
           WHERE order_id = $1 AND status = 'held' RETURNING sku, quantity""",
        order_id,
    )
    await conn.execute(
        """UPDATE inventory i SET on_hand = i.on_hand - t.qty, reserved = i.reserved - t.qty,
               updated_at = now()
           FROM unnest($1::text[], $2::int[]) AS t(sku, qty) WHERE i.sku = t.sku""",
        [r["sku"] for r in taken],
        [r["quantity"] for r in taken],
    )
    return len(taken)


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
    """Goods in: stock up and the open request reduced (once per `receipt_key`), then the
    waiting orders served oldest first (see `serve_waiting`).

    Best called outside a transaction: each served order then gets its own short one. A
    repeated receipt key records nothing new but still serves whoever can be served.
    """
    async with conn.transaction():
        receipt_id = await conn.fetchval(
            """INSERT INTO stock_receipts (receipt_key, sku, quantity, received_by)
               VALUES ($1, $2, $3, $4) ON CONFLICT (receipt_key) DO NOTHING RETURNING id""",
            receipt_key,
            sku,
            quantity,
            received_by,
        )
        already = receipt_id is None
        if already:
            row = await conn.fetchrow(
                "SELECT id, sku, quantity FROM stock_receipts WHERE receipt_key = $1", receipt_key
            )
            receipt_id, sku, quantity = row["id"], row["sku"], row["quantity"]
        else:
            await _lock_skus(conn, [sku])
            await conn.execute(
                "UPDATE inventory SET on_hand = on_hand + $2, updated_at = now() WHERE sku = $1",
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
    served = await serve_waiting(conn, sku)
    on_hand = await conn.fetchval("SELECT on_hand FROM inventory WHERE sku = $1", sku)
    return Receipt(receipt_id, sku, quantity, on_hand, served, already=already)


async def serve_waiting(conn: asyncpg.Connection, sku: str) -> list[str]:
    """Reserve for the orders waiting on `sku`, oldest first, each in its own transaction;
    returns the ids of the orders this call served.

    An order short of another SKU keeps its place (its demand still counts ahead of the
    others) and later orders may be served behind it; the first order short of `sku` itself
    ends the round, since everybody behind it is shorter still.
    """
    waiting = await conn.fetch(
        """SELECT order_id, received_at FROM backorders WHERE sku = $1 AND status = 'waiting'
           ORDER BY received_at, order_id""",
        sku,
    )
    served: list[str] = []
    for row in waiting:
        async with conn.transaction():
            lines = [
                (r["sku"], r["quantity"])
                for r in await conn.fetch(
                    "SELECT sku, quantity FROM order_lines WHERE order_id = $1 ORDER BY sku",
                    row["order_id"],
                )
            ]
            attempt = await try_reserve(conn, row["order_id"], lines)
            if attempt.reserved:
                if not attempt.already:
                    served.append(row["order_id"])
                continue
            if attempt.closed:
                continue
            await open_backorder(
                conn, row["order_id"], row["received_at"], lines, attempt.shortages
            )
            if sku in attempt.shortages:
                break
    return served


async def open_purchase_requests(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    after: tuple[datetime, int] | None = None,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """Open purchase requests, oldest first: those after `after` (created_at, id), at most
    `limit` (None: all)."""
    since, request_id = after or (None, None)
    return await conn.fetch(
        """SELECT p.id, p.sku, p.quantity, p.reason, p.created_at, p.updated_at,
                  count(b.order_id) FILTER (WHERE b.status = 'waiting') AS waiting_orders
           FROM purchase_requests p LEFT JOIN backorders b ON b.sku = p.sku AND b.status = 'waiting'
           WHERE p.status = 'open'
             AND ($1::timestamptz IS NULL OR (p.created_at, p.id) > ($1, $2::bigint))
           GROUP BY p.id ORDER BY p.created_at, p.id
           LIMIT $3""",
        since,
        request_id,
        limit,
    )


async def stock_levels(
    conn: asyncpg.Connection | asyncpg.Pool,
    sku: str | None = None,
    *,
    after_sku: str | None = None,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """Stock of one SKU, or of every SKU in SKU order: those after `after_sku`, at most
    `limit` (None: all)."""
    return await conn.fetch(
        """SELECT p.sku, p.name, p.unit_price, p.currency, p.weight_kg, p.bin_location,
                  i.on_hand, i.reserved, i.on_hand - i.reserved AS available, i.reorder_point,
                  i.order_up_to,
                  (SELECT coalesce(sum(b.quantity), 0) FROM backorders b
                   WHERE b.sku = p.sku AND b.status = 'waiting')::int AS backordered,
                  (SELECT r.id FROM purchase_requests r
                   WHERE r.sku = p.sku AND r.status = 'open') AS open_request_id,
                  (SELECT r.quantity FROM purchase_requests r
                   WHERE r.sku = p.sku AND r.status = 'open') AS open_request_quantity
           FROM products p JOIN inventory i ON i.sku = p.sku
           WHERE ($1::text IS NULL OR p.sku = $1) AND ($2::text IS NULL OR p.sku > $2)
           ORDER BY p.sku
           LIMIT $3""",
        sku,
        after_sku,
        limit,
    )


async def invariant_violations(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    """SKUs whose counters disagree with the reservation rows (empty when all is well)."""
    return await conn.fetch(
        """SELECT i.sku, i.on_hand, i.reserved,
                  coalesce(sum(r.quantity) FILTER (WHERE r.status = 'held'), 0)::int AS held
           FROM inventory i LEFT JOIN reservations r ON r.sku = i.sku
           GROUP BY i.sku, i.on_hand, i.reserved
           HAVING i.reserved <> coalesce(sum(r.quantity) FILTER (WHERE r.status = 'held'), 0)
               OR i.on_hand < 0 OR i.reserved < 0 OR i.reserved > i.on_hand
           ORDER BY i.sku"""
    )


async def leaks(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    """Stock or queue places still held by orders that can no longer use them: held
    reservations or waiting backorders of cancelled, rejected or shipped orders, and orders
    both holding and waiting (empty when all is well)."""
    return await conn.fetch(
        """SELECT r.order_id, r.sku, o.status, 'held reservation' AS what
           FROM reservations r JOIN orders o ON o.order_id = r.order_id
           WHERE r.status = 'held'
             AND o.status IN ('CANCELLED', 'REJECTED', 'SHIPPED', 'IN_TRANSIT',
                              'OUT_FOR_DELIVERY', 'DELIVERED', 'COMPLETED')
           UNION ALL
           SELECT b.order_id, b.sku, o.status, 'waiting backorder'
           FROM backorders b JOIN orders o ON o.order_id = b.order_id
           WHERE b.status = 'waiting'
             AND (o.status IN ('CANCELLED', 'REJECTED', 'SHIPPED', 'IN_TRANSIT',
                               'OUT_FOR_DELIVERY', 'DELIVERED', 'COMPLETED')
                  OR EXISTS (SELECT 1 FROM reservations h
                             WHERE h.order_id = b.order_id AND h.status = 'held'))
           ORDER BY 1, 2"""
    )
