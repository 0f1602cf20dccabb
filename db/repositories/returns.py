"""Returns and their lines (db/migrations/020_returns.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

import asyncpg

from orderflow.models.order import Order
from orderflow.models.returns import (
    RELEASED_STATUSES,
    Resolution,
    ReturnLine,
    ReturnLineRequest,
    ReturnPolicy,
    ReturnStatus,
)
from policies.returns import (
    Refusal,
    exchange_refusal,
    refusal,
    replacement_order,
    returns_everything,
)

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True)
class OpenedReturn:
    return_id: str
    order_id: str
    lines: list[ReturnLine]
    shipping_share: Decimal
    # Why customer service decides this return (outside the automatic rules); None: approved.
    decision_needed: str | None = None
    # False: the request key named a return written before, answered as it stands.
    created: bool = True
    status: ReturnStatus = ReturnStatus.APPROVED
    # The order an exchange places for its exchanged lines (None: only refunds).
    replacement: Order | None = None


def return_id_of(order_id: str, n: int) -> str:
    return f"{order_id}-{n}"


async def open_return(
    conn: asyncpg.Connection,
    *,
    order_id: str,
    lines: list[ReturnLineRequest],
    reason: str,
    requested_by: str,
    policy: ReturnPolicy,
    now: datetime,
    request_key: str | None = None,
    resolution: Resolution = "refund",
) -> OpenedReturn | Refusal | None:
    """Check the request against the rules and write it, or say why not (None: no such
    order). Call inside a transaction: the order's row lock makes concurrent requests for
    the same lines wait for each other, so only one finds the quantity still free. Lines
    without a `resolution` of their own take the request's; exchanged ones get a
    replacement order (`OpenedReturn.replacement`)."""
    order = await conn.fetchrow(
        "SELECT order_id, total, payload FROM orders WHERE order_id = $1 FOR UPDATE", order_id
    )
    if order is None:
        return None
    if request_key is not None:
        earlier = await conn.fetchrow(
            "SELECT * FROM returns WHERE order_id = $1 AND request_key = $2", order_id, request_key
        )
        if earlier is not None:
            return OpenedReturn(
                earlier["return_id"],
                order_id,
                [],
                earlier["shipping_share"],
                created=False,
                status=ReturnStatus(earlier["status"]),
            )
    delivered = await delivered_at(conn, order_id)
    ordered = {
        r["sku"]: r
        for r in await conn.fetch(
            "SELECT sku, quantity, unit_price FROM order_lines WHERE order_id = $1", order_id
        )
    }
    quantities = {sku: r["quantity"] for sku, r in ordered.items()}
    returned = await returned_quantities(conn, order_id)
    requested = [(line.sku, line.quantity) for line in lines]
    refused = refusal(
        delivered_at=delivered,
        now=now,
        window=policy.window,
        delivered=quantities,
        returned=returned,
        requested=requested,
    )
    if refused is not None:
        return refused
    resolutions = {line.sku: line.resolution or resolution for line in lines}
    exchanged = "exchange" in resolutions.values()
    shipping_share = Decimal("0.00")
    # The shipping charge comes back only with money for every line, not with a replacement.
    if (
        not exchanged
        and policy.refund_shipping_on_full_return
        and returns_everything(quantities, returned, requested)
    ):
        paid = await conn.fetchval("SELECT amount FROM payments WHERE order_id = $1", order_id)
        goods = sum((r["quantity"] * r["unit_price"] for r in ordered.values()), Decimal("0"))
        shipping_share = max((paid or order["total"]) - goods, Decimal("0.00"))
    not_returnable = await conn.fetch(
        """SELECT sku FROM products WHERE sku = ANY($1::text[]) AND NOT returnable
           ORDER BY sku""",
        [sku for sku, _ in requested],
    )
    decision_needed = (
        f"not returnable: {', '.join(r['sku'] for r in not_returnable)}" if not_returnable else None
    )
    n = await conn.fetchval(
        "SELECT coalesce(max(n), 0) + 1 FROM returns WHERE order_id = $1", order_id
    )
    return_id = return_id_of(order_id, n)
    if exchanged and (too_long := exchange_refusal(return_id)) is not None:
        return too_long
    await conn.execute(
        """INSERT INTO returns (return_id, order_id, n, status, reason, requested_by,
                                shipping_share, requested_at, request_key, resolution)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        return_id,
        order_id,
        n,
        ReturnStatus.REQUESTED if decision_needed else ReturnStatus.APPROVED,
        reason,
        requested_by,
        shipping_share,
        now,
        request_key,
        "exchange" if exchanged else "refund",
    )
    priced = [
        ReturnLine(
            sku=sku,
            quantity=qty,
            unit_price=ordered[sku]["unit_price"],
            resolution=resolutions[sku],
        )
        for sku, qty in requested
    ]
    await conn.executemany(
        """INSERT INTO return_lines (return_id, order_id, sku, quantity, unit_price, resolution)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        [(return_id, order_id, li.sku, li.quantity, li.unit_price, li.resolution) for li in priced],
    )
    replacement = None
    if exchanged:
        replacement = replacement_order(
            order["payload"], return_id, [li for li in priced if li.resolution == "exchange"]
        )
    status = ReturnStatus.REQUESTED if decision_needed else ReturnStatus.APPROVED
    return OpenedReturn(
        return_id,
        order_id,
        priced,
        shipping_share,
        decision_needed,
        status=status,
        replacement=replacement,
    )


async def delivered_at(conn: Conn, order_id: str) -> datetime | None:
    """When the order's parcel was delivered (None: not delivered)."""
    found: datetime | None = await conn.fetchval(
        """SELECT coalesce(delivered_at, CASE WHEN status = 'DELIVERED' THEN last_event_at END)
           FROM shipments WHERE order_id = $1""",
        order_id,
    )
    return found


async def returned_quantities(conn: Conn, order_id: str) -> dict[str, int]:
    """Per SKU, what the order's returns still hold (those refused or closed unsent do not)."""
    rows = await conn.fetch(
        """SELECT l.sku, sum(l.quantity)::int AS quantity
           FROM return_lines l JOIN returns r ON r.return_id = l.return_id
           WHERE r.order_id = $1 AND NOT (r.status = ANY($2::text[]))
           GROUP BY l.sku""",
        order_id,
        [str(s) for s in RELEASED_STATUSES],
    )
    return {r["sku"]: r["quantity"] for r in rows}


async def withdraw(conn: Conn, return_id: str) -> None:
    """Forget a request whose workflow could not be started."""
    await conn.execute("DELETE FROM return_lines WHERE return_id = $1", return_id)
    await conn.execute("DELETE FROM returns WHERE return_id = $1", return_id)


async def return_of(conn: Conn, return_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM returns WHERE return_id = $1", return_id)


async def returns_of_order(conn: Conn, order_id: str) -> list[asyncpg.Record]:
    """The order's returns, each with its lines (`lines`, a JSON list)."""
    return await conn.fetch(
        """SELECT r.*, (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'sku', l.sku, 'quantity', l.quantity, 'unit_price', l.unit_price::text,
                    'resolution', l.resolution, 'outcome', l.outcome, 'note', l.note)
                    ORDER BY l.sku), '[]'::jsonb)
                  FROM return_lines l WHERE l.return_id = r.return_id) AS lines
           FROM returns r WHERE r.order_id = $1 ORDER BY r.n""",
        order_id,
    )


async def parcel_facts(conn: Conn, order_id: str) -> asyncpg.Record | None:
    """Where the return parcel starts and with which carrier: the order's own."""
    return await conn.fetchrow(
        """SELECT o.shipping_country, o.shipping_postal, s.carrier, s.weight_kg
           FROM orders o JOIN shipments s ON s.order_id = o.order_id
           WHERE o.order_id = $1""",
        order_id,
    )


async def return_for_tracking(conn: Conn, carrier: str, tracking_number: str) -> str | None:
    """The return a return parcel's tracking number belongs to."""
    found: str | None = await conn.fetchval(
        "SELECT return_id FROM returns WHERE carrier = $1 AND tracking_number = $2",
        carrier,
        tracking_number,
    )
    return found


async def set_label(
    conn: Conn, return_id: str, *, carrier: str, tracking_number: str, label_url: str, at: datetime
) -> None:
    await conn.execute(
        """UPDATE returns SET carrier = $2, tracking_number = $3, label_url = $4,
                              labelled_at = $5, status = 'LABEL_SENT'
           WHERE return_id = $1""",
        return_id,
        carrier,
        tracking_number,
        label_url,
        at,
    )


async def mark(conn: Conn, return_id: str, status: ReturnStatus, at: datetime) -> None:
    """Move the return on, stamping when it happened."""
    stamp = {
        ReturnStatus.IN_TRANSIT: "sent_at",
        ReturnStatus.ARRIVED: "arrived_at",
        ReturnStatus.INSPECTED: "inspected_at",
        ReturnStatus.REJECTED: "closed_at",
    }.get(status)
    if stamp is None:
        await conn.execute("UPDATE returns SET status = $2 WHERE return_id = $1", return_id, status)
        return
    await conn.execute(
        f"UPDATE returns SET status = $2, {stamp} = coalesce({stamp}, $3) WHERE return_id = $1",
        return_id,
        status,
        at,
    )


async def inspect_line(
    conn: Conn, return_id: str, sku: str, *, outcome: str, note: str, by: str, at: datetime
) -> None:
    await conn.execute(
        """UPDATE return_lines SET outcome = $3, note = $4, inspected_by = $5, inspected_at = $6
           WHERE return_id = $1 AND sku = $2""",
        return_id,
        sku,
        outcome,
        note,
        by,
        at,
    )


async def set_served(conn: Conn, return_id: str, sku: str, served: list[str]) -> None:
    await conn.execute(
        "UPDATE return_lines SET served_orders = $3 WHERE return_id = $1 AND sku = $2",
        return_id,
        sku,
        served,
    )


async def served_by(conn: Conn, return_id: str, sku: str) -> list[str]:
    served = await conn.fetchval(
        "SELECT served_orders FROM return_lines WHERE return_id = $1 AND sku = $2",
        return_id,
        sku,
    )
    return list(served or [])


async def close(
    conn: Conn, return_id: str, status: ReturnStatus, *, refund_amount: Decimal, at: datetime
) -> None:
    await conn.execute(
        """UPDATE returns SET status = $2, refund_amount = $3, closed_at = $4
           WHERE return_id = $1""",
        return_id,
        status,
        refund_amount,
        at,
    )


async def lines_for_notice(
    conn: Conn, return_id: str, *, resolution: str | None = None
) -> list[dict[str, object]]:
    """The return's lines as its mails list them (only those with `resolution`, if given)."""
    rows = await conn.fetch(
        """SELECT l.sku, p.name, l.quantity, l.outcome, l.resolution FROM return_lines l
           JOIN products p ON p.sku = l.sku
           WHERE l.return_id = $1 AND ($2::text IS NULL OR l.resolution = $2)
           ORDER BY l.sku""",
        return_id,
        resolution,
    )
    return [dict(r) for r in rows]


async def set_replacement(conn: Conn, return_id: str, replacement_order_id: str) -> None:
    await conn.execute(
        "UPDATE returns SET replacement_order_id = $2 WHERE return_id = $1",
        return_id,
        replacement_order_id,
    )


async def list_returns(
    conn: Conn,
    *,
    status: ReturnStatus | str | None = None,
    order_id: str | None = None,
    limit: int = 50,
    after: tuple[datetime, str, int] | None = None,
) -> list[asyncpg.Record]:
    """Returns across orders, newest first, each with its lines (`lines`, a JSON list as in
    `returns_of_order`); only those in `status` and of `order_id` when given, and only those
    after `after` (a row's `requested_at`, `order_id`, `n`: the last of the previous page)."""
    at, after_order, after_n = after if after is not None else (None, None, None)
    return await conn.fetch(
        """SELECT r.*, (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'sku', l.sku, 'quantity', l.quantity, 'unit_price', l.unit_price::text,
                    'resolution', l.resolution, 'outcome', l.outcome, 'note', l.note)
                    ORDER BY l.sku), '[]'::jsonb)
                  FROM return_lines l WHERE l.return_id = r.return_id) AS lines
           FROM returns r
           WHERE ($1::text IS NULL OR r.status = $1) AND ($2::text IS NULL OR r.order_id = $2)
             -- Spelled out: the sort mixes directions, so no row comparison states it.
             AND ($4::timestamptz IS NULL OR r.requested_at < $4
                  OR (r.requested_at = $4
                      AND (r.order_id > $5 OR (r.order_id = $5 AND r.n < $6))))
           ORDER BY r.requested_at DESC, r.order_id, r.n DESC
           LIMIT $3""",
        None if status is None else str(status),
        order_id,
        limit,
        at,
        after_order,
        after_n,
    )
