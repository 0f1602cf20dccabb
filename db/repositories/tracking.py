"""Tracking events as received from carriers: the record that none is applied twice."""

from __future__ import annotations

import asyncpg

from orderflow.models import TrackingUpdate


async def order_for_tracking_number(
    conn: asyncpg.Connection, carrier: str, tracking_number: str
) -> str | None:
    order_id: str | None = await conn.fetchval(
        "SELECT order_id FROM shipments WHERE carrier = $1 AND tracking_number = $2",
        carrier,
        tracking_number,
    )
    return order_id


async def record_received(
    conn: asyncpg.Connection,
    carrier: str,
    update: TrackingUpdate,
    order_id: str | None,
    outcome: str,
) -> bool:
    """False when this carrier's event id was received and applied before (a replay).

    An event refused earlier for an unknown tracking number may come again once the
    shipment is on record (a carrier can report before the booking is stored): then it is
    taken up, not dropped as a replay.
    """
    inserted = await conn.fetchval(
        """INSERT INTO tracking_events (carrier, event_id, tracking_number, order_id, status,
               occurred_at, outcome)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (carrier, event_id) DO UPDATE
               SET order_id = EXCLUDED.order_id, outcome = EXCLUDED.outcome,
                   received_at = now()
               WHERE tracking_events.outcome = 'unknown_tracking_number'
           RETURNING id""",
        carrier,
        update.event_id,
        update.tracking_number,
        order_id,
        update.status,
        update.at,
        outcome,
    )
    return inserted is not None
