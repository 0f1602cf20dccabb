"""Parcels after they leave: what became of carrier events, follow-ups and lost parcels."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from orderflow.models import ShipmentBooking


async def set_event_outcome(
    conn: asyncpg.Connection, carrier: str, event_id: str, outcome: str
) -> None:
    """Correct the recorded outcome of a received event (e.g. its order's process had ended)."""
    await conn.execute(
        "UPDATE tracking_events SET outcome = $3 WHERE carrier = $1 AND event_id = $2",
        carrier,
        event_id,
        outcome,
    )


async def carrier_known(conn: asyncpg.Connection | asyncpg.Pool, carrier: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM carriers WHERE code = $1", carrier))


async def order_for_lost_parcel(
    conn: asyncpg.Connection | asyncpg.Pool, carrier: str, tracking_number: str
) -> str | None:
    """The order whose parcel (since replaced or refunded) had this tracking number."""
    order_id: str | None = await conn.fetchval(
        "SELECT order_id FROM lost_parcels WHERE carrier = $1 AND tracking_number = $2",
        carrier,
        tracking_number,
    )
    return order_id


async def carrier_choice(
    conn: asyncpg.Connection | asyncpg.Pool, order_id: str, booking_no: int, requested_at: datetime
) -> tuple[str, str] | None:
    """The (carrier, reason) recorded for a booking attempt, if any."""
    row = await conn.fetchrow(
        """SELECT carrier, reason FROM carrier_choices
           WHERE order_id = $1 AND booking_no = $2 AND requested_at = $3""",
        order_id,
        booking_no,
        requested_at,
    )
    return (row["carrier"], row["reason"]) if row else None


async def choose_carrier_once(
    conn: asyncpg.Connection | asyncpg.Pool,
    order_id: str,
    booking_no: int,
    requested_at: datetime,
    *,
    carrier: str,
    reason: str,
) -> tuple[str, str]:
    """The (carrier, reason) of a booking attempt: the one given when it is the first
    recorded for the attempt, else the one recorded before (which is kept)."""
    row = await conn.fetchrow(
        """WITH chosen AS (
               INSERT INTO carrier_choices (order_id, booking_no, requested_at, carrier, reason)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (order_id, booking_no, requested_at) DO NOTHING
               RETURNING carrier, reason)
           SELECT carrier, reason FROM chosen
           UNION ALL
           SELECT carrier, reason FROM carrier_choices
           WHERE order_id = $1 AND booking_no = $2 AND requested_at = $3
           LIMIT 1""",
        order_id,
        booking_no,
        requested_at,
        carrier,
        reason,
    )
    assert row is not None
    return row["carrier"], row["reason"]


async def shipment_of(
    conn: asyncpg.Connection | asyncpg.Pool, order_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT carrier, tracking_number, delivery_note, expected_delivery, choice_reason, cost,
                  booking_no
           FROM shipments WHERE order_id = $1""",
        order_id,
    )


async def insert_shipment(
    conn: asyncpg.Connection,
    order_id: str,
    booking: ShipmentBooking,
    *,
    service_level: str,
    weight_kg: float,
    booked_at: datetime,
) -> None:
    """The order's first parcel, as the carrier booked it."""
    await conn.execute(
        """INSERT INTO shipments (order_id, carrier, tracking_number, delivery_note,
               service_level, weight_kg, cost, choice_reason, booked_at, expected_delivery, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'BOOKED')""",
        order_id,
        booking.carrier,
        booking.tracking_number,
        booking.delivery_note,
        service_level,
        weight_kg,
        booking.cost,
        booking.choice_reason,
        booked_at,
        booking.expected_delivery,
    )


async def set_carrier_status(
    conn: asyncpg.Connection, order_id: str, status: str, at: datetime
) -> None:
    """The parcel's latest status as its carrier reported it (delivered: when)."""
    await conn.execute(
        """UPDATE shipments SET status = $2, last_event_at = $3,
               delivered_at = CASE WHEN $2 = 'DELIVERED' THEN $3 ELSE delivered_at END
           WHERE order_id = $1""",
        order_id,
        status,
        at,
    )


async def replace_shipment(
    conn: asyncpg.Connection,
    order_id: str,
    *,
    booking_no: int,
    carrier: str,
    tracking_number: str,
    delivery_note: str,
    weight_kg: float,
    cost: object,
    choice_reason: str,
    booked_at: object,
    expected_delivery: object,
) -> None:
    """The order's current parcel becomes the replacement (the lost one stays in its case)."""
    await conn.execute(
        """UPDATE shipments SET booking_no = $2, carrier = $3, tracking_number = $4,
               delivery_note = $5, weight_kg = $6, cost = $7, choice_reason = $8,
               booked_at = $9, expected_delivery = $10, status = 'BOOKED',
               delivered_at = NULL, last_event_at = NULL
           WHERE order_id = $1""",
        order_id,
        booking_no,
        carrier,
        tracking_number,
        delivery_note,
        weight_kg,
        cost,
        choice_reason,
        booked_at,
        expected_delivery,
    )


async def resolve_follow_ups(conn: asyncpg.Connection, order_id: str, resolution: str) -> int:
    """Close the parcel's open follow-ups in logistics' queue."""
    rows = await conn.fetch(
        """UPDATE follow_ups SET status = 'resolved', resolution = $2, resolved_at = now()
           WHERE order_id = $1 AND status = 'open' RETURNING attempt""",
        order_id,
        resolution,
    )
    return len(rows)


async def open_lost_case(
    conn: asyncpg.Connection,
    *,
    order_id: str,
    case_no: int,
    carrier: str,
    tracking_number: str,
    reason: str,
    opened_at: object,
) -> None:
    await conn.execute(
        """INSERT INTO lost_parcels (order_id, case_no, carrier, tracking_number, reason, opened_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id, case_no) DO NOTHING""",
        order_id,
        case_no,
        carrier,
        tracking_number,
        reason,
        opened_at,
    )
    await conn.execute(
        "UPDATE shipments SET status = 'LOST' WHERE order_id = $1 AND tracking_number = $2",
        order_id,
        tracking_number,
    )


async def lost_case(conn: asyncpg.Connection, order_id: str, case_no: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT status, replacement_no, replacement_lines, tracking_number
           FROM lost_parcels WHERE order_id = $1 AND case_no = $2 FOR UPDATE""",
        order_id,
        case_no,
    )


async def close_lost_case(
    conn: asyncpg.Connection,
    order_id: str,
    case_no: int,
    *,
    status: str,
    by: str,
    note: str | None,
    replacement_tracking_number: str | None = None,
) -> None:
    await conn.execute(
        """UPDATE lost_parcels SET status = $3, resolved_by = $4, resolution_note = $5,
               resolved_at = now(),
               replacement_tracking_number = coalesce($6, replacement_tracking_number)
           WHERE order_id = $1 AND case_no = $2 AND status = 'open'""",
        order_id,
        case_no,
        status,
        by,
        note,
        replacement_tracking_number,
    )


async def mark_reshipped(
    conn: asyncpg.Connection, order_id: str, *, replacement_no: int, tracking_number: str
) -> None:
    """The open case whose replacement this is closes as reshipped, naming the new parcel."""
    await conn.execute(
        """UPDATE lost_parcels SET status = 'reshipped', resolved_at = now(),
               replacement_tracking_number = $3
           WHERE order_id = $1 AND replacement_no = $2 AND status = 'open'""",
        order_id,
        replacement_no,
        tracking_number,
    )


async def note_resolution(
    conn: asyncpg.Connection, order_id: str, case_no: int, *, by: str, note: str | None
) -> None:
    """Who decided the case and why (the case stays open until its replacement is booked)."""
    await conn.execute(
        """UPDATE lost_parcels SET resolved_by = $3, resolution_note = $4
           WHERE order_id = $1 AND case_no = $2""",
        order_id,
        case_no,
        by,
        note,
    )


async def mark_found(conn: asyncpg.Connection, order_id: str) -> int:
    """The carrier delivered a parcel it had lost: its open case closes as found."""
    rows = await conn.fetch(
        """UPDATE lost_parcels SET status = 'found', resolved_at = now(), resolved_by = 'carrier'
           WHERE order_id = $1 AND status = 'open' RETURNING case_no""",
        order_id,
    )
    return len(rows)


async def take_replacement_stock(
    conn: asyncpg.Connection, order_id: str, case_no: int, booking_no: int
) -> dict[str, int]:
    """Take the goods of a replacement parcel off the shelf, once per case; the shortages
    (empty when taken). Call inside a transaction holding the order's row lock.

    Locks the SKUs' stock rows in SKU order, like every stock change, and takes only what is
    available beyond the reservations and the orders queued for the SKU: a replacement
    never takes goods promised to someone else.
    """
    lines = await conn.fetch(
        "SELECT sku, quantity FROM order_lines WHERE order_id = $1 ORDER BY sku", order_id
    )
    stock = {
        r["sku"]: r
        for r in await conn.fetch(
            """SELECT i.sku, i.on_hand - i.reserved
                      - coalesce((SELECT sum(b.quantity) FROM backorders b
                                  WHERE b.sku = i.sku AND b.status = 'waiting'), 0) AS free
               FROM inventory i WHERE i.sku = ANY($1::text[]) ORDER BY i.sku FOR UPDATE OF i""",
            [r["sku"] for r in lines],
        )
    }
    shortages = {
        r["sku"]: r["quantity"] - max(int(stock[r["sku"]]["free"]), 0)
        for r in lines
        if r["sku"] not in stock or stock[r["sku"]]["free"] < r["quantity"]
    }
    if shortages:
        return shortages
    await conn.execute(
        """UPDATE inventory i SET on_hand = i.on_hand - l.qty, updated_at = now()
           FROM unnest($1::text[], $2::int[]) AS l(sku, qty) WHERE i.sku = l.sku""",
        [r["sku"] for r in lines],
        [r["quantity"] for r in lines],
    )
    await conn.execute(
        """UPDATE lost_parcels SET replacement_no = $3, replacement_lines = $4
           WHERE order_id = $1 AND case_no = $2""",
        order_id,
        case_no,
        booking_no,
        [{"sku": r["sku"], "quantity": r["quantity"]} for r in lines],
    )
    return {}


async def open_lost_cases(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """Lost parcels awaiting logistics' decision, oldest first, with what was in them: those
    after `after` (opened_at, order_id), at most `limit` (None: all)."""
    since, order_id = after or (None, None)
    return await conn.fetch(
        """SELECT c.order_id, c.case_no, c.carrier, c.tracking_number, c.reason, c.opened_at,
                  o.customer_email,
                  (SELECT jsonb_agg(jsonb_build_object('sku', l.sku, 'quantity', l.quantity)
                          ORDER BY l.sku)
                   FROM order_lines l WHERE l.order_id = c.order_id) AS lines
           FROM lost_parcels c JOIN orders o ON o.order_id = c.order_id
           WHERE c.status = 'open'
             AND ($1::timestamptz IS NULL OR (c.opened_at, c.order_id) > ($1, $2::text))
           ORDER BY c.opened_at, c.order_id
           LIMIT $3""",
        since,
        order_id,
        limit,
    )


async def open_follow_up(
    conn: asyncpg.Connection,
    *,
    order_id: str,
    booking_no: int,
    attempt: int,
    opened_at: object,
    escalated: bool,
    carrier_status: str | None,
) -> None:
    """A follow-up of the order's current parcel for logistics' queue (once per attempt)."""
    await conn.execute(
        """INSERT INTO follow_ups (order_id, booking_no, attempt, opened_at, escalated,
               carrier_status)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (order_id, booking_no, attempt) DO NOTHING""",
        order_id,
        booking_no,
        attempt,
        opened_at,
        escalated,
        carrier_status,
    )
